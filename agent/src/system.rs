//! The machine's state as init left it: for now the data partition's
//! outcome, which husk-init writes to /run/husk/data.json at boot.

use std::path::Path;

use husk_common::boot::DataPartition;
use serde_json::{Value, json};

/// The data partition's status file as init wrote it (checked against
/// husk-common's [`DataPartition`], so keys it adds later pass through),
/// or `{"state":"unknown"}` with the reason when it is missing or not
/// init's: an agent started outside husk-init, or a broken file.
pub fn data_status(path: &Path) -> Value {
    let unknown =
        |why: String| json!({"state": "unknown", "error": format!("{}: {why}", path.display())});
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return unknown(e.to_string()),
    };
    if let Err(e) = serde_json::from_str::<DataPartition>(&text) {
        return unknown(e.to_string());
    }
    serde_json::from_str(&text).unwrap_or_else(|e| unknown(e.to_string()))
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
        // Not init's shape: a state it never writes.
        std::fs::write(&path, r#"{"state":"exploded","device":null,"error":null,"fsck":null,"grown":false,"size_bytes":0}"#).unwrap();
        let data = data_status(&path);
        assert_eq!(data["state"], "unknown");
        assert!(
            data["error"].as_str().unwrap().contains("exploded"),
            "{data}"
        );
        // Init's shape, with a key a later init adds: served as written.
        let written = r#"{"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4","fsck":"failed","grown":false,"size_bytes":0,"later":1}"#;
        std::fs::write(&path, written).unwrap();
        assert_eq!(
            data_status(&path),
            serde_json::from_str::<Value>(written).unwrap()
        );
    }
}
