//! Helpers shared by the agent's integration tests: OCI archives (from
//! husk-testkit) and an agent started on temporary paths.

#![allow(dead_code)] // each test file uses its own subset

pub mod docker;
pub mod follow;
pub mod net_machine;
pub mod pty;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// huskctl, the operator's CLI, from its own crate: beside the agent in
/// cargo's output directory, built there first when missing (cargo makes
/// binaries only for their own package's tests).
pub fn huskctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| sibling_bin("huskctl", "huskctl"))
}

/// husk-image, the publisher's tool (`keygen`, `repo-init`,
/// `trust-tag`), built as [`huskctl_bin`] is.
pub fn husk_image_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| sibling_bin("husk-image", "husk-image"))
}

/// `cargo build -p PACKAGE --bin NAME` in the agent's profile; its path.
fn sibling_bin(package: &str, name: &str) -> PathBuf {
    let agent = Path::new(env!("CARGO_BIN_EXE_husk-agent"));
    let bin = agent.with_file_name(name);
    let profile = agent.parent().and_then(Path::file_name);
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build.args(["build", "-p", package, "--bin", name]);
    if profile.is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package}: {status}");
    assert!(
        bin.is_file(),
        "{} is not there after the build",
        bin.display()
    );
    bin
}

/// An agent on a temporary socket and image store, killed on drop.
pub struct Agent {
    pub child: Option<Child>,
    pub socket: PathBuf,
}

impl Agent {
    /// Starts the agent with `extra` arguments and waits for READY=1.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let socket = dir.join("agent.sock");
        let notify_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path); // a previous agent's
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_husk-agent"))
            .arg("--socket")
            .arg(&socket)
            .arg("--data-status")
            .arg(dir.join("data.json"))
            .arg("--no-machine-setup")
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 64];
        notify.recv(&mut buf).expect("the agent never sent READY=1");
        Self {
            child: Some(child),
            socket,
        }
    }

    pub fn huskctl(&self, args: &[&str]) -> Output {
        Command::new(huskctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// huskctl's stdout, asserting success.
    pub fn huskctl_ok(&self, args: &[&str]) -> String {
        let out = self.huskctl(args);
        assert!(out.status.success(), "huskctl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// huskctl's stderr, asserting exit status 1.
    pub fn huskctl_err(&self, args: &[&str]) -> String {
        let out = self.huskctl(args);
        assert_eq!(out.status.code(), Some(1), "huskctl {args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Stops the agent (SIGTERM) and returns what it logged.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An agent on a temporary state root and run directory, with this
/// agent.toml (plus no default pids limit: this host's cgroup2 has no
/// pids controller, as containers.rs says).
pub struct Machine {
    pub dir: tempfile::TempDir,
    pub agent: Agent,
}

impl Machine {
    pub fn start(agent_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Searchable by a container's root in a user namespace, as
        // containers.rs sets it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("{agent_toml}\n[limits.containers]\ndefault_pids = -1\n"),
        )
        .unwrap();
        let args = agent_args(dir.path(), &config);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let agent = Agent::start(dir.path(), &args);
        Self { dir, agent }
    }
}

/// `--root`, `--run-dir` and `--config` in `dir`: nothing of the host's.
pub fn agent_args(dir: &Path, config: &Path) -> Vec<PathBuf> {
    vec![
        "--root".into(),
        dir.join("root"),
        "--run-dir".into(),
        dir.join("run"),
        "--config".into(),
        config.to_owned(),
    ]
}

/// Runs the agent on `dir` with `config`, which must stop it: what it
/// printed, once it exited (within 20 s, or the test fails).
pub fn start_refused(dir: &Path, config: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_husk-agent"))
        .arg("--socket")
        .arg(dir.join("agent.sock"))
        .arg("--data-status")
        .arg(dir.join("data.json"))
        .arg("--no-machine-setup")
        .args(agent_args(dir, config))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent started with {}", config.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A command's stdout and stderr, as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `command` with `input` on its stdin, then EOF (no input: stdin
/// is /dev/null), its stdout and stderr read on threads as it goes: its
/// output, or a panic naming `what` with what it printed when it takes
/// longer than `limit` (a hang is a failure, not a stuck test).
pub fn run_with_deadline(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
    what: &str,
) -> Output {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    if let Some(input) = input {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish in {limit:?}: {}{}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

const IN_NAMESPACE: &str = "HUSK_TEST_IN_CGROUP2_NS";

/// For tests that run containers (this host's cgroups are v1 hybrid):
/// re-executes the test as root in a private mount namespace with cgroup2
/// on /sys/fs/cgroup, and a network namespace of its own (only `lo`, up):
/// the agent's bridge, veths and nftables table are the test's, never the
/// host's, and are gone with it even when it fails. True when the caller should run the test body now;
/// false when it already ran in the child (asserted). Not root: the test
/// fails, naming why (a root-only test must never pass unrun).
pub fn enter_cgroup2_namespace(test: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "{test} needs root (namespaces, mounts, cgroups): run it as root, as CI does"
    );
    let output = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c"])
        .arg("ip link set lo up && mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "{test} failed in its mount namespace"
    );
    // `--exact` wants the test's whole path (`module::name`): a name that
    // matches nothing would run nothing and pass.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run in its mount namespace (its whole path?)"
    );
    false
}

/// Polls `check` every 100 ms until it returns Some, or panics with
/// `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a test, passed or not: every container's shim killed, and its
/// cgroup killed and removed (`root` and `run` are the agent's
/// `--root` and `--run-dir`). No assertion: this may run while a test
/// panics.
pub fn kill_containers(root: &Path, run: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("containers")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().into_string().unwrap_or_default();
        let shim_pid = run.join(format!("containers/{name}/shim.pid"));
        if let Ok(shim) = std::fs::read(&shim_pid)
            && let Ok(shim) = serde_json::from_slice::<serde_json::Value>(&shim)
            && let Some(pid) = shim["pid"].as_i64()
            && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let cgroup = PathBuf::from(format!("/sys/fs/cgroup/husk/{name}"));
        if cgroup.exists() {
            let _ = std::fs::write(cgroup.join("cgroup.kill"), "1");
            for _ in 0..50 {
                if std::fs::remove_dir(&cgroup).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Moves the calling thread into a new, empty network namespace, and
/// checks that a process it starts is in it too (so `nft` sees what
/// the thread does).
pub fn private_netns(test: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{test} needs root (network namespaces): run it as root, as CI does"
    );
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    // SAFETY: NEWNET only: this thread's file descriptor table is not
    // unshared, so every thread still sees the descriptors it shares.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .expect("unshare(CLONE_NEWNET)");
    let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let output = Command::new("readlink")
        .arg("/proc/self/ns/net")
        .output()
        .unwrap();
    let child = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        child.trim(),
        ours.to_str().unwrap(),
        "a child process is not in the thread's netns"
    );
    assert_ne!(ours, before);
}

/// A TCP port of loopback that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
