//! Running the runtime's tests as root in a private mount namespace with
//! cgroup2 on /sys/fs/cgroup (this host's cgroups are v1 hybrid, see
//! `common::enter_cgroup2_namespace`), and the runtimes themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn husk() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husk-agent"))
}

/// True when the caller should run the test body now (inside the
/// namespace); false when it already ran in a child. The agent tests'
/// one re-exec, shared.
pub fn enter(test: &str) -> bool {
    crate::common::enter_cgroup2_namespace(test)
}

/// Runs `husk-agent oci`. Output goes through files, not pipes: a created
/// container's init inherits the caller's stdio and keeps it open, so
/// waiting for a pipe's EOF would wait for the container.
pub fn oci(root: &Path, args: &[&str]) -> Output {
    let mut all = vec!["oci", "--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    command(&husk(), &all)
}

/// Runs `binary` with `args`, its output through files (see [`oci`]).
pub fn command(binary: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = Command::new(binary)
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

/// A peer runtime the comparisons need (`cargo xtask test` installs
/// crun and runc): missing, the test fails instead of comparing nothing.
pub fn require(runtime: &str) {
    let found = Command::new(runtime).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{runtime} is not installed: apt-get install {runtime} (cargo xtask test does)"
    );
}

/// `runtime run` (crun or runc) of `bundle` with its state under `state`.
pub fn peer_run(runtime: &str, state: &Path, bundle: &Path, id: &str) -> Output {
    require(runtime);
    let mut command = Command::new(runtime);
    if runtime == "crun" {
        // This host's cgroups are v1 in the test's namespace but for the
        // cgroup2 mount; crun's cgroupfs manager is not what is compared.
        command.arg("--cgroup-manager=disabled");
    }
    command
        .arg("--root")
        .arg(state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}
