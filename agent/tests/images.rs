//! The image API through huskctl and the real agent: import, list,
//! inspect, remove and gc on a temporary store, and bad requests that get
//! 4xx answers without hurting the agent.

mod common;

use std::process::Command;

use husk_api::images::{IMAGES_IMPORT_PATH, IMAGES_PATH, ImportRequest};
use husk_api::{Client, ClientError};
use hyper::Method;
use serde_json::Value;

use common::Agent;
use husk_testkit::{busybox_layer, oci_archive};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A raw request's status and `error` message.
fn raw(agent: &Agent, method: Method, path: &str, body: Option<&[u8]>) -> (u16, String) {
    let result = runtime().block_on(Client::new(&agent.socket).request::<Value>(
        method,
        path,
        body.map(<[u8]>::to_vec),
    ));
    match result {
        Err(e @ ClientError::Status { status, .. }) => {
            let message = e
                .agent_message()
                .unwrap_or_else(|| panic!("no JSON error: {e:?}"));
            (status, message)
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[test]
fn import_list_inspect_remove_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let agent = Agent::start(dir.path(), &["--root", root.to_str().unwrap()]);
    std::fs::write(
        dir.path().join("busybox.tar"),
        oci_archive("busybox:latest", &[busybox_layer()]),
    )
    .unwrap();

    // huskctl makes the relative path absolute before sending it.
    let out = Command::new(common::huskctl_bin())
        .current_dir(dir.path())
        .arg("--socket")
        .arg(&agent.socket)
        .args(["image", "import", "busybox.tar"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Loaded image: busybox:latest (sha256:"),
        "{text}"
    );
    let id = text.split("(sha256:").nth(1).unwrap()[..64].to_string();

    let ls = agent.huskctl_ok(&["image", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 2, "{ls}");
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{ls}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..3], ["busybox", "latest", &id[..12]], "{ls}");
    assert!(lines[1].contains(" ago "), "{ls}");
    assert!(lines[1].ends_with("MB"), "{ls}");

    let inspect: Value =
        serde_json::from_str(&agent.huskctl_ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(inspect["id"], format!("sha256:{id}"));
    assert_eq!(inspect["names"][0], "busybox:latest");
    assert_eq!(inspect["config"]["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(inspect["layers"], 1);
    // By id prefix too.
    agent.huskctl_ok(&["image", "inspect", &id[..12]]);

    // Bad requests: each a 4xx with a message, none fatal.
    let relative = serde_json::to_vec(&ImportRequest {
        path: "busybox.tar".into(),
    })
    .unwrap();
    let (status, message) = raw(&agent, Method::POST, IMAGES_IMPORT_PATH, Some(&relative));
    assert_eq!(status, 400);
    assert!(message.contains("not absolute"), "{message}");

    let not_archive = dir.path().join("notes.txt");
    std::fs::write(&not_archive, "not a tar archive at all\n".repeat(40)).unwrap();
    let err = agent.huskctl_err(&["image", "import", not_archive.to_str().unwrap()]);
    assert!(err.starts_with("huskctl: "), "{err}");
    assert!(err.contains("(HTTP 400)"), "{err}");
    assert!(
        !err.contains("{\"error\""),
        "the message, not the JSON: {err}"
    );

    let err = agent.huskctl_err(&["image", "import", "/nonexistent/archive.tar"]);
    assert!(err.contains("/nonexistent/archive.tar"), "{err}");
    assert!(err.contains("(HTTP 400)"), "{err}");

    for body in [
        &b"{not json"[..],
        br#"{"path": 42}"#,
        br#"{"path": "/a", "extra": 1}"#,
        b"",
    ] {
        let (status, message) = raw(&agent, Method::POST, IMAGES_IMPORT_PATH, Some(body));
        assert_eq!(status, 400, "{message}");
        assert!(!message.is_empty());
    }
    let huge = format!(r#"{{"path": "/{}"}}"#, "a".repeat(100_000));
    let (status, _) = raw(
        &agent,
        Method::POST,
        IMAGES_IMPORT_PATH,
        Some(huge.as_bytes()),
    );
    assert_eq!(status, 413);
    let (status, message) = raw(&agent, Method::GET, "/v1/nope", None);
    assert_eq!(
        (status, message.as_str()),
        (404, "no such endpoint: GET /v1/nope")
    );
    let (status, message) = raw(&agent, Method::GET, IMAGES_IMPORT_PATH, None);
    assert_eq!(
        (status, message.as_str()),
        (405, "/v1/images/import does not answer GET")
    );
    let (status, message) = raw(&agent, Method::GET, "/v1/images/nope:1", None);
    assert_eq!(status, 404);
    assert!(message.contains("nope:1"), "{message}");

    let err = agent.huskctl_err(&["image", "rm", "nope"]);
    assert!(err.contains("no image `nope`"), "{err}");
    assert!(err.contains("(HTTP 404)"), "{err}");

    let out = agent.huskctl_ok(&["image", "rm", "busybox"]);
    assert_eq!(out.trim(), format!("Deleted: sha256:{id}"));
    let ls = agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 1, "only the header: {ls}");
    let gc = agent.huskctl_ok(&["image", "gc"]);
    assert_eq!(gc.trim(), "Removed 1 layers and 2 blobs");
    let list: Value = runtime()
        .block_on(Client::new(&agent.socket).get(IMAGES_PATH))
        .unwrap();
    assert_eq!(list, serde_json::json!({"images": []}));

    assert!(agent.huskctl_ok(&["health"]).starts_with("ok"));
    let log = agent.stop();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("imported image sha256:"), "{log}");
}

#[test]
fn an_unavailable_store_is_503_and_the_agent_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let first = Agent::start(dir.path(), &["--root", root.to_str().unwrap()]);

    // A second agent on the same root: the store's lock is taken.
    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let second = Agent::start(&second_dir, &["--root", root.to_str().unwrap()]);
    let err = second.huskctl_err(&["image", "ls"]);
    assert!(err.contains("the image store is unavailable"), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains("(HTTP 503)"), "{err}");
    assert!(second.huskctl_ok(&["health"]).starts_with("ok"));
    let log = second.stop();
    assert!(log.contains("ERROR: image store"), "{log}");

    // The first one is unaffected.
    assert_eq!(first.huskctl_ok(&["image", "ls"]).lines().count(), 1);
    first.stop();
}
