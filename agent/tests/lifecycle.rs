//! The agent as init runs it: started with a NOTIFY_SOCKET, it announces
//! readiness only once its API answers, and SIGTERM stops it cleanly.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use husk_api::{Client, HEALTH_PATH, Health};

#[test]
fn ready_then_healthy_then_clean_exit_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let api_path = dir.path().join("run/agent.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut agent = Command::new(env!("CARGO_BIN_EXE_husk-agent"))
        .arg("--socket")
        .arg(&api_path)
        .arg("--root")
        .arg(dir.path().join("store"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(agent.id());

    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("the agent never sent READY=1");
    assert!(
        husk_common::notify::is_ready(&buf[..n]),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    // Ready means serving: the very first request must succeed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let health: Health = runtime
        .block_on(Client::new(&api_path).get(HEALTH_PATH))
        .unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));

    let missing = runtime.block_on(Client::new(&api_path).get::<Health>("/v1/nope"));
    assert!(
        matches!(
            missing,
            Err(husk_api::ClientError::Status { status: 404, .. })
        ),
        "{missing:?}"
    );

    let huskctl = Command::new(common::huskctl_bin())
        .arg("--socket")
        .arg(&api_path)
        .arg("health")
        .output()
        .unwrap();
    assert!(huskctl.status.success(), "{huskctl:?}");
    assert!(String::from_utf8_lossy(&huskctl.stdout).starts_with("ok"));

    send_signal(agent.id(), "TERM");
    let status = agent.wait().unwrap();
    std::mem::forget(guard);
    assert!(
        status.success(),
        "SIGTERM must stop the agent cleanly: {status:?}"
    );
    assert!(!api_path.exists(), "the socket file is removed on exit");

    let down = Command::new(common::huskctl_bin())
        .arg("--socket")
        .arg(&api_path)
        .arg("health")
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot reach the agent"),
        "{down:?}"
    );
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Kills the agent if an assertion fails before it is stopped.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(self.0.to_string())
            .status();
    }
}
