//! runc's `--log`: errors appended as the lines containerd-shim-runc-v2
//! reads back when a command fails (logrus's text or JSON format).

/// Appends one error line to the `--log` file: `{"level":"error","msg":…,
/// "time":…}` in json, `time=… level=error msg=…` in text (runc's
/// logrus formats). A log that cannot be written is reported on stderr.
pub fn log_error(path: &std::path::Path, json: bool, message: &str) {
    use std::io::Write;
    let time = husk_common::civil::rfc3339(std::time::SystemTime::now());
    let line = if json {
        serde_json::json!({"level": "error", "msg": message, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level=error msg={message:?}")
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("husk-agent oci: writing the log {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_go_to_the_log_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        log_error(&log, true, "first");
        log_error(&log, true, "second \"quoted\"");
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["msg"], "second \"quoted\"");
        assert_eq!(lines[0]["level"], "error");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
