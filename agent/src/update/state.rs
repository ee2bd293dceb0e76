//! What the updater remembers across boots, on the data partition
//! (`<root>/update/state.json`): the update in flight, the versions that
//! failed their boot assessment and why, and a short history. Written
//! atomically; an unreadable file is set aside, never fatal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::containers::time::{now_ms, rfc3339_ms};

/// History kept: enough for an operator to see what happened lately.
const MAX_EVENTS: usize = 32;

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

pub fn now() -> String {
    rfc3339_ms(now_ms())
}

impl UpdateState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// The saved state; a missing file is a fresh state, a corrupt one is
    /// renamed to `state.json.corrupt` and logged.
    pub fn load(dir: &Path) -> Self {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::error!("update: {}: {e}; starting afresh", path.display());
                let _ = std::fs::rename(&path, path.with_extension("json.corrupt"));
                Self::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                log::error!("update: reading {}: {e}", path.display());
                Self::default()
            }
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        husk_common::atomic::write_atomic(&Self::path(dir), &text, 0o644)
    }

    /// Records and logs an event.
    pub fn event(&mut self, message: String) {
        log::info!("update: {message}");
        self.events.push(Event { at: now(), message });
        if self.events.len() > MAX_EVENTS {
            self.events.remove(0);
        }
    }

    pub fn failure_of(&self, version: &str) -> Option<&Failure> {
        self.failures.iter().rev().find(|f| f.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = UpdateState::load(dir.path());
        assert_eq!(state, UpdateState::default());
        for i in 0..40 {
            state.event(format!("event {i}"));
        }
        state.failures.push(Failure {
            version: "2.0".into(),
            reason: "health check web failed".into(),
            at: now(),
        });
        state.save(dir.path()).unwrap();
        let loaded = UpdateState::load(dir.path());
        assert_eq!(loaded, state);
        assert_eq!(loaded.events.len(), MAX_EVENTS);
        assert_eq!(loaded.events[0].message, "event 8");
        assert!(loaded.failure_of("2.0").is_some());

        std::fs::write(UpdateState::path(dir.path()), b"{not json").unwrap();
        assert_eq!(UpdateState::load(dir.path()), UpdateState::default());
        assert!(dir.path().join("state.json.corrupt").is_file());
    }
}
