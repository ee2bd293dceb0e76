//! What flows out of a container: its logs (and `logs -f`), the output of
//! an exec, and its resource use. Streams are sequences of JSON lines:
//! log entries as stored ([`LogEntry`]), and for an exec a last line with
//! the exit code ([`ExecExit`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::error::{ManagerError, Result};
use super::info::Status;
use super::lifecycle::cgroup_dir;
use super::logs::{Follower, LineSplitter, files_oldest_first, read_lines};
use super::manager::Manager;
use super::stats;
use super::time::rfc3339;
use husk_api::containers::{ExecExit, ExecRequest, LogEntry, LogOptions, Stats, Stream};
use husk_spec::{read_rootfs_file, resolve_user};

/// How often `logs -f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

fn line(mut text: String) -> Vec<u8> {
    text.push('\n');
    text.into_bytes()
}

impl Manager {
    /// The container's stored output, and with `follow` what it writes
    /// next until it stops. The stream ends early if the receiver goes.
    pub fn logs(&self, name: &str, opts: LogOptions) -> Result<mpsc::Receiver<Vec<u8>>> {
        let slot = self.slot(name)?;
        let (tx, rx) = mpsc::channel(64);
        let files = files_oldest_first(&slot.paths.log(), self.0.config.log_max_files);
        tokio::spawn(async move {
            let keep = |l: &String| match opts.stream {
                None => true,
                Some(stream) => {
                    serde_json::from_str::<LogEntry>(l).is_ok_and(|e| e.stream == stream)
                }
            };
            let (rotated, current) = files.split_at(files.len().saturating_sub(1));
            let mut lines = read_lines(rotated, None).unwrap_or_default();
            let mut follower = Follower::at_start(current.first().map_or(&slot.paths.log(), |p| p));
            lines.extend(follower.poll().unwrap_or_default());
            lines.retain(keep);
            if let Some(tail) = opts.tail {
                lines.drain(..lines.len().saturating_sub(tail));
            }
            for l in lines {
                if tx.send(line(l)).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut state = slot.state.subscribe();
            loop {
                let done = {
                    let s = state.borrow_and_update();
                    s.removed || matches!(s.status, Status::Exited | Status::Created)
                };
                for l in follower.poll().unwrap_or_default().into_iter().filter(keep) {
                    if tx.send(line(l)).await.is_err() {
                        return;
                    }
                }
                if done || tx.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = state.changed() => {}
                }
            }
        });
        Ok(rx)
    }

    /// Runs a process in the running container; streams its output, then
    /// its exit code.
    pub async fn exec(&self, name: &str, request: ExecRequest) -> Result<mpsc::Receiver<Vec<u8>>> {
        let slot = self.slot(name)?;
        let snapshot = slot.snapshot();
        let (Status::Running, Some(init_pid)) = (snapshot.status, snapshot.init_pid) else {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        };
        if request.cmd.is_empty() {
            return Err(ManagerError::Invalid("exec: no command".into()));
        }
        let mut command = tokio::process::Command::new(&self.0.config.agent_exe);
        command
            .arg("oci")
            .arg("--root")
            .arg(self.runtime_root())
            .arg("exec");
        for env in &request.env {
            if !env.contains('=') {
                return Err(ManagerError::Invalid(format!(
                    "exec: environment entry `{env}` is not KEY=VALUE"
                )));
            }
            command.arg("--env").arg(env);
        }
        if let Some(user) = &request.user {
            command.arg("--user").arg(numeric_user(init_pid, user)?);
        }
        if let Some(cwd) = &request.workdir {
            command.arg("--cwd").arg(cwd);
        }
        command
            .arg(name)
            .arg("--")
            .args(&request.cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            ManagerError::io(format!("running {}", self.0.config.agent_exe.display()), e)
        })?;
        let (tx, rx) = mpsc::channel(64);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        tokio::spawn(async move {
            let out = pump(stdout, Stream::Stdout, tx.clone());
            let err = pump(stderr, Stream::Stderr, tx.clone());
            tokio::join!(out, err);
            let exit_code = match child.wait().await {
                Ok(status) => status.code().unwrap_or(255),
                Err(_) => 255,
            };
            let exit = serde_json::to_string(&ExecExit { exit_code }).unwrap_or_default();
            let _ = tx.send(line(exit)).await;
        });
        Ok(rx)
    }

    /// The container's resource use now.
    pub fn stats(&self, name: &str) -> Result<Stats> {
        let slot = self.slot(name)?;
        if slot.snapshot().status != Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        }
        stats::read(&cgroup_dir(name)).ok_or_else(|| {
            ManagerError::Conflict(format!("container {name} has no cgroup (not running?)"))
        })
    }
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

/// One output of an exec into the stream, line by line.
async fn pump(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    stream: Stream,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut lines = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        lines.feed(&buf[..n], |l| pending.push(entry(stream, l)));
        for l in pending.drain(..) {
            if tx.send(l).await.is_err() {
                return;
            }
        }
    }
    lines.finish(|l| pending.push(entry(stream, l)));
    for l in pending {
        let _ = tx.send(l).await;
    }
}

fn entry(stream: Stream, text: &[u8]) -> Vec<u8> {
    let entry = LogEntry {
        log: String::from_utf8_lossy(text).into_owned(),
        stream,
        time: rfc3339(std::time::SystemTime::now()),
    };
    line(serde_json::to_string(&entry).unwrap_or_default())
}
