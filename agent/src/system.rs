//! The machine's state as init left it: for now the data partition's
//! outcome, which husk-init writes to /run/husk/data.json at boot.

use std::path::Path;

use husk_common::boot::DataPartition;
use serde_json::{Value, json};

/// The data partition's status file (husk-common's [`DataPartition`], as
/// init writes it), or `{"state":"unknown"}` with the reason when it is
/// missing or not that: an agent started outside husk-init, or a file
/// that is not init's.
pub fn data_status(path: &Path) -> Value {
    let unknown =
        |why: String| json!({"state": "unknown", "error": format!("{}: {why}", path.display())});
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return unknown(e.to_string()),
    };
    match serde_json::from_str::<DataPartition>(&text) {
        Ok(data) => serde_json::to_value(data).unwrap_or_else(|e| unknown(e.to_string())),
        Err(e) => unknown(e.to_string()),
    }
}

/// Logs the data partition's state at startup; a failure is an error
/// the operator must see.
pub fn log_data_status(path: &Path) {
    let data = data_status(path);
    let line = husk_api::describe_data(&data);
    match data.get("state").and_then(Value::as_str) {
        Some("failed") => log::error!("data partition {line}"),
        Some("mounted") | Some("absent") => log::info!("data partition {line}"),
        _ => log::warn!("data partition state {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_become_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        assert_eq!(data_status(&path)["state"], "unknown");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(data_status(&path)["state"], "unknown");
        std::fs::write(
            &path,
            r#"{"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4","fsck":"failed","grown":false,"size_bytes":0}"#,
        )
        .unwrap();
        let data = data_status(&path);
        assert_eq!(data["device"], "/dev/vda2");
        assert_eq!(
            husk_api::describe_data(&data),
            "FAILED /dev/vda2: e2fsck: exit status 4 (/var/lib/husk is a tmpfs; the partition was left untouched)"
        );
        let mounted = json!({"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":true,"size_bytes":2u64<<30});
        assert_eq!(
            husk_api::describe_data(&mounted),
            "mounted /dev/vda2 on /var/lib/husk (2048 MiB, fsck clean, grown this boot)"
        );
    }
}
