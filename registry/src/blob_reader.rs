//! A layer blob as a blocking `Read`, for the store's unpacker to
//! consume as it arrives: the HTTP body is awaited chunk by chunk on the
//! runtime, and a connection that drops or stalls is picked up again
//! with a `Range` request from the byte reached (or from the next
//! endpoint, once one has failed too often). What it yields is not
//! trusted: the store checks size, digest and diff_id.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Bytes;

use super::client::{Endpoint, Registries};
use super::error::RegistryError;
use super::http::Response;
use super::progress::{Progress, ProgressFn, report};

/// Tries per endpoint before the next one is used.
pub const ATTEMPTS_PER_ENDPOINT: u32 = 4;
/// Connections one blob may take in all, progress or not: a server that
/// sends a byte per connection does not hold a pull for ever.
pub const MAX_RECONNECTS: u32 = 64;
const REPORT_EVERY: Duration = Duration::from_millis(200);

pub(crate) struct BlobReader {
    pub handle: tokio::runtime::Handle,
    pub registries: Arc<Registries>,
    /// The endpoint that served the manifest first.
    pub endpoints: Vec<Endpoint>,
    pub repository: String,
    pub digest: String,
    pub size: u64,
    pub cancel: Arc<AtomicBool>,
    pub progress: Option<ProgressFn>,
    pub base_delay: Duration,
    pub endpoint: usize,
    pub offset: u64,
    pub response: Option<Response>,
    pub pending: Bytes,
    /// Bytes still to drop from a 200 answer to a Range request.
    pub skip: u64,
    pub failures: u32,
    pub reconnects: u32,
    pub last_report: Instant,
    /// Why the transfer was given up, for the caller to tell the
    /// network's failure from the layer's (the unpacker only sees an
    /// I/O error).
    pub gave_up: Arc<std::sync::Mutex<Option<String>>>,
}

impl BlobReader {
    pub fn new(
        registries: Arc<Registries>,
        endpoints: Vec<Endpoint>,
        repository: String,
        digest: String,
        size: u64,
        cancel: Arc<AtomicBool>,
        progress: Option<ProgressFn>,
    ) -> Self {
        Self {
            handle: tokio::runtime::Handle::current(),
            registries,
            endpoints,
            repository,
            digest,
            size,
            cancel,
            progress,
            base_delay: Duration::from_millis(200),
            endpoint: 0,
            offset: 0,
            response: None,
            pending: Bytes::new(),
            skip: 0,
            failures: 0,
            reconnects: 0,
            last_report: Instant::now(),
            gave_up: Arc::default(),
        }
    }

    fn open(&mut self) -> Result<(), RegistryError> {
        let endpoint = &self.endpoints[self.endpoint];
        let rest = format!("blobs/{}", self.digest);
        let response = self.handle.block_on(self.registries.get(
            endpoint,
            &self.repository,
            &rest,
            None,
            self.offset,
        ))?;
        self.skip = 0;
        // A blob of another size than its descriptor's is refused before
        // it is read (not read to its end and then asked past it).
        let total = match response.status {
            206 => response
                .header("content-range")
                .and_then(|r| r.rsplit_once('/'))
                .and_then(|(_, total)| total.parse::<u64>().ok()),
            _ => response
                .header("content-length")
                .and_then(|l| l.parse::<u64>().ok()),
        };
        if let Some(total) = total
            && total != self.size
        {
            return Err(RegistryError::Status {
                url: response.url.to_string(),
                status: response.status,
                message: format!(
                    "the blob is {total} bytes, but its descriptor says {}",
                    self.size
                ),
            });
        }
        if self.offset > 0 {
            match response.status {
                206 => {
                    let range = response.header("content-range").unwrap_or_default();
                    let expected = format!("bytes {}-", self.offset);
                    if !range.starts_with(&expected) {
                        return Err(RegistryError::Status {
                            url: response.url.to_string(),
                            status: 206,
                            message: format!("asked for {expected}…, got Content-Range `{range}`"),
                        });
                    }
                }
                // The server ignored the Range: read past what we have.
                _ => self.skip = self.offset,
            }
        }
        self.response = Some(response);
        Ok(())
    }

    /// A failure of the transfer: wait and go on from the same byte, or
    /// move to the next endpoint, or give up.
    fn failed(&mut self, error: String, transient: bool) -> io::Result<()> {
        self.response = None;
        self.failures += 1;
        self.reconnects += 1;
        if self.reconnects > MAX_RECONNECTS {
            return self.give_up(format!(
                "{error} ({} connections for one blob: giving up)",
                self.reconnects
            ));
        }
        if !transient || self.failures >= ATTEMPTS_PER_ENDPOINT {
            if self.endpoint + 1 < self.endpoints.len() {
                log::warn!(
                    "blob {} from {}: {error}; trying {}",
                    self.digest,
                    self.endpoints[self.endpoint].base,
                    self.endpoints[self.endpoint + 1].base
                );
                self.endpoint += 1;
                self.failures = 0;
                return Ok(());
            }
            let tries = self.failures;
            return self.give_up(format!("{error} (after {tries} tries)"));
        }
        report(
            &self.progress,
            Progress::LayerRetry {
                digest: self.digest.clone(),
                attempt: self.failures,
                reason: error,
            },
        );
        std::thread::sleep(self.base_delay * 2u32.pow(self.failures - 1));
        Ok(())
    }

    fn give_up(&mut self, reason: String) -> io::Result<()> {
        *self
            .gave_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.clone());
        Err(io::Error::other(format!("blob {}: {reason}", self.digest)))
    }

    fn report_progress(&mut self, force: bool) {
        if force || self.last_report.elapsed() >= REPORT_EVERY {
            self.last_report = Instant::now();
            report(
                &self.progress,
                Progress::LayerProgress {
                    digest: self.digest.clone(),
                    done: self.offset,
                    size: self.size,
                },
            );
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Given up stays given up: a reader drained after an error
            // (the store reads on to name a bad blob) asks nothing more.
            if let Some(reason) = self
                .gave_up
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
            {
                return Err(io::Error::other(format!("blob {}: {reason}", self.digest)));
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::other(
                    "cancelled: another layer of the pull failed",
                ));
            }
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending = self.pending.slice(n..);
                self.offset += n as u64;
                self.report_progress(self.offset == self.size);
                return Ok(n);
            }
            let Some(response) = self.response.as_mut() else {
                if let Err(e) = self.open() {
                    let transient = e.is_transient();
                    self.failed(e.to_string(), transient)?;
                }
                continue;
            };
            match self.handle.block_on(response.chunk()) {
                Ok(Some(mut chunk)) => {
                    if self.skip > 0 {
                        let drop = (self.skip as usize).min(chunk.len());
                        chunk = chunk.slice(drop..);
                        self.skip -= drop as u64;
                    }
                    // A try that brings new data has not failed: a link
                    // that drops now and then still finishes a large
                    // layer (bytes skipped again are no progress).
                    if !chunk.is_empty() {
                        self.failures = 0;
                    }
                    self.pending = chunk;
                }
                Ok(None) if self.offset >= self.size => return Ok(0),
                Ok(None) => {
                    let at = self.offset;
                    self.failed(
                        format!("the connection ended at byte {at} of {}", self.size),
                        true,
                    )?;
                }
                Err(e) => self.failed(e.to_string(), true)?,
            }
        }
    }
}
