//! `GET /v1/system` and `huskctl status`: the data partition's state as
//! husk-init wrote it, and the agent's error line when it failed.

mod common;

use common::Agent;
use husk_api::{Client, SYSTEM_PATH, System};

const FAILED: &str = r#"{"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4 (errors left uncorrected; run e2fsck by hand)","fsck":"failed","grown":false,"size_bytes":0}"#;

#[test]
fn a_failed_data_partition_is_served_printed_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    // The harness points --data-status at dir/data.json.
    std::fs::write(dir.path().join("data.json"), FAILED).unwrap();
    let store = dir.path().join("store");
    let agent = Agent::start(dir.path(), &["--root", store.to_str().unwrap()]);

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
    let text = agent.huskctl_ok(&["status"]);
    assert!(
        text.starts_with("data: FAILED /dev/vda2: e2fsck: exit status 4"),
        "{text}"
    );
    let json = agent.huskctl_ok(&["status", "--json"]);
    assert!(json.contains(r#""state":"failed""#), "{json}");

    let log = agent.stop();
    assert!(
        log.contains("ERROR: data partition FAILED /dev/vda2: e2fsck: exit status 4"),
        "{log}"
    );
}

#[test]
fn a_missing_status_file_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let agent = Agent::start(dir.path(), &["--root", store.to_str().unwrap()]);
    let json = agent.huskctl_ok(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["data"]["state"], "unknown", "{json}");
    let log = agent.stop();
    assert!(!log.contains("ERROR"), "{log}");
}
