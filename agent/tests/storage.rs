//! Writable-layer sizes on a filesystem without project quotas: this
//! host's kernel has no CONFIG_QUOTA (it cannot even mount an ext4 with
//! the quota feature), so the caps themselves are checked in a QEMU guest
//! on husk-image's data partition (the `container-reboot` scenario).

mod common;

use std::path::Path;

use common::{Agent, enter_cgroup2_namespace};
use husk_testkit::{busybox_layer, oci_archive};

const IMAGE: &str = "husk.test/busybox:1";

fn agent(dir: &Path, root: &Path) -> Agent {
    let config = dir.join("agent.toml");
    // No default pids limit: this host's cgroup2 has no pids controller.
    std::fs::write(&config, "[limits.containers]\ndefault_pids = -1\n").unwrap();
    let args = [
        "--root".into(),
        root.to_owned(),
        "--run-dir".into(),
        dir.join("run"),
        "--config".into(),
        config,
    ];
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    let agent = Agent::start(dir, &args);
    let archive = dir.join("busybox.tar");
    std::fs::write(&archive, oci_archive(IMAGE, &[busybox_layer()])).unwrap();
    agent.huskctl_ok(&["image", "import", archive.to_str().unwrap()]);
    agent
}

/// A filesystem without project quotas refuses a size instead of
/// ignoring it, and runs containers without one as before.
#[test]
fn a_size_without_quotas_is_refused() {
    if !enter_cgroup2_namespace("a_size_without_quotas_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), &dir.path().join("root"));
    let e = agent.huskctl_err(&["create", "--storage-opt", "size=16m", IMAGE, "true"]);
    assert!(e.contains("needs project quotas"), "{e}");
    assert_eq!(
        agent.huskctl_ok(&["run", "--rm", IMAGE, "echo", "ok"]),
        "ok\n"
    );
    let out = agent.huskctl(&["create", "--storage-opt", "inodes=5", IMAGE, "true"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("size=SIZE"), "{e}");
}
