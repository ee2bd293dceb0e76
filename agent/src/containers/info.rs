//! The API's view of a container (`ps`, `inspect`).

use serde::{Deserialize, Serialize};

use super::record::ContainerRecord;
use super::time::rfc3339_ms;
use crate::spec::{RestartPolicy, RunOptions};
use crate::store::ImageId;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    Created,
    Running,
    /// Exited; its restart policy starts it again after a backoff.
    Restarting,
    Exited,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub image_id: ImageId,
    pub command: Vec<String>,
    pub status: Status,
    /// The container's init, as the host sees it, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub restart_policy: RestartPolicy,
    pub restart_count: u32,
    pub manually_stopped: bool,
    /// Why the last start failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the epoch of created/started/finished, for
    /// clients that compute ages.
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    pub options: RunOptions,
}

impl ContainerInfo {
    pub fn new(record: &ContainerRecord, status: Status, pid: Option<i32>) -> Self {
        Self {
            name: record.name().to_string(),
            image: record.options.image.clone(),
            image_id: record.image_id,
            command: record.command.clone(),
            status,
            pid,
            created: rfc3339_ms(record.created_ms),
            started: record.started_ms.map(rfc3339_ms),
            finished: record.finished_ms.map(rfc3339_ms),
            exit_code: record.exit_code,
            oom_killed: record.oom_killed,
            restart_policy: record.options.restart,
            restart_count: record.restart_count,
            manually_stopped: record.manually_stopped,
            error: record.error.clone(),
            created_ms: record.created_ms,
            started_ms: record.started_ms,
            finished_ms: record.finished_ms,
            options: record.options.clone(),
        }
    }
}
