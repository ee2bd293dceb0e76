//! Choosing among servers: a few samples from each, the one of least
//! delay kept (the least queued, so the most accurate: RFC 5905's clock
//! filter in small), then the server whose best sample has the least
//! root distance.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;

use crate::error::NtpError;
use crate::query::{Sample, query};

/// The samples asked of each server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub samples: u32,
    /// Between one server's requests. Two seconds, as ntpd's and
    /// chrony's `iburst`: public servers rate-limit (and send "RATE"
    /// kisses to) clients that ask faster.
    pub spacing: Duration,
}

impl Default for Burst {
    fn default() -> Self {
        Self {
            samples: 4,
            spacing: Duration::from_secs(2),
        }
    }
}

/// Asks every server (at once, [`Burst::default`] samples each, each
/// exchange bounded by `timeout`) and returns the best sample, or every
/// server's error.
pub async fn measure(servers: &[SocketAddr], timeout: Duration) -> Result<Sample, NtpError> {
    measure_with(servers, timeout, Burst::default()).await
}

pub async fn measure_with(
    servers: &[SocketAddr],
    timeout: Duration,
    burst: Burst,
) -> Result<Sample, NtpError> {
    if servers.is_empty() {
        return Err(NtpError::NoServers);
    }
    let results = join_all(servers.iter().map(|&s| best_of(s, timeout, burst))).await;
    let mut best: Option<Sample> = None;
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(sample) => {
                if best.as_ref().is_none_or(|b| better(&sample, b)) {
                    best = Some(sample);
                }
            }
            Err(e) => {
                // The caller reports the outcome (once per change, not at
                // every poll).
                log::debug!("{e}");
                errors.push(e);
            }
        }
    }
    best.ok_or(NtpError::AllFailed { errors })
}

/// Least root distance; at equal distance, the lower stratum.
fn better(a: &Sample, b: &Sample) -> bool {
    (a.root_distance(), a.stratum) < (b.root_distance(), b.stratum)
}

/// One server's burst, its sample of least delay. A lost reply is tried
/// again; anything else the server says against itself (a kiss, an
/// unsynchronised clock, a broken reply) ends the burst and is the
/// answer: a kiss must not be answered with more requests.
async fn best_of(server: SocketAddr, timeout: Duration, burst: Burst) -> Result<Sample, NtpError> {
    let mut best: Option<Sample> = None;
    let mut lost = None;
    for i in 0..burst.samples.max(1) {
        if i > 0 {
            tokio::time::sleep(burst.spacing).await;
        }
        match query(server, timeout).await {
            Ok(sample) => {
                if best.as_ref().is_none_or(|b| sample.delay < b.delay) {
                    best = Some(sample);
                }
            }
            Err(e @ NtpError::Timeout { .. }) => {
                log::debug!("{e}");
                lost = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (best, lost) {
        (Some(sample), _) => Ok(sample),
        (None, Some(e)) => Err(e),
        (None, None) => unreachable!("at least one sample is asked"),
    }
}

#[cfg(test)]
mod tests;
