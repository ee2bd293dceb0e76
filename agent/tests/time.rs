//! The time service of the real agent binary against a real server:
//! Debian's chronyd (package `chrony`) on 127.0.0.1 and a free port,
//! started with `-x` (it never touches this machine's clock) and `local
//! stratum 8`, as ntp/tests/chrony.rs runs it. The agent runs with
//! `--no-machine-setup`, so it measures and never sets the clock.
//! Fails, not skips, without chronyd.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Agent, agent_args, eventually};

use husk_testkit::chronyd::Chronyd;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent on `dir` with this agent.toml.
fn agent(dir: &std::path::Path, agent_toml: &str) -> Agent {
    let config = dir.join("agent.toml");
    std::fs::write(&config, agent_toml).unwrap();
    let args = agent_args(dir, &config);
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    Agent::start(dir, &args)
}

/// `time` of `huskctl status --json`.
fn time_status(agent: &Agent) -> serde_json::Value {
    let json = agent.huskctl_ok(&["status", "--json"]);
    let system: serde_json::Value = serde_json::from_str(&json).unwrap();
    system["time"].clone()
}

#[test]
fn the_agent_measures_chronyd_and_leaves_the_clock() {
    let chronyd = Chronyd::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(
        dir.path(),
        &format!("[time]\nservers = [\"{}\"]\n", chronyd.addr),
    );
    let time = eventually(Duration::from_secs(20), "the agent's first sync", || {
        let time = time_status(&agent);
        (time["state"] == "synced").then_some(time)
    });
    eprintln!("time: {time}");
    assert_eq!(time["server"], chronyd.addr.to_string(), "{time}");
    assert_eq!(time["stratum"], 8, "{time}");
    let offset = time["offset_ms"].as_f64().unwrap();
    assert!(offset.abs() < 50.0, "{time}");
    let delay = time["delay_ms"].as_f64().unwrap();
    assert!((0.0..50.0).contains(&delay), "{time}");
    assert_eq!(time["clock_set"], false, "{time}");
    assert_eq!(time["correction"], "none", "{time}");
    assert_eq!(time["mode"], "measure-only", "{time}");
    assert_eq!(
        time["servers"],
        serde_json::json!([chronyd.addr.to_string()])
    );
    assert_eq!(time["last_success"], time["at"]);
    assert!(time["error"].is_null(), "{time}");
    let text = agent.huskctl_ok(&["status"]);
    assert!(
        text.contains(&format!("time: synced to {}, offset ", chronyd.addr)),
        "{text}"
    );
    let log = agent.stop();
    assert!(log.contains("time: measuring only"), "{log}");
    assert!(
        log.contains(&format!("time: synced to {}", chronyd.addr)),
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_dead_server_is_reported_and_the_agent_keeps_serving() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), &format!("[time]\nservers = [\"{dead}\"]\n"));
    let time = eventually(Duration::from_secs(20), "the time error", || {
        let time = time_status(&agent);
        time["error"].is_string().then_some(time)
    });
    eprintln!("time: {time}");
    let error = time["error"].as_str().unwrap();
    assert!(error.contains(&dead.to_string()), "{time}");
    assert_eq!(time["state"], "unsynced", "{time}");
    assert!(
        time["server"].is_null() && time["last_success"].is_null(),
        "{time}"
    );
    assert_eq!(time["clock_set"], false, "{time}");
    let health = agent.huskctl_ok(&["health"]);
    assert!(health.contains("ok"), "{health}");
    let text = agent.huskctl_ok(&["status"]);
    assert!(text.contains("time: not synced: "), "{text}");
    let log = agent.stop();
    assert!(log.contains("WARN: time: "), "{log}");
}

#[test]
fn time_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), "[time]\nenabled = false\n");
    let time = eventually(Duration::from_secs(10), "the time status", || {
        let time = time_status(&agent);
        (time["state"] != "unknown").then_some(time)
    });
    assert_eq!(time["state"], "disabled", "{time}");
    assert_eq!(
        agent.huskctl_ok(&["status"]).lines().nth(1),
        Some("time: disabled")
    );
    let log = agent.stop();
    assert!(log.contains("time: disabled"), "{log}");
}
