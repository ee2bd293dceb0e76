//! The `cargo xtask` commands README.md shows, run as a user types them
//! (through cargo, in the workspace): the headless boot checks, the
//! interactive boot with its serial console on the terminal and its
//! `--metadata` flag, each benchmark once, small, and a fuzz target for a
//! few seconds. They assert that each command does its job, never how
//! fast: the figures are the benchmarks' business.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use qemu_tests::scaled;

/// One nested `cargo xtask` at a time: each may boot a QEMU, which the
/// harness's VM cap does not see.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `cargo xtask ARGS…` in the workspace, as typed there.
fn xtask(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .arg("xtask")
        .args(args)
        .current_dir(husk_binaries::workspace_root())
        // Its own group, so a failing test can stop cargo, xtask and QEMU.
        .process_group(0);
    command
}

fn run(args: &[&str]) -> Output {
    let _one = one_at_a_time();
    let output = xtask(args).output().expect("running cargo xtask");
    assert!(
        output.status.success(),
        "cargo xtask {}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn run_check_boots_the_product_image_through_uefi_and_powers_off() {
    let out = text(&run(&["run", "--check"]));
    for milestone in ["init started", "agent ready", "powered off"] {
        assert!(out.contains(milestone), "no {milestone:?} in:\n{out}");
    }
}

#[test]
fn run_check_direct_boots_kernel_and_initramfs() {
    let out = text(&run(&["run", "--check", "--direct"]));
    assert!(out.contains("agent ready"), "{out}");
}

#[test]
fn bench_runtime_compares_husk_with_crun_and_runc() {
    let out = text(&run(&[
        "bench",
        "runtime",
        "--runs",
        "3",
        "--shim-runs",
        "1",
    ]));
    // A row per runtime with its ratio to husk's median, and the two
    // through containerd's shim in the guest.
    for runtime in ["| husk |", "| crun |", "| runc |", "| husk-runc |"] {
        assert!(out.contains(runtime), "no {runtime} row in:\n{out}");
    }
    assert!(out.contains("through containerd 1.6's runc shim"), "{out}");
    assert!(out.contains("1.00x |"), "{out}");
}

#[test]
fn bench_memory_measures_containers() {
    let out = text(&run(&["bench", "memory", "--containers", "2"]));
    assert!(out.contains("memory with 2 idle containers"), "{out}");
    assert!(out.contains("| shim per container, PSS (RSS) |"), "{out}");
}

#[test]
fn bench_pull_compares_husk_with_skopeo() {
    let out = text(&run(&["bench", "pull", "--pulls", "1"]));
    for row in [
        "| cold: 5 layers |",
        "| 4 of 5 layers in the store |",
        "skopeo / husk",
    ] {
        assert!(out.contains(row), "no {row} in:\n{out}");
    }
    assert!(out.contains("memory: husk-agent RSS"), "{out}");
}

#[test]
fn bench_network_compares_the_bridge_with_none_and_loopback() {
    let out = text(&run(&["bench", "network", "--idle", "2"]));
    for row in [
        "bridge / none, median (p95)",
        "| host loopback 127.0.0.1",
        "through its published ports (192.0.2.1, DNAT)",
        "(no DNAT; baseline) |",
        "2 idle containers",
    ] {
        assert!(out.contains(row), "no {row} in:\n{out}");
    }
}

#[test]
fn bench_api_compares_husks_docker_api_with_dockerd_and_times_remote_ps() {
    let out = text(&run(&["bench", "api", "--runs", "2", "--containers", "2"]));
    for row in [
        "| docker CLI → Husk's Docker API |",
        "| huskctl run --rm → Husk's API |",
        "`huskctl ps` with 2 containers running",
        "| remote: TLS 1.3, client certificate, 127.0.0.1 |",
        "ratio of medians: remote / unix socket",
    ] {
        assert!(out.contains(row), "no {row} in:\n{out}");
    }
    // dockerd runs here, or the benchmark says why not: never silence.
    assert!(
        out.contains("ratio of medians: dockerd / Husk")
            || out.contains("dockerd could not run here"),
        "{out}"
    );
}

#[test]
fn bench_boot_reports_milestones() {
    let out = text(&run(&["bench", "boot", "--boots", "1", "--direct"]));
    assert!(out.contains("1 boots"), "{out}");
    assert!(out.contains("init start -> agent ready"), "{out}");
}

#[test]
fn bench_runs_every_benchmark() {
    let out = text(&run(&[
        "bench",
        "--runs",
        "2",
        "--shim-runs",
        "1",
        "--containers",
        "1",
        "--pulls",
        "1",
        "--boots",
        "1",
        "--direct",
    ]));
    for part in [
        "| runc |",
        "memory with 1 idle containers",
        "| cold: 5 layers |",
        "init start -> agent ready",
    ] {
        assert!(out.contains(part), "no {part:?} in:\n{out}");
    }
}

#[test]
fn fuzz_runs_a_target_from_its_seeds() {
    // (`cargo xtask test` has built the targets by now; alone, this
    // builds them first)
    let out = text(&run(&["fuzz", "tar_unpack", "--time", "5"]));
    assert!(out.contains("xtask: fuzz: tar_unpack: "), "{out}");
    assert!(out.contains(" exec/s, coverage "), "{out}");
}

/// A child process group, killed when the test ends however it ends.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SIGKILL to the whole group: cargo, xtask, QEMU.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// An EC2-style metadata service on loopback: a token for the PUT, a
/// user-data document for the GET. Counts what it was asked.
fn metadata_service(user_data: &'static str) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = qemu_tests::http::read_request_head(&mut stream);
            let first = request.lines().next().unwrap_or("").to_owned();
            let body = if first.starts_with("PUT /latest/api/token") {
                "token-from-the-test"
            } else {
                user_data
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tx.send(first);
        }
    });
    (addr, rx)
}

#[test]
fn run_puts_the_console_on_the_terminal_and_metadata_reaches_the_given_server() {
    let _one = one_at_a_time();
    let (server, asked) = metadata_service("hostname = \"from-metadata\"\n");
    let url = format!("http://{server}");
    let child = xtask(&["run", "--direct", "--metadata", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running cargo xtask run");
    let mut group = Group(child);
    let stdout = group.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |wanted: &str, within: Duration| {
        let deadline = Instant::now() + scaled(within);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(wanted);
                    seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {wanted:?} on the console within {within:?}; it showed:\n{}",
                    seen[seen.len().saturating_sub(40)..].join("\n")
                ),
            }
        }
    };
    // The first build of the product binaries may take minutes.
    wait_for("husk-init: boot: agent ready", Duration::from_secs(900));
    wait_for(
        "user-data from metadata service 169.254.169.254:80 applied",
        Duration::from_secs(90),
    );
    let requests: Vec<String> = asked.try_iter().collect();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("PUT /latest/api/token")),
        "{requests:?}"
    );
    // QEMU's own escape: Ctrl-A X quits, as README says.
    let mut stdin = group.0.stdin.take().unwrap();
    stdin.write_all(b"\x01x").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    let status = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "Ctrl-A X did not end QEMU");
        thread::sleep(Duration::from_millis(100));
    };
    // xtask reports QEMU's exit; Ctrl-A X is a clean one.
    assert!(status.success(), "cargo xtask run: {status}");
}
