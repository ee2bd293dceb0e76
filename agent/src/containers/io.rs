//! What flows out of a container: its logs (and `logs -f`), as JSON
//! lines (log entries as stored, [`LogEntry`]), and its resource use.
//! An exec's output is `super::exec`'s.

use std::time::Duration;

use tokio::sync::mpsc;

use super::error::{ManagerError, Result};
use super::info::Status;
use super::lifecycle::cgroup_dir;
use super::logs::{Follower, files_oldest_first, read_lines};
use super::manager::Manager;
use super::stats;
use husk_api::containers::{LogEntry, LogOptions, Stats};

/// How often `logs -f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

fn line(mut text: String) -> Vec<u8> {
    text.push('\n');
    text.into_bytes()
}

impl Manager {
    /// The container's stored output, and with `follow` what it writes
    /// next until it stops. The stream ends early if the receiver goes.
    pub fn logs(&self, name: &str, opts: LogOptions) -> Result<mpsc::Receiver<Vec<u8>>> {
        let slot = self.slot(name)?;
        let (tx, rx) = mpsc::channel(64);
        let files = files_oldest_first(&slot.paths.log(), self.0.config.log_max_files);
        tokio::spawn(async move {
            let keep = |l: &String| match opts.stream {
                None => true,
                Some(stream) => {
                    serde_json::from_str::<LogEntry>(l).is_ok_and(|e| e.stream == stream)
                }
            };
            let (rotated, current) = files.split_at(files.len().saturating_sub(1));
            let mut lines = read_lines(rotated, None).unwrap_or_default();
            let mut follower = Follower::at_start(current.first().map_or(&slot.paths.log(), |p| p));
            lines.extend(follower.poll().unwrap_or_default());
            lines.retain(keep);
            if let Some(tail) = opts.tail {
                lines.drain(..lines.len().saturating_sub(tail));
            }
            for l in lines {
                if tx.send(line(l)).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut state = slot.state.subscribe();
            loop {
                let done = {
                    let s = state.borrow_and_update();
                    s.removed || matches!(s.status, Status::Exited | Status::Created)
                };
                for l in follower.poll().unwrap_or_default().into_iter().filter(keep) {
                    if tx.send(line(l)).await.is_err() {
                        return;
                    }
                }
                if done || tx.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = state.changed() => {}
                }
            }
        });
        Ok(rx)
    }

    /// The container's resource use now.
    pub fn stats(&self, name: &str) -> Result<Stats> {
        let slot = self.slot(name)?;
        if slot.snapshot().status != Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        }
        stats::read(&cgroup_dir(name)).ok_or_else(|| {
            ManagerError::Conflict(format!("container {name} has no cgroup (not running?)"))
        })
    }
}
