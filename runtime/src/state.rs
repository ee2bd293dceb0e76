//! The state directory: one directory per container under the runtime root
//! (`/run/husk/runtime/<id>/`), holding `state.json` (written atomically)
//! and, between `create` and `start`, the `exec.fifo` the init waits on.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError, Step};

/// Where `husk-agent oci` keeps container state unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/husk/runtime";
const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Written by the init when it fails after `start` released it (a
/// startContainer hook, the execve), for `start` to report.
pub const START_ERROR: &str = "start.error";

/// The OCI lifecycle status (runtime.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Frozen by `pause` (cgroup.freeze).
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `state.json` records. The status is not stored: it is derived from
/// the init process and the fifo each time it is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The bundle spec's ociVersion, reported by `state`.
    pub oci_version: String,
    pub pid: i32,
    /// `/proc/<pid>/stat` field 22, so a recycled pid is not mistaken for
    /// the init.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    /// Absolute cgroup directory (under /sys/fs/cgroup); None when none was made.
    pub cgroup: Option<PathBuf>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The rootfs, absolute (for `state`, and the hooks' state).
    #[serde(default)]
    pub rootfs: PathBuf,
    /// The spec's hooks as they were at create: poststart and poststop
    /// run from here, not from a bundle that may have changed since.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The container's session keyring (`_ses.<id>`), which `exec`
    /// joins too; None with `--no-new-keyring`.
    #[serde(default)]
    pub keyring: Option<String>,
}

/// The `state` command's output, as runtime.md defines it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// runc's additions, which go-runc decodes: the rootfs, when it was
    /// created (RFC 3339) and the owner (empty: not rootless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub owner: String,
}

/// Container ids become directory names: keep them to a safe alphabet.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Config(format!(
            "container id {id:?}: use letters, digits, '-', '_', '.' or '+'"
        )))
    }
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Record {
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let path = container_dir(root, id).join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()));
            }
            Err(e) => return Err(RuntimeError::os(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| RuntimeError::Other(format!("{}: {e}", path.display())))
    }

    /// Writes state.json through a temporary file and rename, so a reader
    /// never sees half a file.
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = container_dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(STATE_FILE))
        };
        write().step(|| format!("writing {}/{STATE_FILE}", dir.display()))
    }

    /// Is the recorded init still this container's init (alive, not a zombie)?
    pub fn init_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if state != 'Z' && state != 'X' && start == self.pid_start_time)
    }

    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            Status::Stopped
        } else if container_dir(root, &self.id).join(EXEC_FIFO).exists() {
            Status::Created
        } else if self.frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn oci_state(&self, root: &Path) -> OciState {
        let status = self.status(root);
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: (status != Status::Stopped).then_some(self.pid),
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
            rootfs: Some(self.rootfs.clone()).filter(|p| !p.as_os_str().is_empty()),
            created: Some(husk_common::civil::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.created),
            )),
            owner: String::new(),
        }
    }

    /// The cgroup says `frozen 1` in cgroup.events.
    fn frozen(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|dir| {
            fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|events| events.lines().any(|l| l == "frozen 1"))
        })
    }
}

/// The state letter and start time (clock ticks after boot) of a process.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: split
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; the start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}
