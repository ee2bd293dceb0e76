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

/// `runtime --root STATE ARGS…` for a peer (crun or runc), its output
/// through files as [`oci`]'s (a created container keeps its stdio).
pub fn peer(runtime: &str, state: &Path, args: &[&str]) -> Output {
    require(runtime);
    let mut all = Vec::new();
    if runtime == "crun" {
        // See [`peer_run`].
        all.push("--cgroup-manager=disabled");
    }
    all.extend(["--root", state.to_str().unwrap()]);
    all.extend_from_slice(args);
    command(Path::new(runtime), &all)
}

/// `RUNTIME --root STATE ARGS…` for Husk (`"husk"`) or a peer.
pub fn call(runtime: &str, state: &Path, args: &[&str]) -> Output {
    if runtime == "husk" {
        oci(state, args)
    } else {
        peer(runtime, state, args)
    }
}

/// Force-deletes a container (Husk's, or a peer's) when dropped, so a
/// failing test leaves no process behind.
pub struct Cleanup {
    pub runtime: &'static str,
    pub root: PathBuf,
    pub id: String,
}

impl Cleanup {
    pub fn new(runtime: &'static str, root: &Path, id: &str) -> Self {
        Self {
            runtime,
            root: root.to_path_buf(),
            id: id.to_string(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = call(
            self.runtime,
            &self.root,
            &["delete", "--force", self.id.as_str()],
        );
    }
}
