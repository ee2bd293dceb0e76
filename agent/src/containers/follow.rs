//! Following a container from now on, for front-ends that attach before
//! they start (Docker's `run`: attach, wait for the next exit, then
//! start): its next exit or removal ([`ExitWatch`]), and the output it
//! writes from now until that exit ([`Manager::follow_output`]).
//!
//! Both are taken synchronously, before the caller answers its client,
//! so nothing the container does after the answer can be missed.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use husk_api::containers::LogEntry;
use tokio::sync::{mpsc, watch};

use super::error::{IoContext, Result};
use super::info::Status;
use super::logs::Follower;
use super::manager::{Manager, Snapshot};

/// How often the output is looked at between state changes.
const POLL: Duration = Duration::from_millis(100);

/// A container's state from the moment the watch was taken.
pub struct ExitWatch {
    state: watch::Receiver<Snapshot>,
    /// When its last run ended as the watch was taken: an exit after it
    /// is a new one.
    finished_before: Option<u64>,
}

/// Whether `s` is past an exit that came after `finished_before`.
fn exited(finished_before: Option<u64>, s: &Snapshot) -> bool {
    s.removed
        || (s.status != Status::Running
            && s.record.finished_ms.is_some()
            && s.record.finished_ms != finished_before)
}

impl ExitWatch {
    /// Until the state satisfies `done` (or the container is gone):
    /// its exit code then (None: it never ran, or the code is unknown).
    async fn until(mut self, done: impl Fn(Option<u64>, &Snapshot) -> bool) -> Option<i32> {
        let before = self.finished_before;
        loop {
            {
                let s = self.state.borrow_and_update();
                if done(before, &s) {
                    return s.record.exit_code;
                }
            }
            if self.state.changed().await.is_err() {
                return self.state.borrow().record.exit_code;
            }
        }
    }

    /// Its next exit after the watch was taken (or its removal).
    pub async fn next_exit(self) -> Option<i32> {
        self.until(exited).await
    }

    /// Now if it is not running (nor about to restart), else its exit.
    pub async fn not_running(self) -> Option<i32> {
        self.until(|before, s| {
            exited(before, s) || matches!(s.status, Status::Created | Status::Exited)
        })
        .await
    }

    /// Its removal (`--rm` containers remove themselves after the exit).
    pub async fn removed(self) -> Option<i32> {
        self.until(|_, s| s.removed).await
    }
}

impl Manager {
    /// Watches the container from now: see [`ExitWatch`].
    pub fn watch_exit(&self, name: &str) -> Result<ExitWatch> {
        let slot = self.slot(name)?;
        let state = slot.state.subscribe();
        let finished_before = state.borrow().record.finished_ms;
        Ok(ExitWatch {
            state,
            finished_before,
        })
    }

    /// What the container writes from now until its next exit (or its
    /// removal), as the log entries the shim stores. The log file is
    /// opened now (made, if the container never ran, for the shim to
    /// append to): an auto-removed container's file is unlinked after
    /// its exit, and the open file still holds all it wrote.
    pub fn follow_output(&self, name: &str) -> Result<mpsc::Receiver<LogEntry>> {
        let slot = self.slot(name)?;
        let watch = self.watch_exit(name)?;
        let log = slot.paths.log();
        // The shim's own flags: append, no symlink followed, 0640.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&log)
            .at(&log)?;
        let mut follower = Follower::at_start(&log);
        // What is there already was written before now.
        follower.poll().at(&log)?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut watch = watch;
            let mut gone = false;
            loop {
                let done = gone || exited(watch.finished_before, &watch.state.borrow_and_update());
                // After the exit is recorded the shim has written all.
                for line in follower.poll().unwrap_or_default() {
                    let Ok(entry) = serde_json::from_str::<LogEntry>(&line) else {
                        continue;
                    };
                    if tx.send(entry).await.is_err() {
                        return;
                    }
                }
                if done || tx.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    changed = watch.state.changed() => {
                        // The slot is gone: what was written is read on
                        // the next turn, which then ends.
                        gone = changed.is_err();
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}
