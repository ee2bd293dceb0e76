//! The manager's record of one container (`container.json` on the data
//! partition): what was asked for and what happened to it. Written
//! atomically after every change, so an agent that crashes or restarts
//! finds every container as it last was.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use husk_spec::{RestartPolicy, RunOptions};
use husk_store::ImageId;

/// Refuse records from a future format instead of misreading them.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    /// What the user asked for (the name is the container's id).
    pub options: RunOptions,
    /// The image the reference resolved to at creation: the container
    /// keeps running the same image even if the name is re-tagged.
    pub image_id: ImageId,
    /// The process the spec runs (entrypoint and cmd resolved).
    #[serde(default)]
    pub command: Vec<String>,
    /// The image's `StopSignal` (`stop` sends it first), if it has one.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The cgroup's OOM killer killed a process of the last run.
    #[serde(default)]
    pub oom_killed: bool,
    /// Restarts made by the restart policy since the user last started it.
    #[serde(default)]
    pub restart_count: u32,
    /// The user stopped or killed it: `unless-stopped` stays stopped and
    /// no policy restarts it until the user starts it again.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Why the last start failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// User networks connected to it besides its own (`network connect`),
    /// joined at every start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected: Vec<ConnectedNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedNetwork {
    pub network: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl ContainerRecord {
    pub fn new(options: RunOptions, image_id: ImageId, created_ms: u64) -> Self {
        Self {
            version: VERSION,
            options,
            image_id,
            command: Vec::new(),
            stop_signal: None,
            created_ms,
            started_ms: None,
            finished_ms: None,
            exit_code: None,
            oom_killed: false,
            restart_count: 0,
            manually_stopped: false,
            error: None,
            connected: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    pub fn restart_policy(&self) -> RestartPolicy {
        self.options.restart
    }

    pub fn load(path: &Path) -> io::Result<Self> {
        let data = std::fs::read(path)?;
        let record: Self = serde_json::from_slice(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if record.version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record format {} (this agent reads {VERSION})",
                    record.version
                ),
            ));
        }
        Ok(record)
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        husk_common::atomic::write_atomic(path, &data, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use husk_store::Digest;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.json");
        let mut record = ContainerRecord::new(
            RunOptions::new("web", "busybox:latest"),
            ImageId(Digest::of(b"config")),
            1,
        );
        record.exit_code = Some(3);
        record.save(&path).unwrap();
        assert_eq!(ContainerRecord::load(&path).unwrap(), record);
        record.version = 99;
        record.save(&path).unwrap();
        let err = ContainerRecord::load(&path).unwrap_err();
        assert!(err.to_string().contains("format 99"), "{err}");
        std::fs::write(&path, b"{").unwrap();
        assert!(ContainerRecord::load(&path).is_err());
    }
}
