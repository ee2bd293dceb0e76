//! The machine's state as init left it: for now the data partition's
//! outcome, which husk-init writes to /run/husk/data.json at boot.

use std::path::Path;

use serde_json::{Value, json};

/// The data partition's status file, or `{"state":"unknown"}` (with the
/// reason) when it is missing or unreadable: an agent started outside
/// husk-init, or an init that predates the file.
pub fn data_status(path: &Path) -> Value {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return json!({"state": "unknown", "error": format!("{}: {e}", path.display())});
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(value) if value.get("state").is_some_and(Value::is_string) => value,
        Ok(_) => json!({"state": "unknown", "error": format!("{}: no \"state\"", path.display())}),
        Err(e) => json!({"state": "unknown", "error": format!("{}: {e}", path.display())}),
    }
}

/// One line for people: what `huskctl status` prints and the agent logs.
pub fn describe_data(data: &Value) -> String {
    let field = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or("?");
    match field("state") {
        "mounted" => {
            let mib = data.get("size_bytes").and_then(Value::as_u64).unwrap_or(0) >> 20;
            let grown = if data.get("grown").and_then(Value::as_bool) == Some(true) {
                ", grown this boot"
            } else {
                ""
            };
            format!(
                "mounted {} on {} ({mib} MiB, fsck {}{grown})",
                field("device"),
                husk_common::paths::STATE_DIR,
                field("fsck")
            )
        }
        "absent" => format!(
            "absent (no {} partition; {} is a tmpfs)",
            husk_common::paths::DATA_PARTITION_NAME,
            husk_common::paths::STATE_DIR
        ),
        "failed" => format!(
            "FAILED {}: {} ({} is a tmpfs; the partition was left untouched)",
            field("device"),
            field("error"),
            husk_common::paths::STATE_DIR
        ),
        other => format!("{other} ({})", field("error")),
    }
}

/// Logs the data partition's state at startup; a failure is an error
/// the operator must see.
pub fn log_data_status(path: &Path) {
    let data = data_status(path);
    let line = describe_data(&data);
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
            describe_data(&data),
            "FAILED /dev/vda2: e2fsck: exit status 4 (/var/lib/husk is a tmpfs; the partition was left untouched)"
        );
        let mounted = json!({"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":true,"size_bytes":2u64<<30});
        assert_eq!(
            describe_data(&mounted),
            "mounted /dev/vda2 on /var/lib/husk (2048 MiB, fsck clean, grown this boot)"
        );
    }
}
