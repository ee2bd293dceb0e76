//! `huskctl run -i/-t/-it`, `huskctl attach` and `huskctl exec -i/-t`:
//! the terminal (or stdin and stdout) joined to a container through the
//! agent's attach (`POST …/attach`), or to an exec's process (`POST
//! …/exec` with the exec's options), both an upgraded connection
//! (docs/API.md, "Terminals and attach", "Exec").
//!
//! With a tty and a local terminal, the terminal is raw while attached
//! (the container's own line discipline echoes and edits) and restored
//! on every way out; its size follows SIGWINCH. The detach keys
//! (default ctrl-p ctrl-q) are the agent's to act on: it closes the
//! attach and the container runs on; huskctl watches for them too, only
//! to know that the end was a detach and not the container's exit.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use husk_api::client::{DEFAULT_DETACH_KEYS, DetachScanner, Upgraded, parse_detach_keys};
use husk_api::containers::{
    ContainerInfo, EXEC_ID_HEADER, ExecInfo, ExecRequest, RemovedContainer, WaitResponse,
    container_path, exec_path,
};
use husk_api::{Client, ClientError};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

/// How an attach goes.
#[derive(Debug, Clone)]
pub struct Session {
    /// Send what huskctl reads on stdin to the container (`-i`).
    pub stdin: bool,
    /// The container has a tty: its output comes raw, one stream.
    pub tty: bool,
    /// Docker's form, `ctrl-p,ctrl-q`.
    pub detach_keys: Option<String>,
}

impl Session {
    /// The detach keys, and `path` asking the agent to watch for them.
    fn keys_on(&self, path: String) -> Result<(Vec<u8>, String), ClientError> {
        let text = self.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS);
        let keys = parse_detach_keys(text).map_err(ClientError::Usage)?;
        let path = format!("{path}?detach_keys={}", husk_api::encode_path_segment(text));
        Ok((keys, path))
    }

    /// Whether huskctl's stdin is a terminal; refused when the session
    /// would send a terminal's keys and it is not one.
    fn local_tty(&self) -> Result<bool, ClientError> {
        let local_tty = std::io::stdin().is_terminal();
        if self.stdin && self.tty && !local_tty {
            return Err(ClientError::Usage(
                "the input device is not a TTY (drop -t to stream stdin)".into(),
            ));
        }
        Ok(local_tty)
    }

    /// The local terminal raw while the session sends its keys.
    fn raw_mode(&self, local_tty: bool) -> Result<Option<RawMode>, ClientError> {
        Ok(if self.stdin && self.tty && local_tty {
            Some(RawMode::enter()?)
        } else {
            None
        })
    }
}

/// How the attach ended.
enum Ended {
    Detached,
    Output,
    /// huskctl was told to stop (an exec's session: 128 + the signal).
    Signal(u8),
}

/// What the session is joined to: what a resize and a signal go to.
enum Target<'a> {
    Container(&'a str),
    Exec { name: &'a str, id: &'a str },
}

/// `run` with -i or -t: attach to the created container, start it, and
/// stay until it exits (its exit code) or the user detaches (0). With
/// `remove` the container goes after its exit.
pub async fn run(
    client: &Client,
    name: &str,
    session: Session,
    remove: bool,
) -> Result<u8, ClientError> {
    let code = attach_and(client, name, &session, true).await;
    match code {
        Ok(Some(code)) => {
            if remove {
                remove_container(client, name).await?;
            }
            Ok(code)
        }
        Ok(None) => Ok(0),
        Err(e) => {
            if remove {
                let _ = remove_container(client, name).await;
            }
            Err(e)
        }
    }
}

/// `huskctl attach NAME`.
pub async fn attach(client: &Client, name: &str, session: Session) -> Result<u8, ClientError> {
    Ok(attach_and(client, name, &session, false)
        .await?
        .unwrap_or(0))
}

async fn remove_container(client: &Client, name: &str) -> Result<(), ClientError> {
    client
        .delete::<RemovedContainer>(&format!(
            "{}?force=true&volumes=true",
            container_path(name, None)
        ))
        .await
        .map(|_| ())
}

/// The container's exit code, or None after a detach.
async fn attach_and(
    client: &Client,
    name: &str,
    session: &Session,
    start: bool,
) -> Result<Option<u8>, ClientError> {
    let (keys, path) = session.keys_on(container_path(name, Some("attach")))?;
    let connection = client.upgrade(&path).await?;
    // After the attach: a container that cannot be attached says so first.
    let local_tty = session.local_tty()?;
    if start {
        client
            .post_empty::<ContainerInfo>(&container_path(name, Some("start")))
            .await?;
    }
    let raw = session.raw_mode(local_tty)?;
    let ended = pump(client, &Target::Container(name), session, keys, connection).await;
    drop(raw);
    match ended? {
        Ended::Detached => Ok(None),
        Ended::Signal(code) => Ok(Some(code)),
        Ended::Output => {
            let wait: WaitResponse = client
                .post_empty(&container_path(name, Some("wait")))
                .await?;
            Ok(Some(
                u8::try_from(wait.exit_code.unwrap_or(255)).unwrap_or(255),
            ))
        }
    }
}

/// `exec -i/-t`: the process's stdin, output and terminal joined to
/// huskctl's until it exits (its exit code) or the user detaches (0; it
/// runs on).
pub async fn exec(
    client: &Client,
    name: &str,
    request: ExecRequest,
    detach_keys: Option<String>,
) -> Result<u8, ClientError> {
    let session = Session {
        stdin: request.interactive,
        tty: request.tty,
        detach_keys,
    };
    // Before the exec is made: nothing runs for a session that cannot be.
    let local_tty = session.local_tty()?;
    let (keys, path) = session.keys_on(container_path(name, Some("exec")))?;
    let body = serde_json::to_vec(&request)?;
    let (headers, connection) = client.upgrade_with(&path, Some(body)).await?;
    let id = headers
        .get(EXEC_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::Failed(format!("the agent's answer has no {EXEC_ID_HEADER}")))?
        .to_owned();
    let raw = session.raw_mode(local_tty)?;
    let target = Target::Exec { name, id: &id };
    let ended = pump(client, &target, &session, keys, connection).await;
    drop(raw);
    match ended? {
        Ended::Detached => Ok(0),
        Ended::Signal(code) => Ok(code),
        Ended::Output => {
            // Recorded before the stream ends; asked a few times in case
            // the connection broke first.
            for _ in 0..20 {
                let info: ExecInfo = client.get(&exec_path(name, &id, None)).await?;
                if let Some(code) = info.exit_code {
                    return Ok(u8::try_from(code).unwrap_or(255));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(ClientError::Failed(format!(
                "exec {id}: its output ended but it still runs"
            )))
        }
    }
}

/// Output to stdout (and stderr), stdin to the container, resizes,
/// until the output ends or the user detaches.
async fn pump(
    client: &Client,
    target: &Target<'_>,
    session: &Session,
    keys: Vec<u8>,
    connection: Upgraded,
) -> Result<Ended, ClientError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (reader, writer) = tokio::io::split(connection);
    let output = tokio::spawn(output(reader, session.tty));
    let detached = Arc::new(AtomicBool::new(false));
    let input = session
        .stdin
        .then(|| tokio::spawn(input(writer, keys, Arc::clone(&detached))));
    let mut resizes = session
        .tty
        .then(|| signal(SignalKind::window_change()).ok())
        .flatten();
    if session.tty {
        resize(client, target).await;
    }
    // A raw terminal sends no SIGINT; these still end huskctl, and the
    // terminal must be given back first. Without a tty, Ctrl-C and
    // SIGTERM go to the container, as `docker run`'s --sig-proxy; an
    // exec's process has no such proxy (as `docker exec`): they end
    // huskctl, and the process runs on.
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut output = std::pin::pin!(output);
    let ended = loop {
        tokio::select! {
            // After a detach the agent closes the attach: the output ends.
            _ = &mut output => break if detached.load(Ordering::SeqCst) {
                Ended::Detached
            } else {
                Ended::Output
            },
            Some(()) = recv(&mut resizes) => resize(client, target).await,
            Some(()) = recv(&mut interrupt) => match target {
                Target::Container(name) => forward(client, name, "INT").await,
                Target::Exec { .. } => break Ended::Signal(128 + SIGINT),
            },
            Some(()) = recv(&mut terminate) => match target {
                Target::Container(name) => forward(client, name, "TERM").await,
                Target::Exec { .. } => break Ended::Signal(128 + SIGTERM),
            },
            Some(()) = recv(&mut hangup) => break Ended::Detached,
        }
    };
    if let Some(input) = input {
        input.abort();
    }
    Ok(ended)
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn forward(client: &Client, name: &str, signal: &str) {
    let path = format!("{}?signal={signal}", container_path(name, Some("kill")));
    if let Err(e) = client.post_empty::<ContainerInfo>(&path).await {
        eprintln!("huskctl: forwarding SIG{signal}: {e}");
    }
}

/// SIGINT's and SIGTERM's numbers, for an exit code of 128 + N.
const SIGINT: u8 = 2;
const SIGTERM: u8 = 15;

/// The local terminal's size to the container's or the exec's.
async fn resize(client: &Client, target: &Target<'_>) {
    let size =
        tcgetwinsize(std::io::stdout().as_fd()).or_else(|_| tcgetwinsize(std::io::stdin().as_fd()));
    let Ok(size) = size else {
        return;
    };
    if size.ws_row == 0 || size.ws_col == 0 {
        return;
    }
    let resize = match target {
        Target::Container(name) => container_path(name, Some("resize")),
        Target::Exec { name, id } => exec_path(name, id, Some("resize")),
    };
    let path = format!("{resize}?rows={}&cols={}", size.ws_row, size.ws_col);
    // A container that just exited cannot be resized: not worth a word.
    let _ = client.post_empty::<serde_json::Value>(&path).await;
}

/// The container's output: raw with a tty, else Docker's frames to
/// stdout and stderr.
async fn output(mut reader: ReadHalf<Upgraded>, tty: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut frames = Demux::default();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tty {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
        } else {
            frames.feed(&buf[..n], |stream, data| {
                let _ = if stream == 2 {
                    std::io::stderr().lock().write_all(data)
                } else {
                    let mut out = std::io::stdout().lock();
                    out.write_all(data).and_then(|()| out.flush())
                };
            });
        }
    }
}

/// Docker's stdcopy frames, cut wherever the reads fall.
#[derive(Default)]
struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    fn feed(&mut self, data: &[u8], mut on_frame: impl FnMut(u8, &[u8])) {
        self.pending.extend_from_slice(data);
        loop {
            let Some(header) = self.pending.get(..8) else {
                return;
            };
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let stream = header[0];
            if self.pending.len() < 8 + len {
                return;
            }
            on_frame(stream, &self.pending[8..8 + len]);
            self.pending.drain(..8 + len);
        }
    }
}

/// Stdin to the container; its end is a half-close. Read on a thread of
/// its own: a blocking read of a terminal cannot be cancelled, and the
/// process's exit must not wait for it.
async fn input(mut writer: WriteHalf<Upgraded>, keys: Vec<u8>, detached: Arc<AtomicBool>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    let mut scanner = DetachScanner::new(keys);
    let mut ignored = Vec::new();
    while let Some(chunk) = rx.recv().await {
        // The agent acts on the keys; this only tells a detach from an
        // exit when the connection closes.
        if scanner.feed(&chunk, &mut ignored) {
            // Known before the agent can close the attach.
            detached.store(true, Ordering::SeqCst);
        }
        ignored.clear();
        if writer.write_all(&chunk).await.is_err() || detached.load(Ordering::SeqCst) {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// The local terminal raw while attached; restored when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<Self, ClientError> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())
            .map_err(|e| ClientError::Usage(format!("reading the terminal's mode: {e}")))?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)
            .map_err(|e| ClientError::Usage(format!("making the terminal raw: {e}")))?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::Demux;

    #[test]
    fn frames_are_demultiplexed_across_reads() {
        let mut data = vec![1, 0, 0, 0, 0, 0, 0, 3];
        data.extend_from_slice(b"out");
        data.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        data.extend_from_slice(b"er");
        let mut got = Vec::new();
        let mut demux = Demux::default();
        for byte in &data {
            demux.feed(std::slice::from_ref(byte), |s, d| got.push((s, d.to_vec())));
        }
        assert_eq!(got, [(1, b"out".to_vec()), (2, b"er".to_vec())]);
    }
}
