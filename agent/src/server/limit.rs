//! The cap on connections served at once. A connection over the cap is
//! closed as soon as it is accepted rather than left in the listen
//! backlog: its client learns at once (end of file) instead of hanging
//! in a queue no log line mentions, and the backlog keeps draining, so
//! the kernel never starts refusing or stalling `connect` for everyone.
//! With the header deadline, idle connections give their slots back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often a burst of refusals that lasts is logged again.
const REPEAT_EVERY: Duration = Duration::from_secs(60);

pub(super) struct ConnectionCap {
    slots: Arc<Semaphore>,
    max: u32,
    burst: Burst,
}

/// A slot, held by a connection until it ends.
pub(super) type Slot = OwnedSemaphorePermit;

impl ConnectionCap {
    pub(super) fn new(max: u32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            burst: Burst::default(),
        }
    }

    /// A slot for a new connection, or None (logged once per burst)
    /// when `max` are open.
    pub(super) fn admit(&mut self) -> Option<Slot> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => {
                if let Some(refused) = self.burst.end() {
                    log::info!(
                        "API: accepting connections again ({refused} refused while {} were open)",
                        self.max
                    );
                }
                Some(slot)
            }
            Err(_) => {
                if let Some(refused) = self.burst.refuse(Instant::now()) {
                    log::warn!(
                        "API: {} connections open ([api] max_connections): closing new ones ({refused} so far)",
                        self.max
                    );
                }
                None
            }
        }
    }
}

/// Refusals in a row: logged at the first, then once per
/// [`REPEAT_EVERY`], so a flood of connections is not a flood of lines.
#[derive(Debug, Default)]
struct Burst {
    refused: u64,
    logged_at: Option<Instant>,
}

impl Burst {
    /// Counts a refusal; the count so far when it is to be logged.
    fn refuse(&mut self, now: Instant) -> Option<u64> {
        self.refused += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REPEAT_EVERY);
        if !due {
            return None;
        }
        self.logged_at = Some(now);
        Some(self.refused)
    }

    /// Ends the burst: how many were refused in it, if any.
    fn end(&mut self) -> Option<u64> {
        let refused = std::mem::take(&mut self.refused);
        self.logged_at = None;
        (refused > 0).then_some(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_connections_end() {
        let mut cap = ConnectionCap::new(2);
        let first = cap.admit().unwrap();
        let _second = cap.admit().unwrap();
        assert!(cap.admit().is_none());
        assert!(cap.admit().is_none());
        assert_eq!(cap.burst.refused, 2);
        drop(first);
        let _third = cap.admit().unwrap();
        assert_eq!(cap.burst.refused, 0, "the burst ended");
        assert!(cap.admit().is_none());
    }

    #[test]
    fn a_burst_is_logged_once_a_minute() {
        let start = Instant::now();
        let mut burst = Burst::default();
        assert_eq!(burst.refuse(start), Some(1));
        assert_eq!(burst.refuse(start + Duration::from_secs(1)), None);
        assert_eq!(burst.refuse(start + Duration::from_secs(59)), None);
        assert_eq!(burst.refuse(start + REPEAT_EVERY), Some(4));
        assert_eq!(burst.end(), Some(4));
        assert_eq!(burst.end(), None);
        // A new burst is logged at once.
        assert_eq!(burst.refuse(start + Duration::from_secs(61)), Some(1));
    }
}
