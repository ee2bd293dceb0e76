//! Running tests as root in a private mount namespace with cgroup2 on
//! /sys/fs/cgroup (this host's cgroups are v1 hybrid): the test re-executes
//! itself under `unshare -m`, marked by an environment variable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MARKER: &str = "HUSK_OCI_TEST_IN_NS";

pub fn husk() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husk-agent"))
}

/// True when the caller should run the test body now (we are inside the
/// namespace); false when it already ran in a child (or was skipped).
pub fn enter(test: &str) -> bool {
    if std::env::var_os(MARKER).is_some() {
        return true;
    }
    if !rustix::process::geteuid().is_root() {
        println!("skipping {test}: needs root (namespaces, mounts, cgroups)");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(MARKER, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed in its mount namespace");
    false
}

/// Runs `husk-agent oci`. Output goes through files, not pipes: a created
/// container's init inherits the caller's stdio and keeps it open, so
/// waiting for a pipe's EOF would wait for the container.
pub fn oci(root: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = Command::new(husk())
        .arg("oci")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
