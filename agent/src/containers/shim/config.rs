//! What the agent and a container's shim tell each other through files:
//! the shim's instructions (`shim.json`), its pid (`shim.pid`) and the
//! container's end (`exit.json`). Files, not a socket, so either side can
//! restart and find them again.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use husk_runtime::state::proc_stat;

/// `shim.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShimConfig {
    /// The container's id for the runtime.
    pub name: String,
    /// The runtime's state root (`husk-agent oci --root`).
    pub runtime_root: PathBuf,
    /// The OCI bundle (config.json; `rootfs/` is the overlay's mount point).
    pub bundle: PathBuf,
    pub overlay: Overlay,
    /// The container's cgroup directory (for the OOM count).
    pub cgroup: PathBuf,
    pub log: crate::containers::logs::LogConfig,
    pub pid_file: PathBuf,
    pub exit_file: PathBuf,
    /// The shim's own diagnostics (its stderr once detached).
    pub shim_log: PathBuf,
    /// The container has a pty (`process.terminal`): the shim receives
    /// its master on a console socket of its own.
    #[serde(default)]
    pub tty: bool,
    /// The container's stdin stays open for attach clients (`-i`).
    #[serde(default)]
    pub interactive: bool,
    /// Attach clients the agent has waiting (attached before the start):
    /// the shim lets this many connect, for a few seconds at most, before
    /// it starts the container, so they miss none of its output.
    #[serde(default)]
    pub wait_attach: usize,
}

impl ShimConfig {
    /// The container's run directory (where `shim.pid` is).
    pub fn run_dir(&self) -> &Path {
        self.pid_file.parent().unwrap_or(Path::new("/"))
    }
}

/// `<run dir>/attach.sock`: the container's output (raw with a tty,
/// Docker's multiplexed frames without) to every client from the moment
/// it connects; what a client writes goes to the container's stdin.
pub fn attach_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("attach.sock")
}

/// `<run dir>/control.sock`: JSON lines, `{"resize":{"rows":R,"cols":C}}`.
pub fn control_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// `<run dir>/console.sock`: where the runtime sends the pty master.
pub fn console_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("console.sock")
}

/// A control request, one JSON line on `control.sock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Control {
    Resize { rows: u16, cols: u16 },
}

/// The shim's answer to a control line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The container's root filesystem: the image's layers, read-only, under
/// the container's own writable layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// The directory holding the layers; the shim mounts from inside it
    /// so that `lowerdir=` lists short relative names (the mount options
    /// must fit in one page).
    pub layers_dir: PathBuf,
    /// Layer directory names relative to `layers_dir`, top-most first (an
    /// absolute path works too, e.g. an empty directory).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The mount point, `<bundle>/rootfs`.
    pub target: PathBuf,
    /// The container's user namespace: the layers are mounted idmapped
    /// through it, so the image's files appear owned as in the image, and
    /// the writable layer's root belongs to the container's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<husk_api::containers::UserNamespace>,
}

/// `shim.pid`: the pid with its start time, so a recycled pid is never
/// mistaken for the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimPid {
    pub pid: i32,
    pub start_time: u64,
}

impl ShimPid {
    pub fn current() -> Self {
        let pid = std::process::id() as i32;
        Self {
            pid,
            start_time: proc_stat(pid).map_or(0, |(_, t)| t),
        }
    }

    /// Whether this shim still runs (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, t)) if t == self.start_time && state != 'Z')
    }
}

/// `exit.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal that killed it.
    pub exit_code: i32,
    pub oom_killed: bool,
    pub finished_ms: u64,
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<T> {
    let data = std::fs::read(path)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    husk_common::atomic::write_atomic(path, &data, 0o600)
}
