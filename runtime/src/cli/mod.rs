//! `husk-agent oci …` (or `husk-runc …`): runc's command line over
//! [`Container`], with the flags containerd-shim-runc-v2, CRI-O and
//! dockerd pass.

mod args;
mod log;

use std::process::ExitCode;

use super::{Container, Result, RuntimeError};

pub use self::args::{CreateArgs, ExecArgs, OciArgs, OciCommand, UpdateArgs};

/// Runs one command; errors are printed on stderr, and written to the
/// `--log` file when there is one.
pub fn main(args: OciArgs) -> ExitCode {
    let log = args
        .log
        .clone()
        .map(|path| (path, args.log_format == "json"));
    let result = if args.systemd_cgroup {
        Err(RuntimeError::Unsupported(
            "the systemd cgroup driver (--systemd-cgroup); configure the engine for cgroupfs"
                .into(),
        ))
    } else {
        run(args)
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("husk-agent oci: {e}");
            if let Some((path, json)) = log {
                log::log_error(&path, json, &e.to_string());
            }
            ExitCode::FAILURE
        }
    }
}

/// Prints JSON on stdout; a reader that went away (`| head`) is not
/// an error.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RuntimeError::Other(format!("encoding JSON: {e}")))?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(RuntimeError::os("writing to stdout", e))
        }
        _ => Ok(()),
    }
}

fn run(args: OciArgs) -> Result<u8> {
    if matches!(
        args.command,
        OciCommand::Create(_) | OciCommand::Run(_) | OciCommand::Exec(_)
    ) {
        // These put a process into a container: from here on, the binary
        // it can see is a sealed copy (see sealed_exe).
        super::sealed_exe::ensure()?;
    }
    let root = args.root;
    match args.command {
        OciCommand::Create(a) => {
            Container::create(&root, &a.id, &a.bundle, &a.options())?;
        }
        OciCommand::Run(a) => {
            if a.detach {
                let container = Container::create(&root, &a.id, &a.bundle, &a.options())?;
                if let Err(e) = container.start() {
                    let _ = container.delete(true);
                    return Err(e);
                }
                return Ok(0);
            }
            let code = Container::run(&root, &a.id, &a.bundle, &a.options())?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        OciCommand::Start { id } => Container::load(&root, &id)?.start()?,
        OciCommand::State { id } => print_json(&Container::load(&root, &id)?.state())?,
        OciCommand::List { format, quiet } => list(&root, &format, quiet)?,
        OciCommand::Kill { all, id, signal } => {
            let signal = super::signal::parse(&signal)?;
            Container::load(&root, &id)?.kill(signal, all)?;
        }
        OciCommand::Delete { force, id } => match Container::load(&root, &id) {
            // runc: deleting what does not exist is fine with --force.
            Err(RuntimeError::NotFound(_)) if force => {}
            loaded => loaded?.delete(force)?,
        },
        OciCommand::Exec(a) => {
            let code = Container::load(&root, &a.id)?.exec(&a.options()?)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        OciCommand::Ps {
            format,
            id,
            ps_args,
        } => {
            if !ps_args.is_empty() {
                return Err(RuntimeError::Unsupported(format!(
                    "ps arguments {ps_args:?} (Husk has no ps(1); use --format json or table)"
                )));
            }
            let pids = Container::load(&root, &id)?.pids()?;
            if format == "json" {
                print_json(&pids)?;
            } else {
                println!("PID   CMD");
                for pid in pids {
                    println!("{pid:<5} {}", super::stats::command_line(pid));
                }
            }
        }
        OciCommand::Pause { id } => Container::load(&root, &id)?.pause()?,
        OciCommand::Resume { id } => Container::load(&root, &id)?.resume()?,
        OciCommand::Update(a) => {
            let resources = a.resources()?;
            Container::load(&root, &a.id)?.update(&resources)?;
        }
        OciCommand::Events {
            stats,
            interval,
            id,
        } => {
            let container = Container::load(&root, &id)?;
            if stats {
                print_json(&container.stats_event()?)?;
            } else {
                container
                    .stream_events(args::parse_interval(&interval)?, &mut std::io::stdout())?;
            }
        }
        OciCommand::Features => print_json(&super::features::features())?,
        OciCommand::Spec { bundle, rootless } => {
            super::features::write_default_spec(&bundle, rootless)?
        }
    }
    Ok(0)
}

/// `list`: the containers under the root, as runc prints them.
fn list(root: &std::path::Path, format: &str, quiet: bool) -> Result<()> {
    let containers = Container::list(root)?;
    if quiet {
        for c in &containers {
            println!("{}", c.id());
        }
    } else if format == "json" {
        let states: Vec<_> = containers.iter().map(Container::state).collect();
        print_json(&states)?;
    } else {
        println!("ID\tPID\tSTATUS\tBUNDLE");
        for c in &containers {
            let state = c.state();
            println!(
                "{}\t{}\t{}\t{}",
                state.id,
                state.pid.unwrap_or(0),
                state.status,
                state.bundle.display()
            );
        }
    }
    Ok(())
}
