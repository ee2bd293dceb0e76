//! Exec: a new process in a running container, run by the embedded
//! runtime (`husk-agent oci exec`, which joins the container's
//! namespaces and cgroup and takes its process's capabilities, seccomp
//! filter and no_new_privs; `runtime/src/exec.rs`).
//!
//! Two forms:
//! - [`Manager::exec`], Husk's plain exec: no stdin, the output as
//!   JSON lines ([`ndjson`]), then the exit code;
//! - [`Manager::exec_create`] then [`Manager::exec_start`], Docker's
//!   (and Husk's upgraded exec): the process with its stdin piped
//!   (`interactive`) or on a pty (`tty`, the master received on a console
//!   socket of the agent's as the shim receives a container's), its
//!   output as Docker's stream (raw for a tty, multiplexed otherwise)
//!   on a socket the API splices with the client's connection
//!   ([`session`]), its exit code kept in the [`table`] for a while.

mod ndjson;
mod session;
mod table;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::console::ConsoleSocket;
use super::error::{IoContext, ManagerError, Result};
use super::info::Status;
use super::manager::Manager;
use husk_api::containers::ExecRequest;
use husk_spec::{read_rootfs_file, resolve_user};

use self::table::{Exec, ResizeError, new_id};
pub use self::table::{ExecConfig, ExecView, Execs, KEEP_ENDED, MAX_EXECS};

impl Manager {
    /// Runs a process in the running container without stdin; streams
    /// its output as log entries, then its exit code.
    pub async fn exec(&self, name: &str, request: ExecRequest) -> Result<mpsc::Receiver<Vec<u8>>> {
        if request.tty || request.interactive {
            return Err(ManagerError::Invalid(
                "exec: tty and interactive take the connection over: send `Connection: Upgrade` and `Upgrade: tcp`".into(),
            ));
        }
        check_request(&request)?;
        let init_pid = self.running_init(name)?;
        let mut command = self.exec_command(name, init_pid, &request, Vec::new())?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(ndjson::stream(child))
    }

    /// Makes an exec to be started by [`Manager::exec_start`]: checked
    /// now, run then. Its id.
    pub fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String> {
        check_request(&config.request)?;
        self.running_init(name)?;
        let created_ms = self.slot(name)?.snapshot().record.created_ms;
        let id = new_id().map_err(|e| ManagerError::io("getrandom", e))?;
        let exec = Exec::new(id.clone(), name.to_owned(), created_ms, config);
        self.0
            .execs
            .insert(exec, Instant::now(), |e| self.owns(e))
            .map_err(|e| ManagerError::Unavailable(e.to_string()))?;
        Ok(id)
    }

    /// Starts the exec: the runtime runs before this returns (an error
    /// in the user or the container's state is the answer), the process
    /// comes up behind it. With `attach`, the stream to splice with the
    /// client (Docker's: raw for a tty, multiplexed otherwise; what is
    /// written to it is the stdin, its EOF the stdin's end); without,
    /// the output is dropped. `size`: the pty's first size.
    pub async fn exec_start(
        &self,
        id: &str,
        attach: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Option<UnixStream>> {
        let exec = self.find_exec(id)?;
        let init_pid = self.running_init(&exec.container)?;
        let dir = self.0.config.layout.execs();
        // The id's first half: unique enough, and short for a socket path.
        let stem = dir.join(&exec.id[..32]);
        let pid_file = stem.with_extension("pid");
        exec.begin(pid_file.clone(), size.or(exec.config.size))
            .map_err(|e| ManagerError::Conflict(e.to_string()))?;
        let started = self.spawn_exec(&exec, init_pid, attach, &stem);
        let (child, console) = match started {
            Ok(started) => started,
            Err(e) => {
                exec.finish(session::CANNOT_RUN);
                return Err(e);
            }
        };
        log::info!(
            "{}: exec {} started: {:?}",
            exec.container,
            exec.id,
            exec.config.request.cmd
        );
        let (ours, theirs) = if attach {
            match UnixStream::pair() {
                Ok((ours, theirs)) => (Some(ours), Some(theirs)),
                Err(e) => {
                    // The process runs: its end is still waited for.
                    log::warn!("exec {}: socketpair: {e}; its output is dropped", exec.id);
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let process = session::Process {
            child,
            console,
            pid_file,
        };
        tokio::spawn(session::serve(exec, process, ours));
        Ok(theirs)
    }

    /// The runtime's process for a started exec, and with a tty the
    /// console socket its master comes on.
    fn spawn_exec(
        &self,
        exec: &Exec,
        init_pid: i32,
        attach: bool,
        stem: &std::path::Path,
    ) -> Result<(tokio::process::Child, Option<ConsoleSocket>)> {
        let request = &exec.config.request;
        let dir = self.0.config.layout.execs();
        {
            use std::os::unix::fs::DirBuilderExt;
            // Root's alone, as the rest of the run directory.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .at(&dir)?;
        }
        let pid_file = stem.with_extension("pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut extra: Vec<OsString> = vec!["--pid-file".into(), pid_file.into()];
        let console = if request.tty {
            let path = stem.with_extension("sock");
            let console = ConsoleSocket::bind(&path).at(&path)?;
            extra.extend(["--tty".into(), "--console-socket".into(), path.into()]);
            Some(console)
        } else {
            None
        };
        let mut command = self.exec_command(&exec.container, init_pid, request, extra)?;
        // A tty's stdin is its master; without a client, nothing comes.
        let stdin = request.interactive && attach && !request.tty;
        command
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            // With a tty the runtime's own stdout says nothing; its stderr
            // (why the exec failed) goes to the client as output.
            .stdout(if request.tty {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|e| self.spawn_error(e))?;
        Ok((child, console))
    }

    /// An exec as it is now.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecView> {
        Ok(self.find_exec(id)?.view())
    }

    /// Sets the size of an exec's pty (kept until it has one).
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let exec = self.find_exec(id)?;
        exec.resize(rows, cols).map_err(|e| match e {
            ResizeError::State(e) => ManagerError::Conflict(e.to_string()),
            ResizeError::Pty(e) => ManagerError::io(format!("resizing exec {id}'s terminal"), e),
        })
    }

    fn find_exec(&self, id: &str) -> Result<std::sync::Arc<Exec>> {
        self.0
            .execs
            .get(id, Instant::now(), |e| self.owns(e))
            .ok_or_else(|| ManagerError::NoSuchExec(id.to_owned()))
    }

    /// Whether the exec's container is still the one it was made in.
    fn owns(&self, exec: &Exec) -> bool {
        self.table().get(&exec.container).is_some_and(|slot| {
            let state = slot.state.borrow();
            !state.removed && state.record.created_ms == exec.container_created_ms
        })
    }

    /// The running container's init (host pid).
    fn running_init(&self, name: &str) -> Result<i32> {
        let snapshot = self.slot(name)?.snapshot();
        match (snapshot.status, snapshot.init_pid) {
            (Status::Running, Some(pid)) => Ok(pid),
            _ => Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            ))),
        }
    }

    /// `husk-agent oci --root … exec [flags] [extra] NAME -- CMD…`.
    fn exec_command(
        &self,
        name: &str,
        init_pid: i32,
        request: &ExecRequest,
        extra: Vec<OsString>,
    ) -> Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(&self.0.config.agent_exe);
        command
            .arg("oci")
            .arg("--root")
            .arg(self.runtime_root())
            .arg("exec");
        for env in &request.env {
            command.arg("--env").arg(env);
        }
        if let Some(user) = &request.user {
            command.arg("--user").arg(numeric_user(init_pid, user)?);
        }
        if let Some(cwd) = &request.workdir {
            command.arg("--cwd").arg(cwd);
        }
        command
            .args(extra)
            .arg(name)
            .arg("--")
            .args(&request.cmd)
            .kill_on_drop(true);
        Ok(command)
    }

    fn spawn_error(&self, e: std::io::Error) -> ManagerError {
        ManagerError::io(format!("running {}", self.0.config.agent_exe.display()), e)
    }
}

/// What is refused before anything runs.
fn check_request(request: &ExecRequest) -> Result<()> {
    if request.cmd.is_empty() {
        return Err(ManagerError::Invalid("exec: no command".into()));
    }
    if let Some(env) = request.env.iter().find(|e| !e.contains('=')) {
        return Err(ManagerError::Invalid(format!(
            "exec: environment entry `{env}` is not KEY=VALUE"
        )));
    }
    if let Some(cwd) = &request.workdir
        && !cwd.starts_with('/')
    {
        return Err(ManagerError::Invalid(format!(
            "exec: the working directory `{cwd}` is not absolute"
        )));
    }
    Ok(())
}

/// `user` as `uid:gid`, names looked up in the container's own files.
fn numeric_user(init_pid: i32, user: &str) -> Result<String> {
    let root = PathBuf::from(format!("/proc/{init_pid}/root"));
    let read = |file| {
        read_rootfs_file(&root, file)
            .map_err(|e| ManagerError::io(format!("reading the container's /{file}"), e))
    };
    let passwd = read("etc/passwd")?;
    let group = read("etc/group")?;
    let resolved = resolve_user(user, passwd.as_deref(), group.as_deref())
        .map_err(|e| ManagerError::Invalid(e.to_string()))?;
    Ok(format!("{}:{}", resolved.uid, resolved.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let ok = ExecRequest {
            cmd: vec!["true".into()],
            env: vec!["A=1".into()],
            workdir: Some("/tmp".into()),
            ..ExecRequest::default()
        };
        check_request(&ok).unwrap();
        let none = ExecRequest::default();
        assert!(
            check_request(&none)
                .unwrap_err()
                .to_string()
                .contains("no command")
        );
        let env = ExecRequest {
            env: vec!["A".into()],
            ..ok.clone()
        };
        assert!(
            check_request(&env)
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
        let cwd = ExecRequest {
            workdir: Some("tmp".into()),
            ..ok
        };
        assert!(
            check_request(&cwd)
                .unwrap_err()
                .to_string()
                .contains("not absolute")
        );
    }
}
