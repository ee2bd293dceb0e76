//! The API's view of a container (`ps`, `inspect`).

pub use husk_api::containers::{ContainerInfo, Status};

use super::record::ContainerRecord;
use super::time::rfc3339_ms;

/// The API's view of a container's record.
pub fn info(
    record: &ContainerRecord,
    status: Status,
    pid: Option<i32>,
    network: Option<husk_api::containers::NetworkInfo>,
    connected: &[husk_api::containers::NetworkInfo],
) -> ContainerInfo {
    ContainerInfo {
        name: record.name().to_string(),
        image: record.options.image.clone(),
        image_id: record.image_id.to_string(),
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
        network,
        connected: record
            .connected
            .iter()
            .map(|c| husk_api::networks::Connected {
                network: c.network.clone(),
                aliases: c.aliases.clone(),
                endpoint: connected.iter().find(|i| i.network == c.network).cloned(),
            })
            .collect(),
    }
}
