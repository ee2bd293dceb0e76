//! What a pull reports as it goes: for `huskctl pull`'s display and the
//! API's event stream.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// The manifest is known: what will be fetched.
    Resolved {
        reference: String,
        digest: String,
        layers: usize,
        size: u64,
    },
    /// A requirement of the admission policy is met (a signature, a
    /// trusted tag).
    Verified { rule: String, detail: String },
    /// The store has this layer: it is not fetched.
    LayerExists { digest: String, size: u64 },
    /// Bytes of a layer received so far (and unpacked as they came).
    LayerProgress {
        digest: String,
        done: u64,
        size: u64,
    },
    /// A connection failed; the download goes on from where it was.
    LayerRetry {
        digest: String,
        attempt: u32,
        reason: String,
    },
    /// A layer was received, verified and unpacked.
    LayerDone { digest: String, size: u64 },
    /// The image is in the store.
    Done {
        reference: String,
        id: String,
        digest: String,
    },
}

/// Where a pull's progress goes.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

pub(crate) fn report(to: &Option<ProgressFn>, event: Progress) {
    if let Some(f) = to {
        f(event);
    }
}
