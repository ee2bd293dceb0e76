//! One sync: measure, decide, apply, report.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use crate::discipline::{self, Clock, Correction, DEFAULT_STEP_THRESHOLD};
use crate::error::NtpError;
use crate::measure::{Burst, measure_with};
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Of each exchange.
    pub timeout: Duration,
    pub burst: Burst,
    pub step_threshold: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            burst: Burst::default(),
            step_threshold: DEFAULT_STEP_THRESHOLD,
        }
    }
}

/// [`sync_with`] the default burst and step threshold.
pub async fn sync_once(
    servers: &[SocketAddr],
    clock: &(impl Clock + ?Sized),
    timeout: Duration,
) -> Result<Report, NtpError> {
    let options = Options {
        timeout,
        ..Options::default()
    };
    sync_with(servers, clock, &options).await
}

pub async fn sync_with(
    servers: &[SocketAddr],
    clock: &(impl Clock + ?Sized),
    options: &Options,
) -> Result<Report, NtpError> {
    let sample = measure_with(servers, options.timeout, options.burst).await?;
    let correction = discipline::decide(sample.offset, options.step_threshold);
    let how = match correction {
        Correction::Step(_) => "stepping the clock",
        Correction::Slew(_) => "slewing the clock",
        Correction::None => "leaving the clock",
    };
    let message = format!(
        "NTP server {} (stratum {}) is {} from this clock, delay {:?}: {how}",
        sample.server, sample.stratum, sample.offset, sample.delay
    );
    // A step is news (time jumped); a slew is routine.
    if matches!(correction, Correction::Step(_)) {
        log::info!("{message}");
    } else {
        log::debug!("{message}");
    }
    discipline::apply(clock, correction)?;
    let at = clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Report::new(&sample, correction, at))
}

#[cfg(test)]
mod tests;
