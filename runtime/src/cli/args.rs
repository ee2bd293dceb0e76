//! runc's flags, as clap arguments, and what they become.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use oci_spec::runtime::{LinuxResources, Process};

use crate::{CreateOptions, DEFAULT_ROOT, ExecOptions, Result, RuntimeError};

/// Run OCI bundles (the embedded runtime; runc's commands).
#[derive(Debug, Args)]
pub struct OciArgs {
    /// The state directory (one directory per container).
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also write errors to this file (runc's `--log`, which
    /// containerd-shim-runc-v2 reads back on a failure).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// text or json (one JSON object per line, as runc's logrus writes).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Accepted for runc's command line; Husk's runtime logs errors only.
    #[arg(long)]
    pub debug: bool,
    /// runc's systemd cgroup driver: refused (Husk manages cgroupfs).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for runc's command line: rootless setups are told by the
    /// spec (a user namespace), not by a flag.
    #[arg(long, value_name = "true|false|auto")]
    pub rootless: Option<String>,
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
    /// A unix socket that receives the pty master (process.terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Move the root and chroot instead of pivot_root (a rootfs on ramfs).
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring (no new one for the container).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// `run` only: return once the container runs instead of waiting.
    #[arg(long, short)]
    pub detach: bool,
    pub id: String,
}

impl CreateArgs {
    pub fn options(&self) -> CreateOptions {
        let mut preserve_fds = self.preserve_fds;
        // Socket activation: LISTEN_FDS descriptors from 3 are passed too.
        if let Some(n) = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            preserve_fds = preserve_fds.max(n);
        }
        CreateOptions {
            pid_file: self.pid_file.clone(),
            preserve_fds,
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Set the container up; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Print the container's state as JSON.
    State { id: String },
    /// List the containers.
    List {
        /// table or json.
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only the ids.
        #[arg(long, short)]
        quiet: bool,
    },
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
        /// Kill it first if it still runs; no error if it does not exist.
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// Create, start and wait: exits with the container's exit code.
    Run(CreateArgs),
    /// Run a process in a running container; exits with its exit code.
    Exec(ExecArgs),
    /// The container's processes (pids in its cgroup).
    Ps {
        /// table or json (a list of pids, what containerd reads).
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// ps(1) arguments: refused (there is no ps(1) to give them to).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of the container (cgroup.freeze).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a running container's cgroup limits.
    Update(UpdateArgs),
    /// The container's events: stats every interval and OOM kills, as
    /// JSON lines, until it stops; with --stats one stats event.
    Events {
        /// One stats event, then exit.
        #[arg(long)]
        stats: bool,
        /// Between two stats events (5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// What this runtime supports, as the runtime spec's features JSON.
    Features,
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// A spec for an unprivileged caller (a user namespace mapping
        /// the caller's ids to root).
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json to run as given (the other process flags are
    /// then ignored, as runc does).
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    /// KEY=VALUE over the container's environment (repeatable).
    #[arg(long, short)]
    pub env: Vec<String>,
    /// UID[:GID] instead of the container's user.
    #[arg(long, short)]
    pub user: Option<String>,
    /// Supplementary group ids with --user (repeatable).
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Working directory instead of the container's.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(long, short)]
    pub detach: bool,
    /// Give the process a pty (its master goes to --console-socket).
    #[arg(long, short)]
    pub tty: bool,
    /// A unix socket that receives the pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Add a capability (CAP_…) to the bounding, effective and permitted
    /// sets (repeatable).
    #[arg(long, short)]
    pub cap: Vec<String>,
    /// Set no_new_privileges for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many descriptors from 3 up to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// An SELinux label: refused unless empty (Husk has no LSM policy).
    #[arg(long)]
    pub process_label: Option<String>,
    /// An AppArmor profile: refused unless empty.
    #[arg(long)]
    pub apparmor: Option<String>,
    pub id: String,
    /// The command and its arguments (none with --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `UID[:GID]`, numbers only (the GID defaults to the UID).
pub fn parse_user(text: &str) -> Result<(u32, u32)> {
    let bad = || RuntimeError::Config(format!("--user {text:?}: expected UID[:GID]"));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, g),
        None => (text, text),
    };
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

/// Reads a JSON file, or standard input for `-`.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = if path == Path::new("-") {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
            .map_err(|e| RuntimeError::os(format!("reading {what} from stdin"), e))?;
        text
    } else {
        std::fs::read(path)
            .map_err(|e| RuntimeError::os(format!("reading {what} {}", path.display()), e))?
    };
    serde_json::from_slice(&text)
        .map_err(|e| RuntimeError::Config(format!("{what} {}: {e}", path.display())))
}

impl ExecArgs {
    pub fn options(&self) -> Result<ExecOptions> {
        for (flag, value) in [
            ("--process-label", &self.process_label),
            ("--apparmor", &self.apparmor),
        ] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(RuntimeError::Unsupported(format!(
                    "{flag}: Husk's runtime has no LSM policy to apply"
                )));
            }
        }
        let process: Option<Process> = self
            .process
            .as_deref()
            .map(|path| read_json(path, "--process"))
            .transpose()?;
        if process.is_none() && self.command.is_empty() {
            return Err(RuntimeError::Config(
                "exec: no command (give one, or --process FILE)".into(),
            ));
        }
        Ok(ExecOptions {
            process,
            args: self.command.clone(),
            env: self.env.clone(),
            user: self.user.as_deref().map(parse_user).transpose()?,
            additional_gids: self.additional_gids.clone(),
            cwd: self.cwd.clone(),
            pid_file: self.pid_file.clone(),
            detach: self.detach,
            tty: self.tty,
            console_socket: self.console_socket.clone(),
            caps: self.cap.clone(),
            no_new_privs: self.no_new_privs,
            preserve_fds: self.preserve_fds,
        })
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// linux.resources as JSON (`-`: standard input); the flags below
    /// override its fields.
    #[arg(long, short)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (-1: none).
    #[arg(long, short)]
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (-1: unlimited swap).
    #[arg(long)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit (memory.low) in bytes.
    #[arg(long)]
    pub memory_reservation: Option<i64>,
    /// Relative CPU weight (cpu.shares, turned into cpu.weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU time per period in microseconds (-1: none).
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// The CPU period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Most processes (-1: no limit).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Block IO weight, 10 to 1000.
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

impl UpdateArgs {
    pub fn resources(&self) -> Result<LinuxResources> {
        use oci_spec::runtime::LinuxPids;
        let mut r: LinuxResources = match &self.resources {
            Some(path) => read_json(path, "--resources")?,
            None => LinuxResources::default(),
        };
        if self.memory.is_some() || self.memory_swap.is_some() || self.memory_reservation.is_some()
        {
            let mut m = r.memory().unwrap_or_default();
            if let Some(v) = self.memory {
                m.set_limit(Some(v));
            }
            if let Some(v) = self.memory_swap {
                m.set_swap(Some(v));
            }
            if let Some(v) = self.memory_reservation {
                m.set_reservation(Some(v));
            }
            r.set_memory(Some(m));
        }
        let cpu_flags = self.cpu_shares.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_period.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some();
        if cpu_flags {
            let mut c = r.cpu().clone().unwrap_or_default();
            if let Some(v) = self.cpu_shares {
                c.set_shares(Some(v));
            }
            if let Some(v) = self.cpu_quota {
                c.set_quota(Some(v));
            }
            if let Some(v) = self.cpu_period {
                c.set_period(Some(v));
            }
            if let Some(v) = &self.cpuset_cpus {
                c.set_cpus(Some(v.clone()));
            }
            if let Some(v) = &self.cpuset_mems {
                c.set_mems(Some(v.clone()));
            }
            r.set_cpu(Some(c));
        }
        if let Some(limit) = self.pids_limit {
            let mut p = LinuxPids::default();
            p.set_limit(limit);
            r.set_pids(Some(p));
        }
        if let Some(w) = self.blkio_weight {
            if !(10..=1000).contains(&w) {
                return Err(RuntimeError::Config(format!(
                    "--blkio-weight {w}: must be 10 to 1000"
                )));
            }
            let mut b = r.block_io().clone().unwrap_or_default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

/// `5s`, `500ms`, `1m`, or plain seconds.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let bad = || RuntimeError::Config(format!("--interval {text:?}: expected e.g. 5s or 500ms"));
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        oci: OciArgs,
    }

    fn parse(line: &str) -> OciArgs {
        Top::try_parse_from(std::iter::once("runc").chain(line.split(' ')))
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .oci
    }

    /// The command lines containerd-shim-runc-v2 (go-runc) builds.
    #[test]
    fn the_shims_command_lines_parse() {
        let a = parse(
            "--root /run/containerd/runc/default --log /b/log.json --log-format json \
             create --bundle /b --pid-file /b/init.pid --console-socket /tmp/pty.sock --no-pivot id1",
        );
        let OciCommand::Create(c) = a.command else {
            panic!()
        };
        assert!(c.no_pivot);
        assert_eq!(
            c.options().console_socket.unwrap(),
            Path::new("/tmp/pty.sock")
        );
        let a = parse("--root /r exec --process /tmp/p.json --detach --pid-file /tmp/p.pid id1");
        let OciCommand::Exec(e) = a.command else {
            panic!()
        };
        assert!(e.detach && e.command.is_empty());
        assert!(matches!(
            parse("--root /r ps --format json id1").command,
            OciCommand::Ps { .. }
        ));
        assert!(matches!(
            parse("--root /r update --resources - id1").command,
            OciCommand::Update(_)
        ));
        assert!(matches!(
            parse("--root /r events --stats id1").command,
            OciCommand::Events { stats: true, .. }
        ));
        assert!(matches!(
            parse("--root /r kill --all id1 9").command,
            OciCommand::Kill { all: true, .. }
        ));
        assert!(matches!(
            parse("--root /r delete --force id1").command,
            OciCommand::Delete { force: true, .. }
        ));
    }

    #[test]
    fn exec_needs_a_command_or_a_process_file() {
        let OciCommand::Exec(e) = parse("exec id1").command else {
            panic!()
        };
        assert!(e.options().unwrap_err().to_string().contains("--process"));
        let OciCommand::Exec(e) = parse("exec --cap CAP_NET_ADMIN -e A=1 id1 sh -c true").command
        else {
            panic!()
        };
        let o = e.options().unwrap();
        assert_eq!(o.args, ["sh", "-c", "true"]);
        assert_eq!(o.caps, ["CAP_NET_ADMIN"]);
    }

    #[test]
    fn update_flags_fill_the_resources() {
        let OciCommand::Update(u) =
            parse("update --memory 1048576 --pids-limit 10 --cpu-quota 5000 id1").command
        else {
            panic!()
        };
        let r = u.resources().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(1_048_576));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(5000));
        let OciCommand::Update(u) = parse("update --blkio-weight 5 id1").command else {
            panic!()
        };
        assert!(u.resources().is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("fast").is_err());
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_user("1:2").unwrap(), (1, 2));
        assert!(parse_user("root").is_err());
    }
}
