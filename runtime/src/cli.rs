//! `husk-agent oci …`: runc's command line over [`Container`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Container, CreateOptions, DEFAULT_ROOT, Result};

/// Run OCI bundles (the embedded runtime; runc's commands).
#[derive(Debug, Args)]
pub struct OciArgs {
    /// The state directory (one directory per container).
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: OciCommand,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle directory (config.json and the rootfs).
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Pass this many descriptors from 3 up to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Set the container up; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Print the container's state as JSON.
    State { id: String },
    /// Send a signal (name or number, default TERM).
    Kill {
        /// Signal every process of the container.
        #[arg(long, short)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped container.
    Delete {
        /// Kill it first if it still runs.
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// Create, start and wait: exits with the container's exit code.
    Run(CreateArgs),
    /// Run a process in a running container; exits with its exit code.
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// KEY=VALUE over the container's environment (repeatable).
    #[arg(long, short)]
    pub env: Vec<String>,
    /// UID[:GID] instead of the container's user.
    #[arg(long, short)]
    pub user: Option<String>,
    /// Working directory instead of the container's.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(long, short)]
    pub detach: bool,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `UID[:GID]`, numbers only (the GID defaults to the UID).
fn parse_user(text: &str) -> Result<(u32, u32)> {
    let bad = || super::RuntimeError::Config(format!("--user {text:?}: expected UID[:GID]"));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, g),
        None => (text, text),
    };
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    let mut preserve_fds = a.preserve_fds;
    // Socket activation: LISTEN_FDS descriptors from 3 are passed too.
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        preserve_fds = preserve_fds.max(n);
    }
    CreateOptions {
        pid_file: a.pid_file.clone(),
        preserve_fds,
    }
}

/// Runs one command; errors are printed on stderr.
pub fn main(args: OciArgs) -> ExitCode {
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("husk-agent oci: {e}");
            ExitCode::FAILURE
        }
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
            Container::create(&root, &a.id, &a.bundle, &create_options(&a))?;
        }
        OciCommand::Start { id } => Container::load(&root, &id)?.start()?,
        OciCommand::State { id } => {
            let state = Container::load(&root, &id)?.state();
            println!(
                "{}",
                serde_json::to_string_pretty(&state).expect("state serializes")
            );
        }
        OciCommand::Kill { all, id, signal } => {
            let signal = super::signal::parse(&signal)?;
            Container::load(&root, &id)?.kill(signal, all)?;
        }
        OciCommand::Delete { force, id } => Container::load(&root, &id)?.delete(force)?,
        OciCommand::Run(a) => {
            let code = Container::run(&root, &a.id, &a.bundle, &create_options(&a))?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        OciCommand::Exec(a) => {
            let opts = super::ExecOptions {
                args: a.command,
                env: a.env,
                user: a.user.as_deref().map(parse_user).transpose()?,
                cwd: a.cwd,
                pid_file: a.pid_file,
                detach: a.detach,
            };
            let code = Container::load(&root, &a.id)?.exec(&opts)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
    }
    Ok(0)
}
