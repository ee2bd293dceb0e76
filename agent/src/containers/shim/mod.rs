//! The shim: one small process per running container (as conmon or
//! containerd's shim), `husk-agent shim <shim.json>`. It is the container
//! init's parent, so it alone can learn its exit status; it owns the
//! output pipes and writes the logs; it outlives the agent, so the agent
//! can crash or be restarted without touching a running container, and
//! finds everything again in files ([`config`]).
//!
//! The agent starts it and reads one line on its stdout: `ok <pid>` once
//! the container runs, or `error: <why>`. In between the shim forks: the
//! child detaches (new session, stdio away from the agent), mounts the
//! overlay in a private mount namespace, creates and starts the container
//! with the embedded runtime (single-threaded, as the runtime needs),
//! reports, and then pumps the output into the log until the init exits.
//! It then records `exit.json`, removes the runtime's state and cgroup,
//! and exits.

mod attach;
mod chowned;
mod config;
mod idmap;
pub mod overlay;
mod pump;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitCode;

use rustix::pipe::{PipeFlags, pipe_with};

pub use self::attach::frame_header;
pub use self::config::{
    Control, ControlReply, ExitStatus, Overlay, ShimConfig, ShimPid, attach_socket, control_socket,
    read_json, write_json,
};

use super::console;
use super::sys::{self, Forked};
use husk_runtime::{Container, CreateOptions};

/// The subcommand's entry point.
pub fn main(config_path: &Path) -> ExitCode {
    let config: ShimConfig = match read_json(config_path) {
        Ok(c) => c,
        Err(e) => {
            println!("error: reading {}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let (report_read, report_write) = match pipe_with(PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            println!("error: pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    match sys::fork() {
        Err(e) => {
            println!("error: fork: {e}");
            ExitCode::FAILURE
        }
        Ok(Forked::Parent) => {
            drop(report_write);
            relay_report(report_read)
        }
        Ok(Forked::Child) => {
            drop(report_read);
            crate::oom::shim_above_agent();
            ExitCode::from(run(&config, File::from(report_write)))
        }
    }
}

/// The parent: passes the child's one-line report to the agent.
fn relay_report(report: OwnedFd) -> ExitCode {
    let mut line = String::new();
    let _ = File::from(report).read_to_string(&mut line);
    let line = line.trim();
    if line.is_empty() {
        println!("error: the shim died while creating the container");
        return ExitCode::FAILURE;
    }
    println!("{line}");
    if line.starts_with("ok ") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The detached shim. Returns its exit code.
fn run(config: &ShimConfig, mut report: File) -> u8 {
    let started = match start(config) {
        Ok(started) => started,
        Err(e) => {
            log::error!("{}: {e}", config.name);
            let _ = writeln!(report, "error: {e}");
            return 1;
        }
    };
    let Started { container, io } = started;
    let _ = writeln!(report, "ok {}", container.pid());
    drop(report);
    let exit_code = pump::run(config, container.pid(), io);
    finish(config, container, exit_code);
    0
}

struct Started {
    container: Container,
    io: pump::Io,
}

/// How long attach clients the agent has waiting may take to connect
/// before the container starts without them.
const WAIT_ATTACH: std::time::Duration = std::time::Duration::from_secs(5);

fn start(config: &ShimConfig) -> io::Result<Started> {
    detach(config)?;
    write_json(&config.pid_file, &ShimPid::current())?;
    // A runtime state left by a shim that was killed: the name is ours.
    if let Ok(stale) = Container::load(&config.runtime_root, &config.name) {
        log::warn!("{}: removing a stale runtime state", config.name);
        let _ = stale.delete(true);
    }
    sys::private_mount_namespace()
        .map_err(|e| io::Error::other(format!("private mount namespace: {e}")))?;
    overlay::mount(&config.overlay)?;
    let run_dir = config.run_dir();
    // Without them the container still runs and logs (a run directory
    // whose socket paths are too long, say): only attach is lost.
    let bind = |path: std::path::PathBuf| {
        super::listener::Listener::bind(&path)
            .inspect_err(|e| log::warn!("{}: binding {}: {e}", config.name, path.display()))
            .ok()
    };
    let attach_listener = bind(attach_socket(run_dir));
    let control_listener = bind(control_socket(run_dir));
    let (container, stdio) = create(config)?;
    // Only now: the container's init (already cloned) must not inherit
    // ignored signals.
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        sys::ignore_signal(signal)?;
    }
    let first = attach_listener
        .as_ref()
        .map(|l| l.wait_for(config.wait_attach, WAIT_ATTACH))
        .unwrap_or_default();
    if first.len() < config.wait_attach {
        log::warn!(
            "{}: {} of {} attach clients connected before the start",
            config.name,
            first.len(),
            config.wait_attach
        );
    }
    if let Err(e) = container.start() {
        let _ = container.clone().delete(true);
        return Err(io::Error::other(e.to_string()));
    }
    let raw = stdio.master.is_some();
    let io = pump::Io {
        outputs: stdio.outputs,
        attach: attach::Attach::new(&config.name, attach_listener, first, raw, stdio.stdin),
        control: attach::ControlServer::new(control_listener, stdio.master),
    };
    Ok(Started { container, io })
}

/// The container's stdio as the shim holds it.
struct Stdio {
    outputs: Vec<(OwnedFd, husk_api::containers::Stream)>,
    /// Where attach clients' input goes.
    stdin: Option<OwnedFd>,
    /// The pty master, for resizes.
    master: Option<OwnedFd>,
}

/// The runtime's create, with the container's stdio: pipes, or a pty
/// whose master comes back on the console socket.
fn create(config: &ShimConfig) -> io::Result<(Container, Stdio)> {
    use husk_api::containers::Stream;
    if config.tty {
        let console = console::ConsoleSocket::bind(&config::console_socket(config.run_dir()))?;
        let options = CreateOptions {
            console_socket: Some(console.path().to_owned()),
            ..CreateOptions::default()
        };
        let container =
            Container::create(&config.runtime_root, &config.name, &config.bundle, &options)
                .map_err(|e| io::Error::other(e.to_string()))?;
        let master = match console.receive_master() {
            Ok(master) => master,
            Err(e) => {
                let _ = container.clone().delete(true);
                return Err(e);
            }
        };
        let stdin = if config.interactive {
            Some(master.try_clone()?)
        } else {
            None
        };
        let resize = master.try_clone()?;
        return Ok((
            container,
            Stdio {
                outputs: vec![(master, Stream::Stdout)],
                stdin,
                master: Some(resize),
            },
        ));
    }
    let (stdout_read, stdout_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let (stderr_read, stderr_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let stdin = if config.interactive {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
        rustix::stdio::dup2_stdin(&read)?;
        Some(write)
    } else {
        None
    };
    // The runtime gives the container the caller's stdio: point ours at
    // the pipes for the create, then back at /dev/null and the shim log.
    rustix::stdio::dup2_stdout(&stdout_write)?;
    rustix::stdio::dup2_stderr(&stderr_write)?;
    let created = Container::create(
        &config.runtime_root,
        &config.name,
        &config.bundle,
        &CreateOptions::default(),
    );
    let restored = redirect_stdio(config);
    drop((stdout_write, stderr_write));
    let container = created.map_err(|e| io::Error::other(e.to_string()))?;
    restored?;
    Ok((
        container,
        Stdio {
            outputs: vec![(stdout_read, Stream::Stdout), (stderr_read, Stream::Stderr)],
            stdin,
            master: None,
        },
    ))
}

/// A new session (signals to the agent's process group, as husk-init's
/// stop sends, do not reach us) and stdio away from the agent's pipes.
/// The shim then ignores the signals a shutdown sends first, once the
/// container exists: its exit must still be recorded.
fn detach(config: &ShimConfig) -> io::Result<()> {
    rustix::process::setsid()?;
    if let Some(dir) = config.pid_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    redirect_stdio(config)?;
    Ok(())
}

fn redirect_stdio(config: &ShimConfig) -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.shim_log)
        .unwrap_or(null);
    rustix::stdio::dup2_stderr(&log)?;
    Ok(())
}

/// Records the exit and removes the runtime's state and the cgroup.
fn finish(config: &ShimConfig, container: Container, exit_code: i32) {
    let oom_killed = oom_kills(&config.cgroup) > 0;
    if let Err(e) = container.delete(true) {
        log::warn!("{}: removing the runtime state: {e}", config.name);
    }
    let status = ExitStatus {
        exit_code,
        oom_killed,
        finished_ms: super::time::now_ms(),
    };
    if let Err(e) = write_json(&config.exit_file, &status) {
        log::error!(
            "{}: writing {}: {e}",
            config.name,
            config.exit_file.display()
        );
    }
    log::info!("{}: exited with {exit_code}", config.name);
}

/// `oom_kill` in the cgroup's memory.events.
fn oom_kills(cgroup: &Path) -> u64 {
    std::fs::read_to_string(cgroup.join("memory.events"))
        .ok()
        .and_then(|events| {
            events
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}
