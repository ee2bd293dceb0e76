//! `husk-agent oci exec` into a running container, and the signal state a
//! container's processes start with.

use std::path::Path;

use crate::harness::{enter, err, oci, text};
use crate::{bundle, field};

/// Force-deletes the container even when the test fails half-way.
struct Cleanup<'a>(&'a Path, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = oci(self.0, &["delete", "--force", self.1]);
    }
}

fn exec(root: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    let out = oci(root, &all);
    (out.status.code().unwrap_or(-1), text(&out), err(&out))
}

#[test]
fn exec_joins_the_running_container() {
    if !enter("exec::exec_joins_the_running_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(dir.path(), &["sleep", "1000"]);
    let root = dir.path().join("state");
    let _cleanup = Cleanup(&root, "ex1");
    let out = oci(&root, &["create", "--bundle", b.to_str().unwrap(), "ex1"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(oci(&root, &["start", "ex1"]).status.success());

    let script = "echo pid=$$; hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; \
                  grep -E '^(CapEff|Seccomp|NoNewPrivs|SigIgn|SigBlk):' /proc/self/status; \
                  echo cg=$(cat /proc/self/cgroup); echo env=$FOO; echo fds=$(ls /proc/self/fd | wc -l); exit 5";
    let (code, out, stderr) = exec(&root, &["--env", "FOO=bar", "ex1", "sh", "-c", script]);
    println!("{out}{stderr}");
    assert_eq!(code, 5, "exit code propagates");
    assert_ne!(field(&out, "pid="), "1");
    assert!(out.contains("husk-test"), "same hostname: {out}");
    assert!(
        out.contains("sleep 1000"),
        "sees the container's init: {out}"
    );
    assert_eq!(field(&out, "CapEff:"), bundle::DOCKER_CAPS_HEX);
    assert_eq!(field(&out, "Seccomp:"), "2");
    assert_eq!(field(&out, "NoNewPrivs:"), "1");
    assert_eq!(field(&out, "SigIgn:"), "0000000000000000");
    assert_eq!(field(&out, "SigBlk:"), "0000000000000000");
    assert_eq!(field(&out, "env="), "bar");
    // In the container's cgroup namespace its cgroup is the root (this
    // host also lists its v1 hierarchies first).
    assert!(field(&out, "cg=").ends_with(" 0::/"), "{out}");
    assert_eq!(field(&out, "fds="), "4");

    let (code, out, _) = exec(
        &root,
        &[
            "--user",
            "1000:1001",
            "--cwd",
            "/tmp",
            "ex1",
            "sh",
            "-c",
            "id -u; id -g; pwd",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "1000\n1001\n/tmp\n"));
    let (code, _, stderr) = exec(&root, &["ex1", "/nonexistent"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent"), "{stderr}");

    assert!(oci(&root, &["kill", "ex1", "KILL"]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, _, stderr) = exec(&root, &["ex1", "true"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("running"), "{stderr}");
    let (code, _, stderr) = exec(&root, &["ghost", "true"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("ghost"), "{stderr}");
    assert!(oci(&root, &["delete", "--force", "ex1"]).status.success());
}

#[test]
fn container_processes_start_with_default_signals() {
    if !enter("exec::container_processes_start_with_default_signals") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // grep itself is the container's process: no shell in between.
    let b = bundle::make(
        dir.path(),
        &["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"],
    );
    let root = dir.path().join("state");
    let out = oci(&root, &["run", "--bundle", b.to_str().unwrap(), "sigs"]);
    let out = text(&out);
    assert_eq!(field(&out, "SigIgn:"), "0000000000000000", "{out}");
    assert_eq!(field(&out, "SigBlk:"), "0000000000000000", "{out}");
}
