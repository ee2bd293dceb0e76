//! The container's init: cloned by the runtime into its new namespaces, it
//! sets the container up, reports to the parent over a pipe, waits on the
//! exec fifo until `start`, and execs the container's process.
//!
//! CVE-2019-5736 (overwriting the runtime through /proc/<pid>/exe): the
//! init is a clone of the runtime, never a re-exec of the host binary, and
//! the only program it ever execs is process.args[0], resolved inside the
//! pivoted root. While it is still the runtime's image (from the clone
//! until the execve) it is non-dumpable, so no other process (even one in a
//! joined PID namespace) can open its /proc/<pid>/exe; nothing of the
//! container runs before that execve. After it, /proc/1/exe is the
//! container's own binary. `exec` ([`super::exec`]) follows the same
//! rule: a non-dumpable clone that execs only the requested program.
//!
//! File descriptors: every descriptor the runtime opens is close-on-exec,
//! and before the execve every fd from 3 up (past the preserved ones) is
//! marked close-on-exec with close_range, so nothing of the host leaks in.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, PosixRlimitType, Process, Spec};
use rustix::process::{Pid, Resource, Rlimit};
use rustix::thread::{Gid, Uid};

use super::caps::{self, CapMasks};
use super::cgroups::Cgroup;
use super::console;
use super::error::{Result, RuntimeError, Step};
use super::hooks::{self, Phase};
use super::namespaces::{self, Plan};
use super::rootfs::{self, RootfsContext};
use super::seccomp::Programs;
use super::state::{OciState, Status};
use super::sys;
use super::syscall::Linux;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the init needs, computed (and checked) by the parent before
/// the clone, so that a bad spec fails before any process exists.
#[derive(Debug)]
pub struct InitConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: Plan,
    pub caps: CapMasks,
    pub seccomp: Programs,
    pub cgroup: Option<&'a Cgroup>,
    pub exec_fifo: &'a Path,
    /// Extra descriptors passed to the container from 3 up (LISTEN_FDS,
    /// --preserve-fds).
    pub preserve_fds: u32,
    /// The caller's console socket, connected: process.terminal is true.
    pub console: Option<&'a OwnedFd>,
    /// `--no-pivot`: [`rootfs::move_root`] instead of pivot_root.
    pub no_pivot: bool,
    /// The name of the session keyring to join (`_ses.<id>`, runc's),
    /// None with `--no-new-keyring`.
    pub keyring: Option<String>,
    /// The container's state for the hooks, but for the pid (the init's
    /// host pid, which the parent sends it).
    pub state: OciState,
}

impl InitConfig<'_> {
    fn hooks(&self) -> Option<&Hooks> {
        self.spec.hooks().as_ref()
    }

    /// prestart or createRuntime hooks: the init stops before
    /// pivot_root for the runtime to run them.
    fn has_runtime_hooks(&self) -> bool {
        !Phase::Prestart.of(self.hooks()).is_empty()
            || !Phase::CreateRuntime.of(self.hooks()).is_empty()
    }

    fn state_with(&self, status: Status, pid: i32) -> OciState {
        OciState {
            status,
            pid: Some(pid),
            ..self.state.clone()
        }
    }
}

/// The parent's messages on the go pipe: GO then the init's host pid
/// (4 bytes, native order), and GO again after the runtime's hooks.
const GO: u8 = b'G';
/// The init's messages on the report pipe: HOOKS (stopped before
/// pivot_root for the runtime's hooks), then READY or ERROR + message.
const HOOKS: u8 = b'H';
const READY: u8 = b'O';
const ERROR: u8 = b'E';
/// ERROR from a hook the init ran (the lifecycle then runs poststop).
const HOOK_ERROR: u8 = b'K';

impl InitConfig<'_> {
    fn process(&self) -> &Process {
        self.spec
            .process()
            .as_ref()
            .expect("validated: process present")
    }
}

/// Clones the init, sets up what the parent must (id maps, cgroup) and
/// waits for the init to report. Returns its pid once it is waiting on the
/// exec fifo; on failure the init is gone and the error is its own.
pub fn spawn(config: &InitConfig) -> Result<Pid> {
    let (report_rx, report_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).step(|| "creating a pipe")?;
    let (go_rx, go_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).step(|| "creating a pipe")?;
    // O_RDWR: opening never blocks, and the init's read blocks until
    // `start` writes (there is always a writer: itself).
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(config.exec_fifo)
        .step(|| format!("opening {}", config.exec_fifo.display()))?;
    // The container's state directory, for the init to leave an error
    // there after `start` (the report pipe is gone by then).
    let state_dir = config
        .exec_fifo
        .parent()
        .map(File::open)
        .transpose()
        .step(|| "opening the container's state directory")?;
    if let Some(path) = &config.plan.join_pid {
        namespaces::join_pid_for_children(path)?;
    }
    if let Some(path) = &config.plan.join_net_before_clone {
        namespaces::join_net_for_children(path)?;
    }
    let child = sys::clone3(config.plan.clone_flags).step(|| "cloning the container init")?;
    let Some(pid) = child else {
        drop(report_rx);
        drop(go_tx);
        let mut report = File::from(report_tx);
        let err = match init(config, go_rx, &mut report, fifo, state_dir) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        let tag = if matches!(err, RuntimeError::Hook { .. }) {
            HOOK_ERROR
        } else {
            ERROR
        };
        let mut message = vec![tag];
        message.extend_from_slice(err.to_string().as_bytes());
        let _ = report.write_all(&message);
        sys::exit_now(1);
    };
    drop(report_tx);
    drop(go_rx);
    drop(fifo);
    drop(state_dir);
    let mut go = File::from(go_tx);
    let mut setup = || -> Result<()> {
        if config.plan.new_user {
            let linux = config
                .spec
                .linux()
                .as_ref()
                .expect("user namespace needs linux");
            namespaces::write_id_maps(pid, linux)?;
        }
        if let Some(cgroup) = config.cgroup {
            cgroup.add(pid.as_raw_nonzero().get())?;
        }
        // From here: in a user namespace the init is an unprivileged host
        // uid, which may not write its own (non-dumpable, so root-owned)
        // /proc entries. runc sets it from the parent too.
        if let Some(process) = config.spec.process() {
            set_oom_score_adj(process, &pid.as_raw_nonzero().get().to_string())?;
        }
        let mut message = vec![GO];
        message.extend_from_slice(&pid.as_raw_nonzero().get().to_ne_bytes());
        go.write_all(&message)
            .step(|| "releasing the container init")
    };
    let kill = |e: RuntimeError| {
        let _ = sys::kill(pid.as_raw_nonzero().get(), libc::SIGKILL);
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        e
    };
    setup().map_err(kill)?;
    let mut report_rx = File::from(report_rx);
    let mut first = read_report(&mut report_rx);
    if first == Some(HOOKS) {
        // "created": the environment exists (the lifecycle's step 2 is
        // done), as crun reports and runtime-tools expects.
        let state = config.state_with(Status::Created, pid.as_raw_nonzero().get());
        let hooks = config.hooks();
        hooks::run(Phase::Prestart, hooks, &state)
            .and_then(|()| hooks::run(Phase::CreateRuntime, hooks, &state))
            .and_then(|()| go.write_all(&[GO]).step(|| "releasing the container init"))
            .map_err(kill)?;
        first = read_report(&mut report_rx);
    }
    drop(go);
    // READY (the init keeps the pipe open until its execve), or ERROR
    // followed by the message up to EOF (the init exited).
    if first == Some(READY) {
        return Ok(pid);
    }
    let mut message = Vec::new();
    let _ = report_rx.read_to_end(&mut message);
    let status = wait(pid).ok();
    if first == Some(HOOK_ERROR) {
        return Err(RuntimeError::InitHook {
            message: String::from_utf8_lossy(&message).into_owned(),
        });
    }
    let message = match first {
        Some(ERROR) => String::from_utf8_lossy(&message).into_owned(),
        _ => format!(
            "exited during setup without a report{}",
            status.map(|s| format!(" (status {s})")).unwrap_or_default()
        ),
    };
    Err(RuntimeError::Init { message })
}

/// One byte of the init's report; None at EOF.
fn read_report(report: &mut File) -> Option<u8> {
    let mut byte = [0u8; 1];
    matches!(report.read(&mut byte), Ok(1)).then_some(byte[0])
}

/// Waits for a child; returns its exit code, or 128 + the signal that
/// killed it (the shell's convention).
pub fn wait(pid: Pid) -> Result<i32> {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::os(format!("waiting for pid {pid:?}"), e)),
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
        }
    }
}

/// The init's setup, in order. Returns only on failure.
fn init(
    config: &InitConfig,
    go: OwnedFd,
    report: &mut File,
    fifo: File,
    state_dir: Option<File>,
) -> Result<Infallible> {
    // Until the execve this process is the runtime's image: keep
    // /proc/<pid>/exe and its memory away from everyone (CVE-2019-5736).
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .step(|| "prctl(PR_SET_DUMPABLE, 0)")?;
    let mut go = File::from(go);
    let mut release = [0u8; 5];
    if go.read_exact(&mut release).is_err() || release[0] != GO {
        // The parent died before releasing us.
        sys::exit_now(1);
    }
    let host_pid = i32::from_ne_bytes([release[1], release[2], release[3], release[4]]);
    let spec = config.spec;
    let linux = spec.linux().as_ref();
    let process = config.process();
    if config.plan.new_user {
        // Become root of the new user namespace, so that files the setup
        // creates have a mapped owner.
        if let Some(l) = linux
            && namespaces::maps_root(l.uid_mappings())
            && namespaces::maps_root(l.gid_mappings())
        {
            rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT)
                .step(|| "setresgid(0) in the user namespace")?;
            rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT)
                .step(|| "setresuid(0) in the user namespace")?;
        }
    }
    config.plan.enter()?;
    if config.plan.new_uts {
        if let Some(name) = spec.hostname() {
            rustix::system::sethostname(name.as_bytes())
                .step(|| format!("setting hostname {name}"))?;
        }
        if let Some(name) = spec.domainname() {
            rustix::system::setdomainname(name.as_bytes())
                .step(|| format!("setting domainname {name}"))?;
        }
    }
    if config.plan.new_net {
        sys::loopback_up().step(|| "bringing lo up")?;
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rootfs::ensure_dir(config.rootfs, process.cwd())?;
    let kernel = Linux;
    rootfs::prepare(&RootfsContext {
        sys: &kernel,
        spec,
        rootfs: config.rootfs,
        bundle: config.bundle,
        in_user_ns: config.plan.new_user
            || config
                .plan
                .join
                .iter()
                .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User),
        new_cgroup_ns: config.plan.new_cgroup,
        cgroup_dir: config.cgroup.map(|c| c.dir.as_path()),
    })?;
    if config.has_runtime_hooks() {
        report
            .write_all(&[HOOKS])
            .step(|| "reporting to the runtime")?;
        let mut byte = [0u8; 1];
        if go.read_exact(&mut byte).is_err() || byte[0] != GO {
            // The runtime's hooks failed: it kills us.
            sys::exit_now(1);
        }
    }
    drop(go);
    let created = config.state_with(Status::Created, host_pid);
    hooks::run(Phase::CreateContainer, config.hooks(), &created)?;
    if config.no_pivot {
        rootfs::move_root(&kernel, config.rootfs)?;
    } else {
        rootfs::pivot(&kernel, config.rootfs)?;
    }
    rootfs::finish(&kernel, spec, Path::new("/"))?;
    if let Some(name) = &config.keyring {
        join_keyring(name)?;
    }
    if let Some(socket) = config.console {
        console::attach(socket.as_fd(), process)?;
    }
    set_rlimits(process)?;
    let env = cstrings(process.env().iter().flatten().map(String::as_str));
    let args = process.args().clone().unwrap_or_default();
    let program = find_program(&args[0], process.env().as_deref().unwrap_or_default())?;
    let argv = cstrings(args.iter().map(String::as_str));
    if let Some(umask) = process.user().umask() {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
    }
    let no_new_privs = process.no_new_privileges() == Some(true);
    // Before any filter: the profile is the container's, and may refuse
    // what the runtime itself calls (close_range, getcwd), as old
    // profiles that predate them do.
    chdir_inside_root(process.cwd())?;
    for fd in 3..3 + config.preserve_fds {
        sys::keep_on_exec(fd as i32).step(|| format!("passing fd {fd}"))?;
    }
    sys::cloexec_from(3 + config.preserve_fds).step(|| "close_range")?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which
    // the uid change may drop: install it now (runc's order).
    if !no_new_privs {
        config.seccomp.apply()?;
    }
    caps::drop_bounding(&config.caps)?;
    set_user(process)?;
    caps::apply(&config.caps)?;
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).step(|| "prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    // Again as the container's user: a cwd it may not enter is its error.
    std::env::set_current_dir(process.cwd()).step(|| {
        format!(
            "chdir to cwd {} as the container's user",
            process.cwd().display()
        )
    })?;
    report
        .write_all(&[READY])
        .step(|| "reporting to the runtime")?;
    // Wait for `start`.
    let mut fifo = fifo;
    let mut byte = [0u8; 1];
    fifo.read_exact(&mut byte)
        .step(|| "waiting on the exec fifo")?;
    drop(fifo);
    // `start` is done with the report pipe: from here errors go to the
    // container's stderr, which is all there is.
    let after_start = || -> Result<()> {
        hooks::run(
            Phase::StartContainer,
            config.hooks(),
            &config.state_with(Status::Created, host_pid),
        )?;
        // Last, so that the filter sees only the container's own syscalls.
        if no_new_privs {
            config.seccomp.apply()?;
        }
        Ok(())
    };
    if let Err(e) = after_start() {
        failed_after_start(state_dir.as_ref(), &e.to_string(), 1);
    }
    // The runtime is a Rust program (SIGPIPE ignored): the container's
    // process starts with default dispositions and nothing blocked.
    sys::reset_signals();
    let err = sys::execve(&program, &argv, &env);
    failed_after_start(
        state_dir.as_ref(),
        &format!("exec {}: {err}", program.to_string_lossy()),
        127,
    );
}

/// After `start`: the error goes to the container's stderr and, for
/// `start` to report, into the state directory (best effort: a user
/// namespace's root may not write there); then the init exits.
fn failed_after_start(state_dir: Option<&File>, message: &str, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "husk: {message}");
    if let Some(dir) = state_dir {
        let written = rustix::fs::openat(
            dir,
            super::state::START_ERROR,
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(std::io::Error::from)
        .map(File::from)
        .and_then(|mut f| f.write_all(message.as_bytes()));
        let _ = written;
    }
    sys::exit_now(code);
}

/// A session keyring of the container's own; a kernel without keys
/// (ENOSYS) has nothing to share either, as runc allows.
pub(super) fn join_keyring(name: &str) -> Result<()> {
    let name = CString::new(name).map_err(|_| RuntimeError::Config("NUL in the id".into()))?;
    match sys::join_session_keyring(&name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        other => {
            other.step(|| "joining a new session keyring (--no-new-keyring keeps the caller's)")
        }
    }
}

pub(super) fn cstrings<'a>(items: impl Iterator<Item = &'a str>) -> Vec<CString> {
    items
        .map(|s| CString::new(s.replace('\0', "")).unwrap_or_default())
        .collect()
}

/// process.args[0] looked up in the container's PATH (checked now, inside
/// the new root, so a missing program fails `create` and not `start`).
pub(super) fn find_program(name: &str, env: &[String]) -> Result<CString> {
    let not_found = || RuntimeError::Init {
        message: format!("executable {name:?} not found in the container's $PATH"),
    };
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if name.contains('/') {
        let p = PathBuf::from(name);
        is_exec(&p).then_some(p)
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
            .find(|p| is_exec(p))
    };
    let found = found.ok_or_else(not_found)?;
    CString::new(found.as_os_str().as_bytes()).map_err(|_| not_found())
}

pub(super) fn set_rlimits(process: &Process) -> Result<()> {
    use PosixRlimitType as T;
    for r in process.rlimits().iter().flatten() {
        let resource = match r.typ() {
            T::RlimitCpu => Resource::Cpu,
            T::RlimitFsize => Resource::Fsize,
            T::RlimitData => Resource::Data,
            T::RlimitStack => Resource::Stack,
            T::RlimitCore => Resource::Core,
            T::RlimitRss => Resource::Rss,
            T::RlimitNproc => Resource::Nproc,
            T::RlimitNofile => Resource::Nofile,
            T::RlimitMemlock => Resource::Memlock,
            T::RlimitAs => Resource::As,
            T::RlimitLocks => Resource::Locks,
            T::RlimitSigpending => Resource::Sigpending,
            T::RlimitMsgqueue => Resource::Msgqueue,
            T::RlimitNice => Resource::Nice,
            T::RlimitRtprio => Resource::Rtprio,
            T::RlimitRttime => Resource::Rttime,
        };
        let value = |v: u64| (v != u64::MAX).then_some(v);
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: value(r.soft()),
                maximum: value(r.hard()),
            },
        )
        .step(|| format!("setting {}", r.typ()))?;
    }
    Ok(())
}

/// Supplementary groups, gid, uid; capabilities are kept across the uid
/// change (PR_SET_KEEPCAPS) so that caps::apply can set them after.
/// `process.oomScoreAdj`, when the spec sets one (runc's rule: absent
/// means inherited). Before the capabilities go: lowering it needs
/// CAP_SYS_RESOURCE.
/// Writes the process's oomScoreAdj to `/proc/<target>/oom_score_adj`
/// (`target`: a pid, or `self`).
pub(super) fn set_oom_score_adj(process: &Process, target: &str) -> Result<()> {
    let Some(adj) = process.oom_score_adj() else {
        return Ok(());
    };
    if !(-1000..=1000).contains(&adj) {
        return Err(RuntimeError::Config(format!(
            "oomScoreAdj {adj} is outside -1000..=1000"
        )));
    }
    std::fs::write(format!("/proc/{target}/oom_score_adj"), adj.to_string())
        .step(|| format!("setting oom_score_adj {adj}"))
}

/// chdir to the process's cwd, which must then be inside the container's
/// root. A cwd through a descriptor the runtime holds
/// (`/proc/self/fd/N`, runc's CVE-2024-21626) lands on a directory
/// outside it; the kernel's getcwd then answers a path that does not
/// start with `/` ("(unreachable)…") or ENOENT. Refused either way, as
/// runc and crun do.
pub(super) fn chdir_inside_root(cwd: &Path) -> Result<()> {
    std::env::set_current_dir(cwd).step(|| format!("chdir to cwd {}", cwd.display()))?;
    let outside = || {
        RuntimeError::Config(format!(
            "the cwd {} is outside the container's root",
            cwd.display()
        ))
    };
    match rustix::process::getcwd(Vec::new()) {
        Ok(path) if path.as_bytes().starts_with(b"/") => Ok(()),
        Ok(_) => Err(outside()),
        Err(rustix::io::Errno::NOENT) => Err(outside()),
        Err(e) => Err(RuntimeError::os(
            format!("getcwd after chdir to {}", cwd.display()),
            e,
        )),
    }
}

pub(super) fn set_user(process: &Process) -> Result<()> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    rustix::thread::set_keep_capabilities(true).step(|| "prctl(PR_SET_KEEPCAPS)")?;
    rustix::thread::set_thread_groups(&groups).step(|| "setgroups")?;
    let gid = Gid::from_raw(user.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid).step(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid).step(|| format!("setuid {}", user.uid()))?;
    rustix::thread::set_keep_capabilities(false).step(|| "prctl(PR_SET_KEEPCAPS, 0)")?;
    Ok(())
}
