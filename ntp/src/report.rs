//! What a sync did, as the agent shows it (GET /v1/system).

use serde::{Deserialize, Serialize};

use crate::discipline::{Correction, CorrectionKind};
use crate::query::Sample;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The server whose time was taken, `address:port`.
    pub server: String,
    /// How far the clock was behind (positive) or ahead, before the
    /// correction.
    pub offset_ms: f64,
    pub delay_ms: f64,
    pub stratum: u8,
    pub correction: CorrectionKind,
    /// When, after the correction: seconds since the Unix epoch.
    pub at: u64,
}

impl Report {
    pub fn new(sample: &Sample, correction: Correction, at: u64) -> Self {
        Self {
            server: sample.server.to_string(),
            offset_ms: sample.offset.as_millis_f64(),
            delay_ms: sample.delay.as_secs_f64() * 1e3,
            stratum: sample.stratum,
            correction: correction.kind(),
            at,
        }
    }
}
