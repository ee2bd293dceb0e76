//! Where a container's files live. What must survive a reboot (its
//! record, its writable layer, its logs) is on the data partition under
//! `<root>/containers/<name>/`; what only means something while the
//! machine runs (the shim's pid, the exit status it leaves, the runtime's
//! state) is under `<run>/` on a tmpfs, so a reboot clears it.

use std::path::{Path, PathBuf};

/// The manager's directories.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The store's root (the data partition): `containers/`, `layers/`.
    pub root: PathBuf,
    /// `/run/husk` or a test's directory: `containers/`, `runtime/`, `exec/`.
    pub run: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            run: run.into(),
        }
    }

    /// One directory per container on the data partition.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The store's unpacked layers.
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// The embedded runtime's state root (`husk-agent oci --root`).
    pub fn runtime_root(&self) -> PathBuf {
        self.run.join("runtime")
    }

    /// The execs' console sockets and pid files while they run
    /// (`<run>/exec/<id prefix>.sock`, `.pid`): short paths whatever the
    /// container's name, within a socket path's 108 bytes.
    pub fn execs(&self) -> PathBuf {
        self.run.join("exec")
    }

    pub fn container(&self, name: &str) -> ContainerPaths {
        ContainerPaths {
            dir: self.containers().join(name),
            run: self.run.join("containers").join(name),
        }
    }
}

/// One container's files.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `<root>/containers/<name>`.
    pub dir: PathBuf,
    /// `<run>/containers/<name>`.
    pub run: PathBuf,
}

impl ContainerPaths {
    /// The manager's record (written atomically).
    pub fn record(&self) -> PathBuf {
        self.dir.join("container.json")
    }
    /// The overlay's writable layer and its work directory.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// An empty lower layer for images without layers (overlayfs needs one).
    pub fn empty_lower(&self) -> PathBuf {
        self.dir.join("empty")
    }
    /// The OCI bundle: config.json and the rootfs mount point.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// The current log file; rotated ones are `container.log.1`, `.2`, …
    pub fn log(&self) -> PathBuf {
        self.logs_dir().join("container.log")
    }
    /// The shim's instructions, written by the agent.
    pub fn shim_config(&self) -> PathBuf {
        self.run.join("shim.json")
    }
    /// The running shim: `{"pid":…, "start_time":…}`.
    pub fn shim_pid(&self) -> PathBuf {
        self.run.join("shim.pid")
    }
    /// What the shim leaves when the container exited.
    pub fn exit(&self) -> PathBuf {
        self.run.join("exit.json")
    }
    /// The shim's own diagnostics.
    pub fn shim_log(&self) -> PathBuf {
        self.run.join("shim.log")
    }
}

/// A rotated log file's path: `container.log.N`.
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
