//! `exec`: a new process in a running container (`runc exec`).
//!
//! The runtime process (single-threaded) opens the init's namespaces and
//! the container's cgroup, enters the PID namespace for its children and
//! clones; it stays in the host's other namespaces, where the pid file,
//! the `--log` file and the console socket are. The child joins the
//! namespaces (the network one, then the user namespace, which grants
//! the rights to join the others: see [`NAMESPACES`]), moves itself into the cgroup, takes the container
//! process's security (rlimits, user, capabilities, no_new_privs,
//! seccomp last) and execs the command found in the container's PATH.
//! Its errors come back on a pipe its execve closes, so `exec` fails
//! (even with `--detach`) when the process could not be started. As
//! with the init, the child stays non-dumpable until its execve, and
//! every descriptor from 3 up is closed on exec.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use std::os::fd::{AsFd, OwnedFd};

use oci_spec::runtime::{Capability, Process, Spec, User};

use super::error::{Result, RuntimeError, Step};
use super::process::{
    chdir_inside_root, cstrings, find_program, join_keyring, set_oom_score_adj, set_rlimits,
    set_user,
};
use super::{Container, Status, caps, console, seccomp, sys};

/// What `exec` runs, over the container's own process settings.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A whole process (runc's `exec --process process.json`): run as
    /// given, and the overrides below but the pid file, detach and the
    /// console socket are ignored, as runc does.
    pub process: Option<Process>,
    pub args: Vec<String>,
    /// `KEY=VALUE`, replacing the container's value of KEY.
    pub env: Vec<String>,
    /// uid and gid, instead of the container's.
    pub user: Option<(u32, u32)>,
    /// Supplementary groups with `user` (runc's --additional-gids).
    pub additional_gids: Vec<u32>,
    pub cwd: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Do not wait: return once the process runs.
    pub detach: bool,
    /// A pty for the process (runc's --tty), its master sent to
    /// `console_socket`.
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    /// Capabilities added to the bounding, effective and permitted sets
    /// (runc's --cap).
    pub caps: Vec<String>,
    /// Sets no_new_privileges (runc's --no-new-privs).
    pub no_new_privs: bool,
    /// Descriptors from 3 up passed to the process.
    pub preserve_fds: u32,
}

/// Namespaces in the order they are joined. The network namespace comes
/// before the user namespace: it may be owned by the host's user
/// namespace (one an engine made and the container joined, as Husk's
/// bridge does), where only the host's root may enter it; the host's root
/// may enter any other too. The user namespace then grants the rights to
/// join the rest.
const NAMESPACES: [&str; 8] = ["net", "user", "ipc", "uts", "pid", "cgroup", "time", "mnt"];

impl Container {
    /// Runs `opts.args` in the container; returns its exit code (128 +
    /// signal when killed), or 0 at once with `detach`.
    pub fn exec(&self, opts: &ExecOptions) -> Result<i32> {
        let status = self.status();
        if status != Status::Running {
            return Err(self.wrong_status(status, "exec needs a running container"));
        }
        let config = self.record.bundle.join("config.json");
        let spec = Spec::load(&config)
            .map_err(|e| RuntimeError::Config(format!("{}: {e}", config.display())))?;
        let process = match &opts.process {
            Some(process) => given_process(process.clone(), spec.process().as_ref())?,
            None => exec_process(&spec, opts)?,
        };
        let terminal = process.terminal() == Some(true);
        console::check(terminal, opts.console_socket.as_deref())?;
        // Connected from the host's view of the path, before the joins.
        let console = opts
            .console_socket
            .as_deref()
            .map(console::connect)
            .transpose()?;
        let caps = caps::CapMasks::from_spec(process.capabilities().as_ref())?;
        let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => seccomp::compile(profile)?,
            None => seccomp::Programs::default(),
        };
        let init = self.record.pid;
        // Opened now, from the host's view: after joining the mount
        // namespace these paths would mean something else.
        let mut namespaces = Vec::new();
        for kind in NAMESPACES {
            let theirs = format!("/proc/{init}/ns/{kind}");
            let ours = format!("/proc/self/ns/{kind}");
            let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                // A kernel without time namespaces has no such file.
                (Err(e), _) if kind == "time" && e.kind() == std::io::ErrorKind::NotFound => true,
                (Err(e), _) => return Err(RuntimeError::os(format!("opening {theirs}"), e)),
                _ => false,
            };
            if !same {
                let file = File::open(&theirs).step(|| format!("opening {theirs}"))?;
                namespaces.push((kind, file));
            }
        }
        let cgroup = match &self.record.cgroup {
            Some(dir) => Some(
                OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .step(|| format!("opening {}", dir.join("cgroup.procs").display()))?,
            ),
            None => None,
        };
        // The runtime stays in the host's namespaces (the pid file, the
        // --log file and the caller's paths are the host's); it enters only
        // the PID namespace, which changes its children's, not its own. The
        // child joins the others.
        let (pid_ns, others): (Vec<_>, Vec<_>) =
            namespaces.into_iter().partition(|(kind, _)| *kind == "pid");
        for (kind, file) in &pid_ns {
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::ProcessID),
            )
            .step(|| format!("joining the container's {kind} namespace"))?;
        }
        // The child's errors come back on this pipe; its execve closes it.
        // Kept above the preserved descriptors, which the child passes on.
        let (report_rx, low_tx) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).step(|| "creating a pipe")?;
        let report_tx = rustix::io::fcntl_dupfd_cloexec(&low_tx, 3 + opts.preserve_fds as i32)
            .step(|| "moving the report pipe")?;
        // Every write end but the child's must be gone for its EOF.
        drop(low_tx);
        let child = sys::clone3(0).step(|| "forking the exec process")?;
        let Some(pid) = child else {
            drop(report_rx);
            let child = Child {
                process: &process,
                caps: &caps,
                filters: &filters,
                console: console.as_ref(),
                preserve_fds: opts.preserve_fds,
                keyring: self.record.keyring.as_deref(),
            };
            let err = match child.setup(&others, cgroup) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = File::from(report_tx).write_all(err.to_string().as_bytes());
            sys::exit_now(127);
        };
        drop(report_tx);
        drop(others);
        let mut message = Vec::new();
        let _ = std::io::Read::read_to_end(&mut File::from(report_rx), &mut message);
        if !message.is_empty() {
            let _ = super::process::wait(pid);
            return Err(RuntimeError::Init {
                message: format!("exec: {}", String::from_utf8_lossy(&message)),
            });
        }
        if let Some(path) = &opts.pid_file {
            super::write_pid_file(path, pid.as_raw_nonzero().get())?;
        }
        if opts.detach {
            return Ok(0);
        }
        super::process::wait(pid)
    }
}

/// The process to run: the container's, with the command and overrides.
fn exec_process(spec: &Spec, opts: &ExecOptions) -> Result<Process> {
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::Config("the bundle has no process".into()))?;
    let mut env = process.env().clone().unwrap_or_default();
    for entry in &opts.env {
        let Some((key, _)) = entry.split_once('=') else {
            return Err(RuntimeError::Config(format!(
                "environment entry {entry:?} is not KEY=VALUE"
            )));
        };
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(entry.clone());
    }
    if opts.args.is_empty() {
        return Err(RuntimeError::Config("exec: no command".into()));
    }
    process
        .set_args(Some(opts.args.clone()))
        .set_env(Some(env))
        .set_terminal(Some(opts.tty));
    if let Some((uid, gid)) = opts.user {
        let mut user = User::default();
        user.set_uid(uid).set_gid(gid);
        process.set_user(user);
    }
    if !opts.additional_gids.is_empty() {
        // With or without --user: the groups replace the container's.
        let mut user = process.user().clone();
        user.set_additional_gids(Some(opts.additional_gids.clone()));
        process.set_user(user);
    }
    if opts.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !opts.caps.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        let mut sets = [
            caps.bounding().clone().unwrap_or_default(),
            caps.effective().clone().unwrap_or_default(),
            caps.permitted().clone().unwrap_or_default(),
        ];
        for name in &opts.caps {
            // oci-spec parses `SYS_ADMIN`; runc's flag takes `CAP_SYS_ADMIN`.
            let upper = name.to_ascii_uppercase();
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            let cap = bare.parse::<Capability>().map_err(|_| {
                RuntimeError::Config(format!("--cap {name}: not a capability name (CAP_…)"))
            })?;
            for set in &mut sets {
                set.insert(cap);
            }
        }
        let [bounding, effective, permitted] = sets;
        caps.set_bounding(Some(bounding))
            .set_effective(Some(effective))
            .set_permitted(Some(permitted));
        process.set_capabilities(Some(caps));
    }
    if let Some(cwd) = &opts.cwd {
        if !cwd.is_absolute() {
            return Err(RuntimeError::Config(format!(
                "cwd {} is not absolute",
                cwd.display()
            )));
        }
        process.set_cwd(cwd.clone());
    }
    Ok(process)
}

/// `exec --process FILE`: checked as `create` checks the container's;
/// without capabilities of its own it has the container's (runc's rule).
fn given_process(mut process: Process, container: Option<&Process>) -> Result<Process> {
    if process.capabilities().is_none() {
        process.set_capabilities(container.and_then(|p| p.capabilities().clone()));
    }
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::Config(
            "the --process file's args are empty".into(),
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::Config(format!(
            "the --process file's cwd {} is not absolute",
            process.cwd().display()
        )));
    }
    Ok(process)
}

/// What the exec child needs, computed before the clone.
struct Child<'a> {
    process: &'a Process,
    caps: &'a caps::CapMasks,
    filters: &'a seccomp::Programs,
    console: Option<&'a OwnedFd>,
    preserve_fds: u32,
    keyring: Option<&'a str>,
}

impl Child<'_> {
    /// In the child: joins the namespaces (in [`NAMESPACES`]' order), then
    /// sets the process up.
    /// Returns only on failure.
    fn setup(
        &self,
        namespaces: &[(&str, File)],
        cgroup: Option<File>,
    ) -> Result<std::convert::Infallible> {
        let Child {
            process,
            caps,
            filters,
            ..
        } = *self;
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .step(|| "prctl(PR_SET_DUMPABLE, 0)")?;
        if let Some(mut procs) = cgroup {
            // "0": the writing process itself.
            procs
                .write_all(b"0")
                .step(|| "joining the container's cgroup")?;
        }
        set_rlimits(process)?;
        // Before joining a user namespace: still the host's root, the
        // owner of this non-dumpable process's /proc entries.
        set_oom_score_adj(process, "self")?;
        // After the cgroup, which is joined from the host's namespaces.
        for (kind, file) in namespaces {
            rustix::thread::move_into_link_name_space(file.as_fd(), None)
                .step(|| format!("joining the container's {kind} namespace"))?;
        }
        // In the container's user namespace, where its keyring's name is.
        if let Some(name) = self.keyring {
            join_keyring(name)?;
        }
        if let Some(socket) = self.console {
            console::attach(socket.as_fd(), process)?;
        }
        let env = cstrings(process.env().iter().flatten().map(String::as_str));
        let args = process.args().clone().unwrap_or_default();
        let program = find_program(&args[0], process.env().as_deref().unwrap_or_default())?;
        let argv = cstrings(args.iter().map(String::as_str));
        let no_new_privs = process.no_new_privileges() == Some(true);
        // Before any filter (see the init's same order in process.rs).
        chdir_inside_root(process.cwd())?;
        for fd in 3..3 + self.preserve_fds {
            sys::keep_on_exec(fd as i32).step(|| format!("passing fd {fd}"))?;
        }
        sys::cloexec_from(3 + self.preserve_fds).step(|| "close_range")?;
        if !no_new_privs {
            filters.apply()?;
        }
        caps::drop_bounding(caps)?;
        set_user(process)?;
        caps::apply(caps)?;
        if no_new_privs {
            rustix::thread::set_no_new_privs(true).step(|| "prctl(PR_SET_NO_NEW_PRIVS)")?;
        }
        std::env::set_current_dir(process.cwd()).step(|| {
            format!(
                "chdir to cwd {} as the process's user",
                process.cwd().display()
            )
        })?;
        if no_new_privs {
            filters.apply()?;
        }
        sys::reset_signals();
        let err = sys::execve(&program, &argv, &env);
        Err(RuntimeError::os(
            format!("exec {}", program.to_string_lossy()),
            err,
        ))
    }
}
