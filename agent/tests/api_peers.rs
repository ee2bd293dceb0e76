//! Who may use the API: root, and the uids agent.toml's `[api]
//! allow_uids` names, by the kernel's word on each connection's peer
//! (`SO_PEERCRED`), even when the socket file itself lets anyone in.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{Agent, huskctl_bin};

const NOBODY: &str = "65534";

/// `huskctl --socket SOCKET health` as uid/gid 65534.
fn health_as_nobody(socket: &Path) -> Output {
    Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(huskctl_bin())
        .arg("--socket")
        .arg(socket)
        .arg("health")
        .output()
        .expect("running setpriv (util-linux)")
}

/// An agent on `dir` whose socket anyone may open (as a socket handed
/// into a container or a mode changed by hand would be).
fn open_agent(dir: &Path, agent_toml: &str) -> Agent {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root (runs huskctl as another user): run it as root, as CI does"
    );
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(&config, agent_toml).unwrap();
    let store = dir.join("store");
    let agent = Agent::start(
        dir,
        &[
            "--root",
            store.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    agent
}

#[test]
fn another_user_is_refused_even_through_an_open_socket() {
    let dir = tempfile::tempdir().unwrap();
    let agent = open_agent(dir.path(), "");
    let refused = health_as_nobody(&agent.socket);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    // Root still gets in.
    assert!(agent.huskctl_ok(&["health"]).contains("ok"));
    let log = agent.stop();
    assert!(log.contains("refused a connection from uid 65534"), "{log}");
}

#[test]
fn a_listed_uid_is_let_in() {
    let dir = tempfile::tempdir().unwrap();
    let agent = open_agent(dir.path(), "[api]\nallow_uids = [65534]\n");
    let allowed = health_as_nobody(&agent.socket);
    assert!(allowed.status.success(), "{allowed:?}");
    let log = agent.stop();
    assert!(!log.contains("refused a connection"), "{log}");
}
