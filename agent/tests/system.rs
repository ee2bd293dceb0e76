//! `GET /v1/system` and `huskctl status`: the data partition's state as
//! husk-init wrote it, and the agent's error line when it failed.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use husk_agent::api::{SYSTEM_PATH, System};
use husk_agent::client::Client;

const FAILED: &str = r#"{"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4 (errors left uncorrected; run e2fsck by hand)","fsck":"failed","grown":false,"size_bytes":0}"#;

/// Starts the agent and waits for READY=1.
fn start(dir: &Path, data_status: &Path) -> Child {
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_husk-agent"))
        .arg("--socket")
        .arg(dir.join("agent.sock"))
        .arg("--data-status")
        .arg(data_status)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    notify.recv(&mut buf).expect("the agent never sent READY=1");
    agent
}

fn stop(mut agent: Child) -> String {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(agent.id().to_string())
        .status();
    let mut stderr = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    agent.wait().unwrap();
    stderr
}

fn huskctl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_huskctl"))
        .arg("--socket")
        .arg(dir.join("agent.sock"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_failed_data_partition_is_served_printed_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("data.json");
    std::fs::write(&status, FAILED).unwrap();
    let agent = start(dir.path(), &status);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let system: System = runtime
        .block_on(Client::new(dir.path().join("agent.sock")).get(SYSTEM_PATH))
        .unwrap();
    assert_eq!(
        system.data,
        serde_json::from_str::<serde_json::Value>(FAILED).unwrap()
    );
    let text = huskctl(dir.path(), &["status"]);
    assert!(
        text.starts_with("data: FAILED /dev/vda2: e2fsck: exit status 4"),
        "{text}"
    );
    let json = huskctl(dir.path(), &["status", "--json"]);
    assert!(json.contains(r#""state":"failed""#), "{json}");

    let log = stop(agent);
    assert!(
        log.contains("ERROR: data partition FAILED /dev/vda2: e2fsck: exit status 4"),
        "{log}"
    );
}

#[test]
fn a_missing_status_file_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start(dir.path(), &dir.path().join("missing.json"));
    let json = huskctl(dir.path(), &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["data"]["state"], "unknown", "{json}");
    let log = stop(agent);
    assert!(!log.contains("ERROR"), "{log}");
}
