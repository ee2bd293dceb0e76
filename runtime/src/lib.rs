//! Husk's embedded OCI runtime: runs an OCI bundle (config.json + rootfs)
//! with the lifecycle of the OCI runtime spec (create, start, state, kill,
//! delete), as `husk-agent oci …` (runc's command line).
//!
//! Modules, following youki's libcontainer seams: [`state`] (the state
//! directory), [`bundle`] (loading and checking config.json),
//! [`process`] (the init: clone and setup sequence), [`namespaces`],
//! [`rootfs`], [`cgroups`], [`caps`], [`seccomp`], [`sealed_exe`] (the
//! binary a container can see), and [`sys`], the one
//! module with raw system calls. The rootfs setup reaches the kernel
//! through [`syscall::Syscall`], so its logic is unit-tested without root.
//!
//! The runtime forks with a raw clone3: call it from a single-threaded
//! process (the agent daemon runs `husk-agent oci` as a child, as
//! containerd runs runc).
//!
//! It owns one bundle's life and nothing more: no async runtime, no HTTP,
//! no image store, no container manager, no Docker defaults (those are
//! husk-spec's). [`cli`] is `husk-agent oci`'s command line.

pub mod bundle;
pub mod caps;
pub mod cgroups;
pub mod cli;
pub mod console;
pub mod devices;
pub mod error;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod in_root;
pub mod namespaces;
mod operations;
pub mod process;
pub mod rootfs;
pub mod sealed_exe;
pub mod seccomp;
pub mod signal;
pub mod state;
pub mod stats;
mod sys;
pub mod syscall;
pub mod sysctl;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::Pid;

pub use self::error::{Result, RuntimeError};
pub use self::exec::ExecOptions;
pub use self::state::{DEFAULT_ROOT, OciState, Status};
/// The one `mount_setattr` wrapper (the agent's idmapped layers use it).
pub use self::sys::{MountAttr, mount_attr, mount_setattr};

use self::bundle::Bundle;
use self::cgroups::Cgroup;
use self::error::Step;
use self::state::{EXEC_FIFO, Record, container_dir, validate_id};

/// What `create` takes besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Where to write the init's pid (runc's --pid-file).
    pub pid_file: Option<PathBuf>,
    /// Descriptors from 3 up passed to the container (runc's --preserve-fds).
    pub preserve_fds: u32,
    /// Where the pty master goes when process.terminal is true (runc's
    /// --console-socket).
    pub console_socket: Option<PathBuf>,
    /// Move the root onto `/` and chroot instead of pivot_root (runc's
    /// --no-pivot, for a rootfs on ramfs).
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one per
    /// container (runc's --no-new-keyring).
    pub no_new_keyring: bool,
}

/// A container in the state directory `root`.
#[derive(Debug, Clone)]
pub struct Container {
    root: PathBuf,
    record: Record,
}

impl Container {
    /// `create`: everything is set up and the init waits for [`start`].
    /// On failure nothing is left: no state directory, no cgroup.
    ///
    /// [`start`]: Container::start
    pub fn create(root: &Path, id: &str, bundle_dir: &Path, opts: &CreateOptions) -> Result<Self> {
        validate_id(id)?;
        let bundle = Bundle::load(bundle_dir)?;
        let spec = &bundle.spec;
        let linux = spec.linux().as_ref();
        // Check everything that can be checked before making anything.
        let plan = namespaces::Plan::from_spec(linux)?;
        plan.check_paths()?;
        if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
            sysctl::validate(sysctls, &plan)?;
        }
        let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
        console::check(terminal, opts.console_socket.as_deref())?;
        let caps = caps::CapMasks::from_spec(
            spec.process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref()),
        )?;
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => seccomp::compile(profile)?,
            None => seccomp::Programs::default(),
        };
        let device_filter = devices::container_program(
            linux
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.devices().as_deref())
                .unwrap_or_default(),
            linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default(),
        )?;
        fs::create_dir_all(root).step(|| format!("creating {}", root.display()))?;
        let dir = container_dir(root, id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(id.to_string()));
            }
            Err(e) => return Err(RuntimeError::os(format!("creating {}", dir.display()), e)),
        }
        let keyring = (!opts.no_new_keyring).then(|| format!("_ses.{id}"));
        // The state the hooks are given (with the init's pid once known).
        let template = OciState {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            status: Status::Creating,
            pid: None,
            bundle: bundle.dir.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            rootfs: Some(bundle.rootfs.clone()),
            created: None,
            owner: String::new(),
        };
        let mut cgroup = None;
        let result = (|| {
            let fifo = dir.join(EXEC_FIFO);
            sys::mknod(&fifo, rustix::fs::FileType::Fifo, 0o600, 0)
                .step(|| format!("creating {}", fifo.display()))?;
            let cgroup_dir = cgroups::dir_for(linux.and_then(|l| l.cgroups_path().as_deref()), id);
            let created = cgroup.insert(Cgroup::create(
                &cgroup_dir,
                linux.and_then(|l| l.resources().as_ref()),
            )?);
            if let Some(program) = &device_filter {
                created.filter_devices(program)?;
            }
            let console = opts
                .console_socket
                .as_deref()
                .map(console::connect)
                .transpose()?;
            let pid = process::spawn(&process::InitConfig {
                spec,
                rootfs: &bundle.rootfs,
                bundle: &bundle.dir,
                plan,
                caps,
                seccomp,
                cgroup: cgroup.as_ref(),
                exec_fifo: &fifo,
                preserve_fds: opts.preserve_fds,
                console: console.as_ref(),
                no_pivot: opts.no_pivot,
                keyring: keyring.clone(),
                state: template.clone(),
            })?;
            let pid = pid.as_raw_nonzero().get();
            let record = Record {
                id: id.to_string(),
                oci_version: spec.version().clone(),
                pid,
                pid_start_time: state::proc_stat(pid).map(|(_, t)| t).unwrap_or(0),
                bundle: bundle.dir.clone(),
                cgroup: cgroup.as_ref().map(|c| c.dir.clone()),
                annotations: spec.annotations().clone().unwrap_or_default(),
                created: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                rootfs: bundle.rootfs.clone(),
                hooks: spec.hooks().clone(),
                keyring: keyring.clone(),
            };
            record.save(root)?;
            if let Some(path) = &opts.pid_file {
                write_pid_file(path, pid)?;
            }
            Ok(record)
        })();
        match result {
            Ok(record) => Ok(Self {
                root: root.to_path_buf(),
                record,
            }),
            Err(e) => {
                if let Some(cgroup) = &cgroup {
                    cgroup.kill_all();
                    let _ = cgroup.remove();
                }
                let _ = fs::remove_dir_all(&dir);
                if matches!(e, RuntimeError::Hook { .. } | RuntimeError::InitHook { .. }) {
                    // The lifecycle goes on at its step 12: destroyed, then
                    // the poststop hooks.
                    let state = OciState {
                        status: Status::Stopped,
                        ..template
                    };
                    hooks::run_warning(hooks::Phase::Poststop, spec.hooks().as_ref(), &state);
                }
                Err(e)
            }
        }
    }

    /// A container made by an earlier `create`.
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            record: Record::load(root, id)?,
        })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The init's pid (the container's process once started).
    pub fn pid(&self) -> i32 {
        self.record.pid
    }

    pub fn status(&self) -> Status {
        self.record.status(&self.root)
    }

    pub fn state(&self) -> OciState {
        self.record.oci_state(&self.root)
    }

    pub(crate) fn wrong_status(&self, status: Status, what: &str) -> RuntimeError {
        RuntimeError::Status {
            id: self.record.id.clone(),
            status: status.to_string(),
            what: what.to_string(),
        }
    }

    /// `start`: releases the init waiting on the exec fifo.
    pub fn start(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.wrong_status(status, "only a created container can be started"));
        }
        let fifo = container_dir(&self.root, &self.record.id).join(EXEC_FIFO);
        let exe = format!("/proc/{}/exe", self.record.pid);
        let runtime_image = file_id(&exe);
        // Non-blocking: with no reader (the init died) this fails with ENXIO
        // instead of hanging.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .step(|| format!("opening {}", fifo.display()))?;
        f.write_all(b"S").step(|| "releasing the container init")?;
        fs::remove_file(&fifo).step(|| format!("removing {}", fifo.display()))?;
        // Return once the process is the container's own (its execve
        // changed /proc/PID/exe) or gone: a signal sent right after
        // `start` then finds the program, not the runtime's setup.
        let deadline = Instant::now() + START_DEADLINE;
        let failed = container_dir(&self.root, &self.record.id).join(state::START_ERROR);
        while runtime_image.is_some() && self.record.init_alive() && Instant::now() < deadline {
            // A new image: the program runs. None: an exiting process,
            // whose end decides.
            let now = file_id(&exe);
            if now.is_some() && now != runtime_image && !failed.exists() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // The init failed before the program ran (a startContainer hook,
        // the execve): it left why, and is gone.
        if let Ok(message) = fs::read_to_string(&failed) {
            let _ = fs::remove_file(&failed);
            return Err(RuntimeError::Init { message });
        }
        hooks::run_warning(
            hooks::Phase::Poststart,
            self.record.hooks.as_ref(),
            &self.state(),
        );
        Ok(())
    }

    /// `kill`: sends a signal to the init (or, with `all`, to every process
    /// of the container's cgroup).
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.wrong_status(status, "it cannot be signalled"));
        }
        if all && let Some(dir) = &self.record.cgroup {
            for pid in (Cgroup { dir: dir.clone() }).procs() {
                let _ = sys::kill(pid, signal);
            }
            return Ok(());
        }
        sys::kill(self.record.pid, signal)
            .step(|| format!("sending signal {signal} to pid {}", self.record.pid))
    }

    /// `delete`: removes a stopped (or never started) container; `force`
    /// kills a running one first.
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(self.wrong_status(status, "stop it first or use --force"));
        }
        let cgroup = self.record.cgroup.clone().map(|dir| Cgroup { dir });
        if status != Status::Stopped {
            if let Some(c) = &cgroup {
                c.kill_all();
            }
            let _ = sys::kill(self.record.pid, libc::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.record.init_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(c) = &cgroup {
            c.kill_all();
            c.remove()?;
        }
        let dir = container_dir(&self.root, &self.record.id);
        let mut state = self.state();
        state.status = Status::Stopped;
        state.pid = None;
        fs::remove_dir_all(&dir).step(|| format!("removing {}", dir.display()))?;
        hooks::run_warning(hooks::Phase::Poststop, self.record.hooks.as_ref(), &state);
        Ok(())
    }

    /// Waits for the container's process; only the process that created
    /// the container (its parent) can. Returns the exit code, or 128 + the
    /// killing signal.
    pub fn wait(&self) -> Result<i32> {
        let pid =
            Pid::from_raw(self.record.pid).ok_or_else(|| RuntimeError::Other("no pid".into()))?;
        process::wait(pid)
    }

    /// `run`: create, start, wait, delete; returns the exit code.
    pub fn run(root: &Path, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<i32> {
        let container = Self::create(root, id, bundle, opts)?;
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            return Err(e);
        }
        let code = container.wait();
        container.delete(true)?;
        code
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// How long `start` waits for the container's execve.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// The (device, inode) a path resolves to, None when it does not.
fn file_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, pid.to_string())
        .and_then(|()| fs::rename(&tmp, path))
        .step(|| format!("writing pid file {}", path.display()))
}
