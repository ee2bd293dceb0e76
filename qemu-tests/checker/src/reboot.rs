//! `container-reboot`: containers survive a reboot as their restart
//! policies say. First boot: import the busybox archive the test put in
//! the image, run `web` (restart=always, with limits) and `once`
//! (restart=no), check the limits reached the cgroup and exec works.
//! Second boot (a marker on the data partition says which boot this is):
//! `web` is running again, `once` is not, and the logs of both runs of
//! `web` are there. On the first boot also: the data partition enforces
//! project quotas, and a container's `--storage-opt size=` holds.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, agent, say};

/// Where the test puts the image archive (in the initramfs).
pub const ARCHIVE_GUEST_PATH: &str = "/usr/share/husk-check/busybox-oci.tar";
/// The image's name in the archive.
pub const IMAGE: &str = "husk.test/busybox:1";
const MARKER: &str = "/var/lib/husk/check-container-reboot";
const HUSKCTL: &str = "/usr/bin/huskctl";
const SCENARIO: &str = "container-reboot";
const MEMORY: u64 = 64 << 20;
const PIDS: u64 = 32;
const COMEBACK_DEADLINE: Duration = Duration::from_secs(60);

pub fn run(_: &[String]) -> Outcome {
    agent::health(&[])?;
    if Path::new(MARKER).exists() {
        second_boot()
    } else {
        first_boot()
    }
}

fn first_boot() -> Outcome {
    huskctl(&["image", "import", ARCHIVE_GUEST_PATH])?;
    huskctl(&[
        "run",
        "-d",
        "--name",
        "web",
        "--restart",
        "always",
        "--memory",
        "64m",
        "--pids-limit",
        "32",
        "-v",
        "web-data:/w",
        IMAGE,
        "sh",
        "-c",
        "echo up; echo boot >> /w/boots; exec sleep 100000",
    ])?;
    // A volume outlives the container that wrote it, and the reboot.
    huskctl(&[
        "run",
        "--rm",
        "-v",
        "kept:/data",
        IMAGE,
        "sh",
        "-c",
        "echo across > /data/note",
    ])?;
    huskctl(&[
        "run",
        "-d",
        "--name",
        "once",
        IMAGE,
        "sh",
        "-c",
        "echo once",
    ])?;
    check_limits()?;
    check_oom_scores()?;
    check_storage_quota()?;
    let cmdline = huskctl(&["exec", "web", "cat", "/proc/1/cmdline"])?;
    if !cmdline.starts_with("sleep") {
        return Err(format!("exec sees /proc/1/cmdline = {cmdline:?}"));
    }
    let stats = huskctl(&["stats", "web"])?;
    if !stats.contains("web") {
        return Err(format!("stats: {stats}"));
    }
    wait_for(
        || status("once").is_ok_and(|s| s == "exited"),
        "once to exit",
    )?;
    // Durable before the test reboots the machine.
    fs::write(MARKER, b"1")
        .and_then(|()| fs::File::open(MARKER)?.sync_all())
        .and_then(|()| fs::File::open("/var/lib/husk")?.sync_all())
        .map_err(|e| format!("{MARKER}: {e}"))?;
    say(SCENARIO, "boot 1: web and once started");
    Ok(())
}

fn second_boot() -> Outcome {
    wait_for(
        || status("web").is_ok_and(|s| s == "running"),
        "web to come back",
    )?;
    let once = status("once")?;
    if once != "exited" {
        return Err(format!("`once` (restart=no) is {once} after the reboot"));
    }
    check_limits()?;
    let logs = huskctl(&["logs", "web"])?;
    if logs != "up\nup\n" {
        return Err(format!("web's logs across the reboot: {logs:?}"));
    }
    // Restarted by the agent with its volume mounted again.
    let boots = huskctl(&["exec", "web", "cat", "/w/boots"])?;
    if boots != "boot\nboot\n" {
        return Err(format!("web's volume across the reboot: {boots:?}"));
    }
    let note = huskctl(&[
        "run",
        "--rm",
        "-v",
        "kept:/data:ro",
        IMAGE,
        "cat",
        "/data/note",
    ])?;
    if note != "across\n" {
        return Err(format!("volume `kept` after the reboot holds {note:?}"));
    }
    say(SCENARIO, "boot 2: web is back, once is not");
    Ok(())
}

/// husk-image's data partition is mounted with project quotas (init
/// loaded quota_v2 and saw the feature), a sized writable layer stops at
/// its size, and an unsized one writes on.
fn check_storage_quota() -> Outcome {
    let mounts = fs::read_to_string("/proc/mounts").map_err(|e| format!("/proc/mounts: {e}"))?;
    let data = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/var/lib/husk"))
        .ok_or("/var/lib/husk is not mounted")?;
    if !data.contains("prjquota") {
        return Err(format!("the data partition has no project quotas: {data}"));
    }
    let fill = "/bin/busybox head -c 33554432 /dev/zero > /fill; echo status $?; \
                /bin/busybox stat -c %s /fill";
    let sized = huskctl_output(&[
        "run",
        "--rm",
        "--storage-opt",
        "size=8m",
        IMAGE,
        "sh",
        "-c",
        fill,
    ])?;
    let written = |out: &str| {
        out.lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    if !sized.contains("status 1") || written(&sized) > 8 << 20 {
        return Err(format!("a writable layer of 8 MiB took more: {sized}"));
    }
    let shared = huskctl_output(&["run", "--rm", IMAGE, "sh", "-c", fill])?;
    if !shared.contains("status 0") || written(&shared) != 32 << 20 {
        return Err(format!("an unsized writable layer was stopped: {shared}"));
    }
    say(
        SCENARIO,
        "storage: prjquota; 8 MiB layer stopped at its size, unsized wrote 32 MiB",
    );
    Ok(())
}

/// huskctl's stdout and stderr whatever its status (a container that
/// fails on purpose).
fn huskctl_output(args: &[&str]) -> Result<String, String> {
    let out = run_huskctl(args)?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    ))
}

/// Runs huskctl, whatever its status.
pub(crate) fn run_huskctl(args: &[&str]) -> Result<std::process::Output, String> {
    Command::new(HUSKCTL)
        .args(args)
        .output()
        .map_err(|e| format!("running {HUSKCTL}: {e}"))
}

/// The limits reached web's cgroup.
fn check_limits() -> Outcome {
    let read = |file: &str| {
        let path = format!("/sys/fs/cgroup/husk/web/{file}");
        fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{path}: {e}"))
    };
    let memory = read("memory.max")?;
    let pids = read("pids.max")?;
    if memory != MEMORY.to_string() || pids != PIDS.to_string() {
        return Err(format!(
            "web's cgroup: memory.max {memory}, pids.max {pids}"
        ));
    }
    Ok(())
}

/// The agent shielded from the OOM killer (-999), the shim one above it,
/// the container at its spec's 0 (not inheriting either).
fn check_oom_scores() -> Outcome {
    let adj = |pid: &str| {
        fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("oom_score_adj of {pid}: {e}"))
    };
    let json = huskctl(&["inspect", "web"])?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("inspect web: {e}"))?;
    let init = info["pid"]
        .as_i64()
        .ok_or_else(|| format!("inspect web: no pid in {json}"))?
        .to_string();
    let stat = fs::read_to_string(format!("/proc/{init}/stat")).map_err(|e| e.to_string())?;
    // The shim is the container init's parent: field 4, after the comm.
    let shim = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .ok_or_else(|| format!("/proc/{init}/stat: {stat}"))?
        .to_owned();
    let agent = agent::daemon_pid()?.to_string();
    let seen = (adj(&agent)?, adj(&shim)?, adj(&init)?);
    if seen != ("-999".into(), "-998".into(), "0".into()) {
        return Err(format!("oom_score_adj agent, shim, container: {seen:?}"));
    }
    say(
        "container-reboot",
        &format!("oom_score_adj agent, shim, container: {seen:?}"),
    );
    Ok(())
}

/// The container's status from `huskctl inspect`.
pub(crate) fn status(name: &str) -> Result<String, String> {
    let json = huskctl(&["inspect", name])?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("inspect {name}: {e}"))?;
    info["status"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("inspect {name}: no status in {json}"))
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) -> Outcome {
    let deadline = Instant::now() + COMEBACK_DEADLINE;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Runs huskctl; its stdout, or why it failed.
pub(crate) fn huskctl(args: &[&str]) -> Result<String, String> {
    let out = run_huskctl(args)?;
    if !out.status.success() {
        return Err(format!(
            "huskctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
