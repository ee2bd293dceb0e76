//! `/v1/update`: the update agent's requests and answers, and the state
//! it reports (what it remembers across boots).

use serde::{Deserialize, Serialize};

/// `GET`: versions, boot entries, assessment, history.
pub const UPDATE_PATH: &str = "/v1/update";
/// `POST`: is there a newer release?
pub const UPDATE_CHECK_PATH: &str = "/v1/update/check";
/// `POST` [`ApplyRequest`].
pub const UPDATE_APPLY_PATH: &str = "/v1/update/apply";
/// `POST` [`RollbackRequest`].
pub const UPDATE_ROLLBACK_PATH: &str = "/v1/update/rollback";

/// `POST /v1/update/apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplyRequest {
    /// A version of the channel; default: the newest.
    pub version: Option<String>,
    /// Allow a downgrade, or a release whose minimum version is newer
    /// than the running one.
    pub force: bool,
    /// Stage it only: the next reboot boots it.
    pub no_reboot: bool,
}

/// `POST /v1/update/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollbackRequest {
    pub no_reboot: bool,
}

/// The answer of check, apply and rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOutcome {
    pub running_version: Option<String>,
    /// The version checked out, applied, or rolled back to.
    pub version: Option<String>,
    pub message: String,
    pub rebooting: bool,
}

/// `GET /v1/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub running_version: Option<String>,
    pub repository: Option<String>,
    pub channel: String,
    /// Husk's entries on the ESP, newest first.
    pub entries: Vec<EntryStatus>,
    /// The version systemd-boot boots next.
    pub next_boot: Option<String>,
    /// This boot's assessment: `blessed`, `assessing`, `failed: …`, or
    /// `not on trial`.
    pub assessment: String,
    #[serde(default)]
    pub esp_error: Option<String>,
    pub state: UpdateState,
}

/// A boot entry on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryStatus {
    pub file: String,
    pub version: String,
    /// `blessed`, `on trial (N tries left)`, `failed (tries spent)`.
    pub state: String,
    pub running: bool,
}

/// What the updater remembers across boots (its `state.json`), as it
/// reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateState {
    /// Applied and waiting for its first good boot.
    pub pending: Option<Pending>,
    /// Versions whose boot was judged bad, newest last.
    pub failures: Vec<Failure>,
    /// A rollback the operator asked for: from this version.
    pub rollback_requested_from: Option<String>,
    /// The last rollback seen at boot, for `update status`.
    pub last_rollback: Option<Rollback>,
    pub last_check: Option<Check>,
    pub events: Vec<Event>,
}

impl UpdateState {
    /// The newest failure recorded for `version`.
    pub fn failure_of(&self, version: &str) -> Option<&Failure> {
        self.failures.iter().rev().find(|f| f.version == version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: String,
    pub from_version: String,
    pub applied_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub version: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// The version that was left.
    pub from_version: String,
    /// The version running instead.
    pub to_version: String,
    /// Why: the failed assessment's reason, or the operator's request.
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub at: String,
    /// `up to date`, `update available: 2.0`, or the error.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub message: String,
}
