//! `container-limits`, continued: runc's commands that act on a running
//! container's cgroup (`update`, `events --stats`, `pause`/`resume`)
//! against the product kernel's cgroup v2 controllers, which the CI
//! host's hybrid cgroups do not have. Each change is read back from the
//! cgroup's own files, not from the runtime's answer.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::containers::write_bundle;
use super::{Outcome, say};

const AGENT: &str = husk_common::paths::AGENT_BIN;
const ID: &str = "update";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `husk-agent oci --root STATE ARGS…` with `stdin` written to it. The
/// output goes through files: a container started with `run --detach`
/// keeps the caller's stdio (runc's passthrough), so a pipe would not
/// see its end while the container runs.
fn oci(state: &Path, args: &[&str], stdin: &str) -> Result<Out, String> {
    let file = |name: &str| {
        let path = state.with_file_name(name);
        fs::File::create(&path)
            .map(|f| (path.clone(), f))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let (out_path, out) = file("oci.stdout")?;
    let (err_path, err) = file("oci.stderr")?;
    let mut child = Command::new(AGENT)
        .arg("oci")
        .arg("--root")
        .arg(state)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {AGENT} oci {args:?}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(|e| format!("oci {args:?}: writing stdin: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("oci {args:?}: {e}"))?;
    let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
    Ok(Out {
        code: status.code(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

fn ok(state: &Path, args: &[&str], stdin: &str) -> Result<String, String> {
    let out = oci(state, args, stdin)?;
    if out.code != Some(0) {
        return Err(format!("oci {args:?}: exit {:?}: {}", out.code, out.stderr));
    }
    Ok(out.stdout)
}

/// The cgroup directory of `pid`, from /proc/PID/cgroup (`0::/path`).
fn cgroup_of(pid: i64) -> Result<PathBuf, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("/proc/{pid}/cgroup: {e}"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| format!("no cgroup v2 line in /proc/{pid}/cgroup: {text}"))?;
    Ok(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
}

fn read(dir: &Path, file: &str) -> Result<String, String> {
    fs::read_to_string(dir.join(file))
        .map(|t| t.trim().to_owned())
        .map_err(|e| format!("{}/{file}: {e}", dir.display()))
}

fn expect(dir: &Path, file: &str, want: &str, after: &str) -> Outcome {
    let got = read(dir, file)?;
    if got != want {
        return Err(format!("after {after}: {file} is {got}, not {want}"));
    }
    Ok(())
}

fn status(state: &Path) -> Result<String, String> {
    let text = ok(state, &["state", ID], "")?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("state: {e}: {text}"))?;
    Ok(v["status"].as_str().unwrap_or_default().to_owned())
}

pub fn run(rootfs: &Path, work: &Path) -> Outcome {
    let state = work.join("state");
    let bundle = write_bundle(rootfs, ID, "sleep 1000", |_| {})?;
    let bundle = bundle.to_string_lossy().into_owned();
    ok(&state, &["run", "--detach", "--bundle", &bundle, ID], "")?;
    let result = checks(&state);
    let _ = oci(&state, &["delete", "--force", ID], "");
    result?;
    oom_event(rootfs, &state)
}

/// `events` streams stats until the container stops, and says `oom`
/// when the kernel's OOM killer ends it (memory.events' oom_kill).
fn oom_event(rootfs: &Path, state: &Path) -> Outcome {
    const OOM_ID: &str = "oom-events";
    let script = "sleep 1; x=$(head -c 25165824 /dev/zero | tr '\\0' a); echo survived";
    let bundle = write_bundle(rootfs, OOM_ID, script, |o| o.memory = Some(8 << 20))?;
    let bundle = bundle.to_string_lossy().into_owned();
    ok(state, &["run", "--detach", "--bundle", &bundle, OOM_ID], "")?;
    // Ends by itself when the container stops; the deadline is the
    // check's, not the command's.
    let events = oci(state, &["events", "--interval", "200ms", OOM_ID], "");
    let _ = oci(state, &["delete", "--force", OOM_ID], "");
    let events = events?;
    let lines: Vec<Value> = events
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stats = lines.iter().filter(|e| e["type"] == "stats").count();
    let oom = lines
        .iter()
        .any(|e| e["type"] == "oom" && e["id"] == OOM_ID);
    if events.code != Some(0) || stats == 0 || !oom {
        return Err(format!(
            "events: exit {:?}, {stats} stats events, oom {oom}: {} {}",
            events.code, events.stdout, events.stderr
        ));
    }
    say(
        "container-limits",
        &format!("events: {stats} stats events, then oom, and the stream ended with the container"),
    );
    Ok(())
}

fn checks(state: &Path) -> Outcome {
    let text = ok(state, &["state", ID], "")?;
    let pid = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["pid"].as_i64())
        .ok_or_else(|| format!("no pid in the state: {text}"))?;
    let dir = cgroup_of(pid)?;

    ok(
        state,
        &["update", "--memory", "33554432", "--pids-limit", "9", ID],
        "",
    )?;
    expect(&dir, "memory.max", "33554432", "update --memory")?;
    expect(&dir, "pids.max", "9", "update --pids-limit")?;
    // The form containerd's shim uses: linux.resources on stdin.
    let resources = r#"{"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000}}"#;
    ok(state, &["update", "--resources", "-", ID], resources)?;
    expect(&dir, "memory.max", "67108864", "update --resources -")?;
    expect(&dir, "cpu.max", "50000 100000", "update --resources -")?;
    say(
        "container-limits",
        "update: memory.max, pids.max and cpu.max changed on a running container",
    );

    let text = ok(state, &["events", "--stats", ID], "")?;
    let event: Value =
        serde_json::from_str(&text).map_err(|e| format!("events --stats: {e}: {text}"))?;
    let data = &event["data"];
    let current = read(&dir, "memory.current")?;
    let checks = [
        (event["type"] == "stats", "type stats"),
        (
            data["memory"]["usage"]["limit"] == 67_108_864,
            "memory limit 64 MiB",
        ),
        (
            data["memory"]["usage"]["usage"]
                .as_u64()
                .is_some_and(|u| u > 0),
            "memory usage above 0",
        ),
        (
            data["pids"]["current"].as_u64().is_some_and(|n| n >= 1),
            "at least one pid",
        ),
        (data["pids"]["limit"] == 9, "pids limit 9"),
    ];
    for (holds, what) in checks {
        if !holds {
            return Err(format!(
                "events --stats: not {what} (memory.current {current}): {text}"
            ));
        }
    }
    say(
        "container-limits",
        "events --stats: the cgroup's counters and limits",
    );

    ok(state, &["pause", ID], "")?;
    let paused = status(state)?;
    expect(&dir, "cgroup.freeze", "1", "pause")?;
    let proc_state = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or_default()
        .to_owned();
    // A program the rootfs has: only the pause can refuse it.
    let exec = oci(state, &["exec", ID, "echo", "ran"], "")?;
    ok(state, &["resume", ID], "")?;
    let resumed = status(state)?;
    if paused != "paused" || resumed != "running" || exec.code == Some(0) {
        return Err(format!(
            "pause/resume: status {paused} then {resumed}, exec while paused exit {:?}",
            exec.code
        ));
    }
    expect(&dir, "cgroup.freeze", "0", "resume")?;
    // The same exec once resumed: the pause was what refused it.
    let after = ok(state, &["exec", ID, "echo", "ran"], "")?;
    if after.trim() != "ran" {
        return Err(format!("exec after resume printed {after:?}"));
    }
    say(
        "container-limits",
        &format!("pause: frozen ({proc_state}), exec refused; resume: running, exec runs"),
    );
    Ok(())
}
