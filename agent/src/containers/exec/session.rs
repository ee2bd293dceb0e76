//! A started exec, from its runtime's spawn to its exit code: the pty
//! master received (a tty), the output read (the pipes, or the master
//! and the runtime's stderr) and written to the client's socket as
//! Docker's stream (raw for a tty, stdcopy frames otherwise, the
//! streams the client did not attach dropped), what the client writes
//! to the stdin (its EOF closes a pipe), and at the end the exit code,
//! recorded before the socket closes: the client asks for it as soon as
//! the stream ends.
//!
//! A client that goes (or detaches) does not stop the process: its
//! output is read on and dropped. The stream ends when every output
//! reached its EOF, or [`FLUSH`] after the process exited (a process it
//! left behind may hold the pipes or the pty open).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use super::table::{Exec, ExecConfig};
use crate::containers::console::ConsoleSocket;
use crate::containers::shim::frame_header;
use husk_api::containers::Stream;

/// The exit code of an exec whose process never ran (Docker's: the
/// command could not be invoked).
pub const CANNOT_RUN: i32 = 126;
/// After the process exited, how long its output may take to drain.
const FLUSH: Duration = Duration::from_secs(2);
/// What one read takes (a frame's payload at most).
const CHUNK: usize = 32 * 1024;

/// What `exec_start` hands over.
pub struct Process {
    /// `husk-agent oci exec`: it waits for the process and exits with its
    /// code (128 + the signal that killed it).
    pub child: Child,
    /// With a tty: where the master comes.
    pub console: Option<ConsoleSocket>,
    /// Written by the runtime once the process runs.
    pub pid_file: PathBuf,
}

/// Where the client's bytes go.
enum Input {
    Pipe(ChildStdin),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

impl Input {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Input::Pipe(pipe) => pipe.write_all(data).await,
            Input::Pty(master) => write_pty(master, data).await,
        }
    }
}

/// Runs the session to its end; `conn`: the agent's end of the
/// client's socket (None: detached).
pub async fn serve(exec: Arc<Exec>, mut process: Process, conn: Option<UnixStream>) {
    let (tx, mut rx) = mpsc::channel::<(Stream, Vec<u8>)>(16);
    let mut readers = Vec::new();
    let mut input = None;
    if let Some(console) = process.console.take() {
        match receive_master(console, &process.child).await {
            Ok(master) => {
                let master = Arc::new(master);
                exec.set_master(Arc::clone(&master));
                readers.push(tokio::spawn(read_pty(Arc::clone(&master), tx.clone())));
                if exec.config.request.interactive {
                    input = Some(Input::Pty(master));
                }
            }
            // The runtime's stderr, read below, tells the client why.
            Err(e) => log::info!("exec {}: {e}", exec.id),
        }
    }
    if let Some(stdout) = process.child.stdout.take() {
        readers.push(tokio::spawn(read_pipe(stdout, Stream::Stdout, tx.clone())));
    }
    if let Some(stderr) = process.child.stderr.take() {
        readers.push(tokio::spawn(read_pipe(stderr, Stream::Stderr, tx.clone())));
    }
    if let Some(stdin) = process.child.stdin.take() {
        input = Some(Input::Pipe(stdin));
    }
    drop(tx);
    let (mut writer, feeding) = match conn {
        Some(conn) => {
            let (reader, writer) = conn.into_split();
            (Some(writer), Some(tokio::spawn(feed(reader, input))))
        }
        None => (None, None),
    };
    let mut exited = None;
    let mut flush_by = None;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some((stream, data)) => send(&mut writer, &exec.config, stream, &data).await,
                None => break,
            },
            status = process.child.wait(), if exited.is_none() => {
                exited = Some(status);
                flush_by = Some(tokio::time::Instant::now() + FLUSH);
            }
            () = tokio::time::sleep_until(flush_by.unwrap_or_else(tokio::time::Instant::now)),
                if flush_by.is_some() => break,
        }
    }
    for reader in &readers {
        reader.abort();
    }
    let status = match exited {
        Some(status) => status,
        None => process.child.wait().await,
    };
    let code = exit_code(status, process.pid_file.exists());
    exec.finish(code);
    let _ = std::fs::remove_file(&process.pid_file);
    log::info!("{}: exec {} exited with {code}", exec.container, exec.id);
    if let Some(feeding) = feeding {
        feeding.abort();
    }
    if let Some(mut writer) = writer {
        // The end of the stream is the client's EOF.
        let _ = writer.shutdown().await;
    }
}

/// The process's code; one that never ran (no pid file) and failed
/// could not be invoked.
fn exit_code(status: io::Result<std::process::ExitStatus>, ran: bool) -> i32 {
    let code = match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255),
        Err(_) => 255,
    };
    if !ran && code != 0 { CANNOT_RUN } else { code }
}

/// One chunk to the client as Docker's stream: raw for a tty, framed
/// otherwise; dropped when the client did not attach that stream or
/// went (its output is still read, so the process never blocks on it).
async fn send(
    writer: &mut Option<OwnedWriteHalf>,
    config: &ExecConfig,
    stream: Stream,
    data: &[u8],
) {
    let Some(out) = writer else {
        return;
    };
    let wanted = match (config.request.tty, stream) {
        (true, _) => config.stdout || config.stderr,
        (false, Stream::Stdout) => config.stdout,
        (false, Stream::Stderr) => config.stderr,
    };
    if !wanted {
        return;
    }
    let written = if config.request.tty {
        out.write_all(data).await
    } else {
        let header = frame_header(stream, data.len());
        match out.write_all(&header).await {
            Ok(()) => out.write_all(data).await,
            Err(e) => Err(e),
        }
    };
    if written.is_err() {
        *writer = None;
    }
}

/// The client's bytes to the stdin until the client's EOF, which closes
/// a pipe (a pty has no EOF to pass on: its stdin stays).
async fn feed(mut from: OwnedReadHalf, mut input: Option<Input>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Without a stdin (or once it is gone) what comes is dropped.
        if let Some(to) = &mut input
            && to.write_all(&buf[..n]).await.is_err()
        {
            input = None;
        }
    }
    drop(input);
}

async fn read_pipe(
    mut pipe: impl AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Vec<u8>)>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send((stream, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The master's output until EIO: every holder of the pty's peer
/// closed it.
async fn read_pty(master: Arc<AsyncFd<OwnedFd>>, tx: mpsc::Sender<(Stream, Vec<u8>)>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let Ok(mut ready) = master.readable().await else {
            return;
        };
        let read = ready
            .try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf[..]).map_err(io::Error::from));
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => {
                if tx.send((Stream::Stdout, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return,
            // Not readable after all: wait again.
            Err(_) => {}
        }
    }
}

async fn write_pty(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut ready = master.writable().await?;
        match ready.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(())
}

/// The pty master from the console socket (the shim's code, on a
/// blocking thread), non-blocking and registered with tokio; an error
/// as soon as the runtime exits without sending it.
async fn receive_master(console: ConsoleSocket, child: &Child) -> io::Result<AsyncFd<OwnedFd>> {
    // Not reaped yet (nothing waited for it): the pid is still the child's.
    let pidfd = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
        .and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
    let master = tokio::task::spawn_blocking(move || {
        console.receive_master_unless(pidfd.as_ref().map(|fd| fd.as_fd()))
    })
    .await
    .map_err(io::Error::other)??;
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK)?;
    crate::containers::sys::async_fd(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: i32) -> io::Result<std::process::ExitStatus> {
        Ok(std::process::ExitStatus::from_raw(raw))
    }

    #[test]
    fn exit_codes_are_dockers() {
        // exit(3), killed by SIGKILL, a runtime that failed before the
        // process ran, and one that ran and failed.
        assert_eq!(exit_code(status(3 << 8), true), 3);
        assert_eq!(exit_code(status(9), true), 137);
        assert_eq!(exit_code(status(1 << 8), false), CANNOT_RUN);
        assert_eq!(exit_code(status(0), false), 0);
        assert_eq!(exit_code(status(1 << 8), true), 1);
    }

    #[tokio::test]
    async fn frames_what_the_client_attached_and_nothing_once_it_went() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (_reader, writer) = ours.into_split();
        let mut writer = Some(writer);
        let config = ExecConfig {
            stdout: true,
            stderr: false,
            ..ExecConfig::default()
        };
        send(&mut writer, &config, Stream::Stdout, b"out").await;
        send(&mut writer, &config, Stream::Stderr, b"err").await;
        drop(writer);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [&[1, 0, 0, 0, 0, 0, 0, 3][..], b"out"].concat());
        // A tty's output goes raw.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (_reader, writer) = ours.into_split();
        let mut writer = Some(writer);
        let mut tty = config.clone();
        tty.request.tty = true;
        send(&mut writer, &tty, Stream::Stdout, b"raw").await;
        drop(writer);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"raw");
        // A client that went: the writer is dropped, nothing fails.
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let (_reader, writer) = ours.into_split();
        let mut writer = Some(writer);
        for _ in 0..3 {
            send(&mut writer, &config, Stream::Stdout, b"lost").await;
        }
        assert!(writer.is_none());
    }
}
