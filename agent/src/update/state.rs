//! What the updater remembers across boots, on the data partition
//! (`<root>/update/state.json`): the update in flight, the versions that
//! failed their boot assessment and why, and a short history. Written
//! atomically; an unreadable file is set aside, never fatal.

use std::path::{Path, PathBuf};

pub use husk_api::update::{Check, Event, Failure, Pending, Rollback, UpdateState};

use crate::containers::time::{now_ms, rfc3339_ms};

/// History kept: enough for an operator to see what happened lately.
const MAX_EVENTS: usize = 32;

pub fn now() -> String {
    rfc3339_ms(now_ms())
}

/// The state as the updater keeps it: in `state.json` (its type is the
/// API's, which reports it whole).
pub trait StateFile: Sized {
    fn path(dir: &Path) -> PathBuf;
    /// The saved state; a missing file is a fresh state, a corrupt one is
    /// renamed to `state.json.corrupt` and logged.
    fn load(dir: &Path) -> Self;
    fn save(&self, dir: &Path) -> std::io::Result<()>;
    /// Records and logs an event.
    fn event(&mut self, message: String);
}

impl StateFile for UpdateState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    fn load(dir: &Path) -> Self {
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

    fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        husk_common::atomic::write_atomic(&Self::path(dir), &text, 0o644)
    }

    fn event(&mut self, message: String) {
        log::info!("update: {message}");
        self.events.push(Event { at: now(), message });
        if self.events.len() > MAX_EVENTS {
            self.events.remove(0);
        }
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
