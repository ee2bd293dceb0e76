//! Bodies between the connection and blocking work: a tar written by a
//! blocking walk streamed as the response (`docker cp` out, `docker
//! save`), and a request's body read by a blocking extraction (`docker
//! cp` in).

use std::io::{self, Read, Write};

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// How much is buffered between the blocking side and the connection.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// A response body written by `work` on a blocking thread. The answer
/// has begun by then: a failure can only end it, and it ends it as a
/// broken transfer (no last chunk), never as a complete body, so that a
/// client cannot keep a cut archive for a whole one. `what` names the
/// body in the log line a failure leaves.
pub fn from_blocking<E: std::fmt::Display>(
    what: String,
    work: impl FnOnce(&mut dyn Write) -> Result<(), E> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx.clone()));
        let done = work(&mut out).map_err(|e| e.to_string()).and_then(|()| {
            out.flush()
                .map_err(|e| format!("sending the last bytes: {e}"))
        });
        if let Err(e) = done {
            log::info!("Docker API: {what}: {e}");
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk, rx))
    });
    Body::from_stream(chunks)
}

/// The bytes written on the blocking side, to the response body.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The request's body, from the connection to a blocking reader.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    /// Feeds `body` to the reader it returns; abort the task when done
    /// (a reader that stops early leaves the body unread).
    pub fn of(body: Body) -> (ChannelReader, tokio::task::JoinHandle<()>) {
        use http_body_util::BodyExt;
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let feed = tokio::spawn(async move {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let item = match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue,
                    },
                    Err(e) => Err(io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        (reader, feed)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(data)) => self.current = data,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
