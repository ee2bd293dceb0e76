//! `containerd`: Debian's containerd 1.6 on a booted machine (pure
//! cgroup v2, the product kernel) running tasks through two OCI
//! runtimes side by side, `ctr run --runc-binary`: Debian's crun, and
//! Husk's own, the agent invoked as `husk-runc` (runc's command line),
//! which is how another engine uses it, not as Husk's agent does.
//!
//! Every check runs with both and prints its own line, then a table
//! closes the run. The scenario fails when husk-runc fails a check that
//! crun passes (one crun fails too is reported, not counted), or when
//! crun cannot run a container at all: then the setup is broken, and a
//! pass would prove nothing. Each failure comes with ctr's error (the
//! shim's, quoting the runtime's), the runtime's own `--log` lines and
//! containerd's errors during the check.

pub mod bench;
mod ctr;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use self::ctr::{Ran, ctr, ctr_tty, one_line};
use super::{Outcome, say};

pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
pub const CTR_BIN: &str = "/usr/bin/ctr";
pub const SHIM_BIN: &str = "/usr/bin/containerd-shim-runc-v2";
pub const CRUN_BIN: &str = "/usr/bin/crun";
/// Debian's binaries the scenario runs, at the same paths as on the
/// host (dynamically linked: the test ships their libraries too).
pub const ENGINE_BINARIES: [&str; 4] = [CONTAINERD_BIN, CTR_BIN, SHIM_BIN, CRUN_BIN];
/// Where the test puts the busybox image archive.
pub const ENGINE_ARCHIVE: &str = "/usr/share/husk-check/containerd-busybox.tar";
/// The image's name in the archive (`org.opencontainers.image.ref.name`,
/// which `ctr images import` takes as it is).
pub const ENGINE_IMAGE: &str = "husk.test/busybox:1";

const SCENARIO: &str = "containerd";
/// The checker's files: config, containerd's log, the husk-runc link.
const WORK: &str = "/run/husk-check-containerd";
/// Images and snapshots: the data partition, a tmpfs on a direct boot,
/// where overlayfs takes its upper directories.
const ROOT: &str = "/var/lib/husk/containerd";
/// Shims, bundles and the runtimes' state (`runc/default/ID`).
const STATE: &str = "/run/containerd";
pub const SOCKET: &str = "/run/containerd/containerd.sock";
const READY_DEADLINE: Duration = Duration::from_secs(120);
const STATUS_DEADLINE: Duration = Duration::from_secs(30);

/// containerd runs nothing but what ctr asks for: no CRI, and a debug
/// log that holds the shim's lines too.
fn config() -> String {
    format!(
        "version = 2\nroot = \"{ROOT}\"\nstate = \"{STATE}\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\naddress = \"{SOCKET}\"\n[debug]\nlevel = \"debug\"\n"
    )
}

struct Runtime {
    name: &'static str,
    binary: String,
}

fn runtimes() -> [Runtime; 2] {
    [
        Runtime {
            name: "crun",
            binary: CRUN_BIN.to_owned(),
        },
        Runtime {
            name: "husk-runc",
            binary: format!("{WORK}/husk-runc"),
        },
    ]
}

/// The checks, numbered from 1 in this order.
const CHECKS: [&str; N] = [
    "foreground output",
    "exit code",
    "detached task",
    "exec",
    "kill",
    "delete",
    "tty",
    "exec with tty",
    "pause and resume",
    "ps",
    "signal at once",
];
const N: usize = 11;

enum Verdict {
    Pass,
    Fail(String),
    /// A check that needs one that failed (printed with why).
    NotRun,
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::NotRun => "NOT RUN",
        }
    }
}

pub fn run(_: &[String]) -> Outcome {
    let mut containerd = Containerd::start()?;
    let result = import().and_then(|()| {
        let verdicts = runtimes().map(|rt| run_checks(&rt));
        judge(&verdicts)
    });
    containerd.stop();
    result
}

/// Every check with `rt`, in an order where each finds what it needs:
/// the detached task serves exec, the ttys and kill, and is deleted last.
fn run_checks(rt: &Runtime) -> [Verdict; N] {
    let id = |what: &str| format!("{}-{what}", rt.name);
    let (fg, exit, tty, task) = (id("fg"), id("exit"), id("tty"), id("task"));
    let mut v: [Verdict; N] = std::array::from_fn(|_| Verdict::NotRun);
    let bin = rt.binary.as_str();
    v[0] = check(rt, 0, &fg, || {
        let ran = ctr(&run_args(&["--rm"], bin, &fg, &["echo", "hello"]))?;
        expect(&ran, 0, |out| out.trim() == "hello", "hello")
    });
    v[1] = check(rt, 1, &exit, || {
        let ran = ctr(&run_args(&["--rm"], bin, &exit, &["sh", "-c", "exit 7"]))?;
        expect(&ran, 7, |_| true, "")
    });
    v[6] = check(rt, 6, &tty, || {
        let ran = ctr_tty(&run_args(&["--rm", "-t"], bin, &tty, &["sh", "-c", "tty"]))?;
        expect(&ran, 0, is_pts, "a /dev/pts/N path")
    });
    v[2] = check(rt, 2, &task, || {
        let ran = ctr(&run_args(&["-d"], bin, &task, &["sleep", "1000"]))?;
        expect(&ran, 0, |_| true, "")?;
        wait_for_status(&task, "RUNNING")
    });
    if matches!(v[2], Verdict::Pass) {
        v[3] = check(rt, 3, &task, || {
            let ran = ctr(&[
                "task",
                "exec",
                "--exec-id",
                "e1",
                &task,
                "echo",
                "from-exec",
            ])?;
            expect(&ran, 0, |out| out.trim() == "from-exec", "from-exec")
        });
        v[7] = check(rt, 7, &task, || {
            let ran = ctr_tty(&["task", "exec", "-t", "--exec-id", "e2", &task, "tty"])?;
            expect(&ran, 0, is_pts, "a /dev/pts/N path")
        });
        v[8] = check(rt, 8, &task, || {
            expect(&ctr(&["task", "pause", &task])?, 0, |_| true, "")?;
            wait_for_status(&task, "PAUSED")?;
            expect(&ctr(&["task", "resume", &task])?, 0, |_| true, "")?;
            wait_for_status(&task, "RUNNING")
        });
        v[9] = check(rt, 9, &task, || {
            // The runtime's `ps --format json`, as the shim asks it.
            let ran = ctr(&["task", "ps", &task])?;
            expect(
                &ran,
                0,
                |out| {
                    out.lines().skip(1).any(|l| {
                        l.split_whitespace()
                            .next()
                            .is_some_and(|p| p.parse::<u32>().is_ok())
                    })
                },
                "a PID row",
            )
        });
        v[4] = check(rt, 4, &task, || {
            let ran = ctr(&["task", "kill", "-s", "KILL", &task])?;
            expect(&ran, 0, |_| true, "")?;
            wait_for_status(&task, "STOPPED")
        });
    } else {
        for i in [3, 7, 8, 9, 4] {
            v[i] = not_run(rt, i, "the detached task did not start");
        }
    }
    if matches!(v[4], Verdict::Pass) {
        v[5] = check(rt, 5, &task, || delete(&task));
    } else {
        v[5] = not_run(rt, 5, "the task was not stopped");
    }
    let signal = id("signal");
    v[10] = check(rt, 10, &signal, || {
        // TERM sent the moment the task runs must reach the program's
        // handler: `start` returns once the process is the program.
        let script = "trap 'exit 42' TERM; sleep 1000 & wait $!";
        let ran = ctr(&run_args(&["-d"], bin, &signal, &["sh", "-c", script]))?;
        expect(&ran, 0, |_| true, "")?;
        expect(
            &ctr(&["task", "kill", "-s", "TERM", &signal])?,
            0,
            |_| true,
            "",
        )?;
        wait_for_status(&signal, "STOPPED")
    });
    for id in [&fg, &exit, &tty, &task, &signal] {
        clean_up(id);
    }
    v
}

/// `ctr run FLAGS --runc-binary BIN IMAGE ID COMMAND…`.
fn run_args<'a>(flags: &[&'a str], bin: &'a str, id: &'a str, command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--runc-binary", bin, ENGINE_IMAGE, id]);
    args.extend_from_slice(command);
    args
}

/// `ctr task delete` and `ctr container delete`, and nothing left.
fn delete(id: &str) -> Outcome {
    expect(&ctr(&["task", "delete", id])?, 0, |_| true, "")?;
    expect(&ctr(&["container", "delete", id])?, 0, |_| true, "")?;
    if let Some(status) = task_status(id)? {
        return Err(format!("`ctr task ls` still lists {id} ({status})"));
    }
    let containers = ctr(&["container", "ls", "-q"])?;
    if containers.stdout.lines().any(|l| l.trim() == id) {
        return Err(format!("`ctr container ls` still lists {id}"));
    }
    Ok(())
}

fn is_pts(out: &str) -> bool {
    out.lines().any(|l| l.trim().starts_with("/dev/pts/"))
}

/// `ran` exited `code` and its stdout is what `wanted` describes.
fn expect(ran: &Ran, code: i32, ok: impl Fn(&str) -> bool, wanted: &str) -> Outcome {
    if ran.timed_out || ran.code != Some(code) {
        return Err(format!("wanted exit {code}, got {}", ran.describe()));
    }
    if !ok(&ran.stdout) {
        return Err(format!(
            "wanted {wanted} on stdout, got {:?}; {}",
            ran.stdout,
            ran.describe()
        ));
    }
    Ok(())
}

/// Runs check `index` with `rt` on container `id`, prints its line (and
/// on failure what containerd and the runtime said meanwhile).
fn check(rt: &Runtime, index: usize, id: &str, body: impl FnOnce() -> Outcome) -> Verdict {
    let log_start = fs::metadata(log_path()).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let outcome = body();
    let took = started.elapsed().as_secs_f32();
    let label = format!("{}: {} {}", rt.name, index + 1, CHECKS[index]);
    match outcome {
        Ok(()) => {
            say(SCENARIO, &format!("{label}: PASS ({took:.1} s)"));
            Verdict::Pass
        }
        Err(why) => {
            say_long(&format!("{label}: FAIL ({took:.1} s): {why}"));
            diagnose(&label, id, log_start);
            Verdict::Fail(why)
        }
    }
}

fn not_run(rt: &Runtime, index: usize, why: &'static str) -> Verdict {
    say(
        SCENARIO,
        &format!(
            "{}: {} {}: NOT RUN: {why}",
            rt.name,
            index + 1,
            CHECKS[index]
        ),
    );
    Verdict::NotRun
}

/// The runtime's `--log` (the shim keeps it in the bundle, which
/// containerd removes with a task that failed to start) and containerd's
/// warnings and errors since the check began.
fn diagnose(label: &str, id: &str, log_start: u64) {
    let runtime_log = Path::new(STATE)
        .join("io.containerd.runtime.v2.task/default")
        .join(id)
        .join("log.json");
    match fs::read_to_string(&runtime_log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(5)..] {
                say_long(&format!("{label}: runtime log: {line}"));
            }
        }
        Err(e) => say(
            SCENARIO,
            &format!("{label}: runtime log {}: {e}", runtime_log.display()),
        ),
    }
    let log = fs::read(log_path()).unwrap_or_default();
    let since = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
    let errors: Vec<&str> = since
        .lines()
        .filter(|l| l.contains("level=error") || l.contains("level=warning"))
        .collect();
    if errors.is_empty() {
        say(
            SCENARIO,
            &format!("{label}: containerd: no warning or error during the check"),
        );
    }
    for line in &errors[errors.len().saturating_sub(8)..] {
        say_long(&format!("{label}: containerd: {line}"));
    }
}

/// Prints the table and says whether husk-runc lags behind crun.
fn judge(verdicts: &[[Verdict; N]; 2]) -> Outcome {
    let [crun, husk] = verdicts;
    say(SCENARIO, "table: check | crun | husk-runc");
    let mut behind = Vec::new();
    for (i, name) in CHECKS.iter().enumerate() {
        let note = match (&crun[i], &husk[i]) {
            (Verdict::Pass, Verdict::Pass) => "",
            (Verdict::Pass, _) => {
                behind.push(format!("{} {name}", i + 1));
                ""
            }
            (_, _) => " (crun fails it too: not counted)",
        };
        say(
            SCENARIO,
            &format!(
                "table: {} {name} | {} | {}{note}",
                i + 1,
                crun[i].word(),
                husk[i].word()
            ),
        );
    }
    if let Verdict::Fail(why) = &crun[0] {
        return Err(format!(
            "crun cannot run a container, so the setup is broken: {why}"
        ));
    }
    if behind.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "husk-runc fails what crun passes: {}",
            behind.join(", ")
        ))
    }
}

/// Polls `ctr task ls` until `id` is `want`.
fn wait_for_status(id: &str, want: &str) -> Outcome {
    let deadline = Instant::now() + STATUS_DEADLINE;
    loop {
        let status = task_status(id)?;
        if status.as_deref() == Some(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "task {id} is {status:?} after {} s, not {want}",
                STATUS_DEADLINE.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// `id`'s STATUS column in `ctr task ls`; None when it is not listed.
fn task_status(id: &str) -> Result<Option<String>, String> {
    let ran = ctr(&["task", "ls"])?;
    if ran.code != Some(0) {
        return Err(format!("ctr task ls: {}", ran.describe()));
    }
    Ok(ran.stdout.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.first() == Some(&id)).then(|| fields.get(2).unwrap_or(&"").to_string())
    }))
}

/// Whatever a check left behind goes, so the next runtime starts clean.
fn clean_up(id: &str) {
    for args in [
        &["task", "kill", "-s", "KILL", id][..],
        &["task", "delete", "--force", id],
        &["container", "delete", id],
    ] {
        let _ = ctr(args);
    }
}

fn import() -> Outcome {
    let ran = ctr(&["images", "import", ENGINE_ARCHIVE])?;
    if ran.code != Some(0) {
        return Err(format!("ctr images import: {}", ran.describe()));
    }
    let images = ctr(&["images", "ls", "-q"])?;
    if !images.stdout.lines().any(|l| l.trim() == ENGINE_IMAGE) {
        return Err(format!(
            "the import did not name {ENGINE_IMAGE}: {}",
            images.describe()
        ));
    }
    say(SCENARIO, &format!("imported {ENGINE_IMAGE}"));
    Ok(())
}

fn log_path() -> PathBuf {
    Path::new(WORK).join("containerd.log")
}

/// A line of at most 700 bytes per console line: init truncates longer
/// ones (one kmsg record each).
fn say_long(text: &str) {
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(700);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (line, tail) = rest.split_at(cut);
        say(SCENARIO, line);
        rest = tail;
    }
}

struct Containerd {
    child: Child,
}

impl Containerd {
    /// Writes the config and the husk-runc link (the root is read-only),
    /// starts containerd and waits until ctr reaches it.
    fn start() -> Result<Containerd, String> {
        fs::create_dir_all(WORK).map_err(|e| format!("{WORK}: {e}"))?;
        let link = Path::new(WORK).join("husk-runc");
        symlink(husk_common::paths::AGENT_BIN, &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
        let config_path = Path::new(WORK).join("config.toml");
        fs::write(&config_path, config()).map_err(|e| format!("{}: {e}", config_path.display()))?;
        let log = fs::File::create(log_path()).map_err(|e| format!("containerd's log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("containerd's log: {e}"))?;
        let started = Instant::now();
        let child = Command::new(CONTAINERD_BIN)
            .arg("--config")
            .arg(&config_path)
            // The shim is found on PATH.
            .env("PATH", "/usr/bin:/usr/sbin")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {CONTAINERD_BIN}: {e}"))?;
        let mut containerd = Containerd { child };
        containerd.wait_ready()?;
        say(
            SCENARIO,
            &format!(
                "containerd ready after {:.1} s",
                started.elapsed().as_secs_f32()
            ),
        );
        Ok(containerd)
    }

    fn wait_ready(&mut self) -> Outcome {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("containerd exited ({status}): {}", log_tail()));
            }
            if Path::new(SOCKET).exists() {
                let ran = ctr(&["version"])?;
                if ran.code == Some(0) {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(format!("ctr version: {}", ran.describe()));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no {SOCKET} after {} s: {}",
                    READY_DEADLINE.as_secs(),
                    log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM, and SIGKILL if it lingers: the boot powers off next.
    fn stop(&mut self) {
        let pid = Pid::from_child(&self.child);
        let _ = kill_process(pid, Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail() -> String {
    let log = fs::read_to_string(log_path()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    one_line(&lines[lines.len().saturating_sub(5)..].join("\n"))
}
