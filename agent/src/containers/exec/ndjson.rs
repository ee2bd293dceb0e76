//! Husk's plain exec stream (`POST /v1/containers/{name}/exec` without
//! the upgrade): the process's output as log entries ([`LogEntry`]),
//! line by line as it comes, then its exit code ([`ExecExit`]), one JSON
//! document a line.

use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::containers::logs::LineSplitter;
use crate::containers::time::rfc3339;
use husk_api::containers::{ExecExit, LogEntry, Stream};

fn line(mut text: String) -> Vec<u8> {
    text.push('\n');
    text.into_bytes()
}

/// The child's outputs, then its exit code, as lines.
pub fn stream(mut child: Child) -> mpsc::Receiver<Vec<u8>> {
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
    rx
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
