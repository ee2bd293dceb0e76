//! Terminals and attach end to end, as root: `huskctl run -it` driven
//! through a real pty (python3's pty module), resizes, the detach keys
//! and `huskctl attach`, `run -i` streaming stdin to its EOF, `huskctl
//! exec -it` and `exec -i`, and an attach client that never reads while
//! the container writes 50 MB.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use husk_api::containers::{ContainerInfo, Status};

use common::{Agent, enter_cgroup2_namespace, eventually, huskctl_bin, kill_containers};
use husk_testkit::{busybox_layer, oci_archive};

const IMAGE: &str = "husk.test/busybox:1";

struct Machine {
    dir: tempfile::TempDir,
    agent: Agent,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, "[limits.containers]\ndefault_pids = -1\n").unwrap();
        let args = common::agent_args(dir.path(), &config);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let agent = Agent::start(dir.path(), &args);
        let archive = dir.path().join("busybox.tar");
        std::fs::write(&archive, oci_archive(IMAGE, &[busybox_layer()])).unwrap();
        agent.huskctl_ok(&["image", "import", archive.to_str().unwrap()]);
        Self { dir, agent }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// huskctl with these arguments on a pty, driven by `steps`: its exit
    /// code and what the terminal showed.
    fn on_pty(&self, steps: serde_json::Value, args: &[&str]) -> (i32, String) {
        let mut huskctl = Command::new(huskctl_bin());
        huskctl.arg("--socket").arg(&self.agent.socket).args(args);
        common::pty::run(&steps, &huskctl)
    }

    fn inspect(&self, name: &str) -> ContainerInfo {
        serde_json::from_str(&self.agent.huskctl_ok(&["inspect", name])).unwrap()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        kill_containers(&self.path("root"), &self.path("run"));
    }
}

#[test]
fn run_it_gives_a_terminal_that_resizes_and_exits_with_its_code() {
    if !enter_cgroup2_namespace("run_it_gives_a_terminal_that_resizes_and_exits_with_its_code") {
        return;
    }
    let m = Machine::new();
    let steps = serde_json::json!([
        ["expect", "# "],
        ["send", "tty\r"],
        ["expect", "/dev/pts/"],
        ["send", "echo typed-$((1+2)) $TERM\r"],
        // The container's terminal echoes what is typed, then runs it.
        ["expect", "echo typed-$((1+2)) $TERM"],
        ["expect", "typed-3 xterm"],
        ["resize", 33, 77],
        ["send", "sleep 0.5; busybox stty size\r"],
        ["expect", "33 77"],
        ["send", "exit 3\r"],
    ]);
    let (code, screen) = m.on_pty(
        steps,
        &["run", "-it", "--rm", "--name", "term", IMAGE, "sh"],
    );
    assert_eq!(code, 3, "{screen}");
    assert!(!m.agent.huskctl_ok(&["ps", "-a"]).contains("term"));
    // Logged as stdout, as Docker's json-file does for a tty.
}

#[test]
fn detach_keys_leave_it_running_and_attach_joins_it_again() {
    if !enter_cgroup2_namespace("detach_keys_leave_it_running_and_attach_joins_it_again") {
        return;
    }
    let m = Machine::new();
    let steps = serde_json::json!([
        ["expect", "# "],
        ["send", "echo before\r"],
        ["expect", "before"],
        ["send", "\u{10}\u{11}"],
    ]);
    let (code, screen) = m.on_pty(steps, &["run", "-it", "--name", "keep", IMAGE, "sh"]);
    assert_eq!(code, 0, "{screen}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(m.inspect("keep").status, Status::Running, "{screen}");
    // Its stdin stayed open: a second attach types into the same shell.
    let steps = serde_json::json!([
        ["send", "echo again-$((2+2))\r"],
        ["expect", "again-4"],
        ["send", "exit 5\r"],
    ]);
    let (code, screen) = m.on_pty(steps, &["attach", "keep"]);
    assert_eq!(code, 5, "{screen}");
    let info = eventually(Duration::from_secs(10), "keep exited", || {
        let info = m.inspect("keep");
        (info.status == Status::Exited).then_some(info)
    });
    assert_eq!(info.exit_code, Some(5));
    // The tty's output is in the log, as stdout.
    let logs = m.agent.huskctl_ok(&["logs", "keep"]);
    assert!(logs.contains("again-4"), "{logs}");
    // Attaching to a stopped container is refused, clearly.
    let err = m.agent.huskctl_err(&["attach", "keep"]);
    assert!(err.contains("not running"), "{err}");
    // A resize of a container without a tty says so.
    m.agent
        .huskctl_ok(&["run", "-d", "--name", "plain", IMAGE, "sleep", "100"]);
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "--unix-socket"])
        .arg(&m.agent.socket)
        .arg("http://husk/v1/containers/plain/resize?rows=10&cols=10")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("no terminal"), "{body}");
}

#[test]
fn run_i_streams_stdin_until_its_eof() {
    if !enter_cgroup2_namespace("run_i_streams_stdin_until_its_eof") {
        return;
    }
    let m = Machine::new();
    let mut child = Command::new(huskctl_bin())
        .arg("--socket")
        .arg(&m.agent.socket)
        .args([
            "run",
            "-i",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "cat; echo err >&2; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7));
    // echo hello | huskctl run -i --rm IMAGE cat
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo hello | {} --socket {} run -i --rm {IMAGE} cat",
            huskctl_bin().display(),
            m.agent.socket.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{out:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn an_attach_client_that_never_reads_stalls_nothing() {
    if !enter_cgroup2_namespace("an_attach_client_that_never_reads_stalls_nothing") {
        return;
    }
    let m = Machine::new();
    m.agent.huskctl_ok(&[
        "run",
        "-d",
        "--name",
        "flood",
        IMAGE,
        "sh",
        "-c",
        "sleep 2; busybox yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | busybox head -c 50000000; echo; echo done",
    ]);
    // One client on the shim's socket, one through the agent's API:
    // neither ever reads.
    let direct =
        std::os::unix::net::UnixStream::connect(m.path("run/containers/flood/attach.sock"))
            .unwrap();
    let mut api = std::os::unix::net::UnixStream::connect(&m.agent.socket).unwrap();
    api.write_all(
        b"POST /v1/containers/flood/attach HTTP/1.1\r\nHost: husk\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    )
    .unwrap();
    let started = Instant::now();
    let info = eventually(Duration::from_secs(90), "flood exited", || {
        let info = m.inspect("flood");
        (info.status == Status::Exited).then_some(info)
    });
    assert_eq!(info.exit_code, Some(0));
    let tail = m.agent.huskctl_ok(&["logs", "--tail", "1", "flood"]);
    assert_eq!(tail, "done\n", "after {:?}", started.elapsed());
    drop((direct, api));
}

#[test]
fn exec_it_gives_a_terminal_and_exec_i_streams_stdin() {
    if !enter_cgroup2_namespace("exec_it_gives_a_terminal_and_exec_i_streams_stdin") {
        return;
    }
    let m = Machine::new();
    m.agent
        .huskctl_ok(&["run", "-d", "--name", "box", IMAGE, "sleep", "1000"]);
    let steps = common::pty::terminal_steps(30, 100, serde_json::json!([["send", "exit 6\r"]]));
    let (code, screen) = m.on_pty(steps, &["exec", "-it", "box", "sh"]);
    assert_eq!(code, 6, "{screen}");
    assert_eq!(m.inspect("box").status, Status::Running);

    // The detach keys leave huskctl with 0 and the shell running.
    let steps = serde_json::json!([
        ["expect", "# "],
        ["send", "echo $$ > /sh.pid; echo written\r"],
        ["expect", "written"],
        ["send", "\u{10}\u{11}"],
    ]);
    let (code, screen) = m.on_pty(steps, &["exec", "-it", "box", "sh"]);
    assert_eq!(code, 0, "{screen}");
    let alive = m.agent.huskctl_ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "kill -0 $(cat /sh.pid) && echo alive",
    ]);
    assert_eq!(alive, "alive\n");

    // -i: stdin streamed to its EOF; stdout and stderr apart; the code.
    let mut child = Command::new(huskctl_bin())
        .arg("--socket")
        .arg(&m.agent.socket)
        .args(["exec", "-i", "box", "sh", "-c", "cat; echo err >&2; exit 7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through\nstdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "through\nstdin\n",
        "{out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7));

    // -it with a stdin that is not a terminal is refused, as run's; the
    // plain exec is as it was; a tty needs the upgraded endpoint.
    let err = m.agent.huskctl_err(&["exec", "-it", "box", "sh"]);
    assert!(err.contains("not a TTY"), "{err}");
    assert_eq!(
        m.agent.huskctl_ok(&["exec", "box", "echo", "plain"]),
        "plain\n"
    );
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "--unix-socket"])
        .arg(&m.agent.socket)
        .args(["-H", "Content-Type: application/json"])
        .args(["-d", r#"{"cmd":["sh"],"tty":true}"#])
        .arg("http://husk/v1/containers/box/exec")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("Upgrade"), "{body}");
}
