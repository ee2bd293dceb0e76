//! The six OCI hooks (config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle"): each hook here appends its name to an order file and
//! keeps what it read on stdin, its namespaces, environment and argv, in
//! a directory of the rootfs, so the one in the container (startContainer)
//! writes where the host's do. The same bundle goes through crun; where
//! crun differs the difference is printed, where Husk breaks the spec the
//! test fails.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bundle;
use crate::harness::{Cleanup, call, enter, err, oci, text};

const PHASES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Where the hooks write, as the host sees it (`<rootfs>/hooks`; in the
/// container `/hooks`).
fn log_dir(b: &Path) -> PathBuf {
    b.join("rootfs/hooks")
}

/// What one hook writes: its name in `order`, then `NAME.json` (stdin),
/// `NAME.mnt` and `NAME.pidns` (its namespaces), `NAME.env` and
/// `NAME.argv` (its /proc environ and cmdline, one entry a line). The
/// shell's own, through /proc/self in a redirection (opened by its fork,
/// which has its memory): createContainer runs in the container's PID
/// namespace with the host's /proc still mounted, where `$$` is not it.
fn record_script(name: &str, dir: &str) -> String {
    format!(
        "echo {name} >> {dir}/order; cat > {dir}/{name}.json; \
         readlink /proc/self/ns/mnt > {dir}/{name}.mnt; \
         readlink /proc/self/ns/pid > {dir}/{name}.pidns; \
         tr '\\0' '\\n' < /proc/self/environ > {dir}/{name}.env; \
         tr '\\0' '\\n' < /proc/self/cmdline > {dir}/{name}.argv"
    )
}

/// A hook run by the host's /bin/sh, with its own argv[0] and env.
fn host_hook(name: &str, script: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": [format!("hook-{name}"), "-c", script],
        "env": ["PATH=/usr/bin:/bin", format!("HOOK_ONLY={name}")],
    })
}

/// A recording hook for every phase; startContainer's is a script that
/// exists only in the rootfs (`/hookbin/start`).
fn recording_hooks(b: &Path) -> Value {
    let dir = log_dir(b);
    fs::create_dir_all(&dir).unwrap();
    let hookbin = b.join("rootfs/hookbin");
    fs::create_dir_all(&hookbin).unwrap();
    let start = hookbin.join("start");
    fs::write(
        &start,
        format!("#!/bin/sh\n{}\n", record_script("startContainer", "/hooks")),
    )
    .unwrap();
    fs::set_permissions(&start, fs::Permissions::from_mode(0o755)).unwrap();
    let host = |name: &str| host_hook(name, &record_script(name, dir.to_str().unwrap()));
    json!({
        "prestart": [host("prestart")],
        "createRuntime": [host("createRuntime")],
        "createContainer": [host("createContainer")],
        "startContainer": [{
            "path": "/hookbin/start",
            "args": ["start-arg0", "start-arg1"],
            "env": ["PATH=/usr/bin:/bin", "HOOK_ONLY=startContainer"],
        }],
        "poststart": [host("poststart")],
        "poststop": [host("poststop")],
    })
}

/// What the hooks recorded, by phase, in the order they ran.
#[derive(Debug)]
struct Seen {
    phase: String,
    state: Value,
    mnt: String,
    pidns: String,
    env: Vec<String>,
    argv: Vec<String>,
}

fn read_seen(b: &Path) -> Vec<Seen> {
    let dir = log_dir(b);
    let read = |name: &str, what: &str| {
        fs::read_to_string(dir.join(format!("{name}.{what}"))).unwrap_or_default()
    };
    fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(|phase| Seen {
            phase: phase.to_string(),
            state: serde_json::from_str(&read(phase, "json")).unwrap_or_else(|e| {
                panic!("{phase}: state on stdin: {e}: {}", read(phase, "json"))
            }),
            mnt: read(phase, "mnt").trim().to_string(),
            pidns: read(phase, "pidns").trim().to_string(),
            env: read(phase, "env").lines().map(String::from).collect(),
            argv: read(phase, "argv").lines().map(String::from).collect(),
        })
        .collect()
}

fn clear_log(b: &Path) {
    let dir = log_dir(b);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
}

fn ns(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn wait_stopped(runtime: &str, state: &Path, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = call(runtime, state, &["state", id]);
        let s: Value = serde_json::from_str(&text(&out)).unwrap_or(Value::Null);
        if s["status"] == "stopped" {
            return;
        }
        assert!(Instant::now() < deadline, "{runtime}: {id} never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything one lifecycle (create, start, kill, delete) shows of the
/// hooks under `runtime`, with the container's pid and namespaces.
struct Lifecycle {
    seen: Vec<Seen>,
    after_create: Vec<String>,
    pid: i64,
    mnt: String,
    pidns: String,
}

fn lifecycle(runtime: &'static str, dir: &Path, b: &Path, id: &str) -> Lifecycle {
    clear_log(b);
    let state = dir.join(runtime);
    let _cleanup = Cleanup::new(runtime, &state, id);
    let bs = b.to_str().unwrap();
    let out = call(runtime, &state, &["create", "--bundle", bs, id]);
    assert!(out.status.success(), "{runtime} create: {}", err(&out));
    let after_create = read_seen(b).into_iter().map(|s| s.phase).collect();
    let s: Value = serde_json::from_str(&text(&call(runtime, &state, &["state", id]))).unwrap();
    assert_eq!(s["status"], "created", "{runtime}");
    let pid = s["pid"].as_i64().unwrap();
    let (mnt, pidns) = (ns(&pid.to_string(), "mnt"), ns(&pid.to_string(), "pid"));
    let out = call(runtime, &state, &["start", id]);
    assert!(out.status.success(), "{runtime} start: {}", err(&out));
    // startContainer runs in the init, after `start` released it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(log_dir(b).join("order"))
        .unwrap_or_default()
        .contains("startContainer")
    {
        assert!(
            Instant::now() < deadline,
            "{runtime}: startContainer never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = call(runtime, &state, &["kill", id, "KILL"]);
    assert!(out.status.success(), "{runtime} kill: {}", err(&out));
    wait_stopped(runtime, &state, id);
    let out = call(runtime, &state, &["delete", id]);
    assert!(out.status.success(), "{runtime} delete: {}", err(&out));
    Lifecycle {
        seen: read_seen(b),
        after_create,
        pid,
        mnt,
        pidns,
    }
}

/// A one-line summary per hook, for the comparison with crun.
fn table(l: &Lifecycle) -> Vec<String> {
    let own_mnt = ns("self", "mnt");
    l.seen
        .iter()
        .map(|s| {
            let ns = if s.mnt == l.mnt {
                "container"
            } else if s.mnt == own_mnt {
                "runtime"
            } else {
                "other"
            };
            format!(
                "{:16} status={:8} pid={:5} mnt={ns}",
                s.phase,
                s.state["status"].as_str().unwrap_or("?"),
                match s.state["pid"].as_i64() {
                    Some(p) if p == l.pid => "init".to_string(),
                    Some(p) => p.to_string(),
                    None => "-".to_string(),
                },
            )
        })
        .collect()
}

#[test]
fn the_six_hooks_run_in_order_with_the_state() {
    if !enter("hooks::the_six_hooks_run_in_order_with_the_state") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let mut config = bundle::config(&["sleep", "1000"]);
    config["hooks"] = recording_hooks(&b);
    config["annotations"] = json!({"org.example.hooks": "seen"});
    bundle::write_config(&b, &config);
    let husk = lifecycle("husk", dir.path(), &b, "hk-order");
    let l = &husk;
    for row in table(l) {
        println!("husk  {row}");
    }
    let order: Vec<&str> = l.seen.iter().map(|s| s.phase.as_str()).collect();
    assert_eq!(order, PHASES, "the spec's order");
    assert_eq!(
        l.after_create,
        ["prestart", "createRuntime", "createContainer"],
        "run by create"
    );
    let own_mnt = ns("self", "mnt");
    let own_pidns = ns("self", "pid");
    assert_ne!(l.mnt, own_mnt, "the container has a mount namespace");
    let by_phase: BTreeMap<&str, &Seen> = l.seen.iter().map(|s| (s.phase.as_str(), s)).collect();
    let bundle_dir = b.to_str().unwrap();
    for (phase, status, mnt, pidns) in [
        // "created" once the environment exists (runtime.md's step 2),
        // as crun reports and runtime-tools' hook tests expect.
        ("prestart", "created", &own_mnt, &own_pidns),
        ("createRuntime", "created", &own_mnt, &own_pidns),
        ("createContainer", "created", &l.mnt, &l.pidns),
        ("startContainer", "created", &l.mnt, &l.pidns),
        ("poststart", "running", &own_mnt, &own_pidns),
        ("poststop", "stopped", &own_mnt, &own_pidns),
    ] {
        let s = by_phase[phase];
        assert_eq!(s.state["status"], status, "{phase}: {}", s.state);
        assert_eq!(s.state["id"], "hk-order", "{phase}");
        assert_eq!(s.state["bundle"], bundle_dir, "{phase}");
        assert_eq!(s.state["ociVersion"], "1.0.2", "{phase}");
        assert_eq!(
            s.state["annotations"]["org.example.hooks"], "seen",
            "{phase}: {}",
            s.state
        );
        if phase != "poststop" {
            // The pid as the host sees it (runtime.md's state), also in
            // startContainer, which runs in the container's PID namespace.
            assert_eq!(s.state["pid"].as_i64(), Some(l.pid), "{phase}: {}", s.state);
        } else if let Some(pid) = s.state["pid"].as_i64() {
            assert_eq!(pid, l.pid, "poststop");
        }
        assert_eq!(&s.mnt, mnt, "{phase}: mount namespace");
        assert_eq!(&s.pidns, pidns, "{phase}: PID namespace");
        // Only the hook's env, nothing of the runtime's (in any order:
        // environ's semantics).
        let mut env = s.env.clone();
        env.sort();
        assert_eq!(
            env,
            [
                format!("HOOK_ONLY={phase}"),
                "PATH=/usr/bin:/bin".to_string()
            ],
            "{phase}: environment"
        );
        if phase == "startContainer" {
            // Run from the rootfs by its #! line: /bin/sh SCRIPT ARGS[1..].
            assert_eq!(
                s.argv,
                ["/bin/sh", "/hookbin/start", "start-arg1"],
                "{phase}: argv"
            );
        } else {
            assert_eq!(
                s.argv[0],
                format!("hook-{phase}"),
                "{phase}: args[0] is argv[0]"
            );
            assert_eq!(s.argv[1], "-c", "{phase}");
        }
    }
    assert!(
        !Path::new("/hookbin/start").exists(),
        "the startContainer script must exist only in the rootfs"
    );

    let crun = lifecycle("crun", dir.path(), &b, "hk-order-crun");
    let (ours, theirs) = (table(&husk), table(&crun));
    for row in &theirs {
        println!("crun  {row}");
    }
    for (a, b) in ours.iter().zip(&theirs) {
        if a != b {
            println!("differs from crun: husk `{a}`, crun `{b}`");
        }
    }
    let crun_order: Vec<&str> = crun.seen.iter().map(|s| s.phase.as_str()).collect();
    if crun_order != order {
        println!("crun's order: {crun_order:?}");
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    for s in &crun.seen {
        let ours = &by_phase[s.phase.as_str()];
        if sorted(&s.env) != sorted(&ours.env) || s.argv.first() != ours.argv.first() {
            println!(
                "crun {}: env {:?} argv[0] {:?} (husk: {:?} {:?})",
                s.phase,
                s.env,
                s.argv.first(),
                ours.env,
                ours.argv.first()
            );
        }
    }
}

/// runtime.md: poststart hooks are called "after the user-specified
/// process is executed but before the start operation returns", and
/// startContainer ones before it is executed: with a slow startContainer
/// hook, poststart must still come after it, and find the container's
/// program (not the runtime) at the init's pid.
#[test]
fn poststart_runs_after_the_process_is_executed() {
    if !enter("hooks::poststart_runs_after_the_process_is_executed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let mut config = bundle::config(&["sleep", "1000"]);
    let log = log_dir(&b);
    fs::create_dir_all(&log).unwrap();
    let ls = log.to_str().unwrap();
    config["hooks"] = json!({
        "startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "sleep 1; echo startContainer >> /hooks/order"],
        }],
        "poststart": [host_hook("poststart", &format!(
            "echo poststart >> {ls}/order; \
             pid=$(grep -o '\"pid\": *[0-9]*' | grep -o '[0-9]*$'); \
             tr '\\0' ' ' < /proc/$pid/cmdline > {ls}/poststart.cmdline"
        ))],
    });
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    let mut results = Vec::new();
    for runtime in ["husk", "crun", "runc"] {
        clear_log(&b);
        let state = dir.path().join(runtime);
        let id = format!("hk-poststart-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let out = call(runtime, &state, &["create", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let out = call(runtime, &state, &["start", &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let order = fs::read_to_string(log.join("order")).unwrap_or_default();
        let cmdline = fs::read_to_string(log.join("poststart.cmdline")).unwrap_or_default();
        println!("{runtime}: when start returned: order {order:?}, poststart saw {cmdline:?}");
        results.push((runtime, order, cmdline));
    }
    let (_, order, cmdline) = &results[0];
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        ["startContainer", "poststart"],
        "husk: poststart before startContainer had run"
    );
    assert_eq!(
        cmdline.trim(),
        "sleep 1000",
        "husk: poststart ran before the process was executed"
    );
}

/// A hook failing in `create` (run by the runtime, or by the init in the
/// container): `create` fails with the hook's output in its message,
/// leaves no state and no cgroup, and the poststop hooks run (runtime.md
/// lifecycle step 12).
#[test]
fn a_failing_create_time_hook_fails_create_and_runs_poststop() {
    if !enter("hooks::a_failing_create_time_hook_fails_create_and_runs_poststop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let log = log_dir(&b);
    let ls = log.to_str().unwrap().to_string();
    let bs = b.to_str().unwrap();
    let mut failures = Vec::new();
    for phase in ["prestart", "createRuntime", "createContainer"] {
        let mut config = bundle::config(&["sleep", "1000"]);
        config["hooks"] = json!({
            phase: [host_hook(phase, &format!("echo {phase}-broke >&2; exit 1"))],
            "poststop": [host_hook("poststop", &record_script("poststop", &ls))],
        });
        bundle::write_config(&b, &config);
        for runtime in ["husk", "crun"] {
            clear_log(&b);
            let state = dir.path().join(runtime);
            let id = format!("hk-fail-{phase}-{runtime}");
            let _cleanup = Cleanup::new(runtime, &state, &id);
            let out = call(runtime, &state, &["create", "--bundle", bs, &id]);
            let seen = read_seen(&b);
            let poststop = seen.iter().find(|s| s.phase == "poststop");
            println!(
                "{runtime} {phase}: {} {:?}; poststop ran: {}",
                out.status,
                err(&out).trim(),
                poststop.is_some()
            );
            if runtime != "husk" {
                continue;
            }
            assert!(!out.status.success(), "{phase}: create succeeded");
            let e = err(&out);
            assert!(
                e.contains(phase) && e.contains(&format!("{phase}-broke")),
                "{phase}: {e}"
            );
            assert!(!state.join(&id).exists(), "{phase}: state left behind");
            assert!(
                !Path::new("/sys/fs/cgroup/husk").join(&id).exists(),
                "{phase}: cgroup left behind"
            );
            let gone = oci(&state, &["state", &id]);
            assert!(!gone.status.success(), "{phase}: state still answers");
            match poststop {
                Some(s) => assert_eq!(s.state["status"], "stopped", "{phase}: {}", s.state),
                None => failures.push(format!("{phase}: poststop did not run")),
            }
        }
    }
    assert!(failures.is_empty(), "husk: {failures:?}");
}

/// A hook past its timeout is killed and fails create quickly, whether
/// the runtime (createRuntime) or the init (createContainer) runs it.
#[test]
fn a_hook_past_its_timeout_fails_create() {
    if !enter("hooks::a_hook_past_its_timeout_fails_create") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let bs = b.to_str().unwrap();
    for phase in ["createRuntime", "createContainer"] {
        let mut config = bundle::config(&["sleep", "1000"]);
        config["hooks"] = json!({
            phase: [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}],
        });
        bundle::write_config(&b, &config);
        for runtime in ["husk", "crun"] {
            let state = dir.path().join(runtime);
            let id = format!("hk-timeout-{phase}-{runtime}");
            let _cleanup = Cleanup::new(runtime, &state, &id);
            let started = Instant::now();
            let out = call(runtime, &state, &["create", "--bundle", bs, &id]);
            let took = started.elapsed();
            println!(
                "{runtime} {phase}: {} after {took:?}: {}",
                out.status,
                err(&out).trim()
            );
            if runtime != "husk" {
                continue;
            }
            assert!(!out.status.success(), "{phase}: create succeeded");
            assert!(took < Duration::from_secs(6), "{phase}: took {took:?}");
            assert!(took >= Duration::from_secs(1), "{phase}: took {took:?}");
            assert!(
                err(&out).contains(phase) && err(&out).contains("timed out"),
                "{phase}: {}",
                err(&out)
            );
            assert!(!state.join(&id).exists(), "{phase}: state left behind");
            assert!(
                !Path::new("/sys/fs/cgroup/husk").join(&id).exists(),
                "{phase}: cgroup left behind"
            );
        }
    }
}

/// startContainer fails in the init, after `start`: the program is never
/// executed, the container stops, and `run` says why and fails.
#[test]
fn a_failing_start_container_hook_stops_the_container() {
    if !enter("hooks::a_failing_start_container_hook_stops_the_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sh", "-c", "echo program-ran"]);
    let log = log_dir(&b);
    fs::create_dir_all(&log).unwrap();
    let mut config = bundle::config(&["sh", "-c", "echo program-ran"]);
    config["hooks"] = json!({
        "startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "echo start-broke >&2; exit 1"],
        }],
        "poststop": [host_hook("poststop", &record_script("poststop", log.to_str().unwrap()))],
    });
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    for runtime in ["husk", "crun"] {
        clear_log(&b);
        let state = dir.path().join(runtime);
        let id = format!("hk-startfail-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let out = call(runtime, &state, &["run", "--bundle", bs, &id]);
        let poststop = read_seen(&b).into_iter().any(|s| s.phase == "poststop");
        println!(
            "{runtime}: {} stdout {:?} stderr {:?} poststop ran: {poststop}",
            out.status,
            text(&out),
            err(&out)
        );
        if runtime != "husk" {
            continue;
        }
        assert!(!out.status.success(), "run succeeded");
        assert!(!text(&out).contains("program-ran"), "the program ran");
        assert!(err(&out).contains("start-broke"), "{}", err(&out));
        assert!(poststop, "poststop did not run");
        assert!(!state.join(&id).exists());
    }
}

/// poststart and poststop failures are warnings: start and delete
/// succeed, the container runs.
#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    if !enter("hooks::failing_poststart_and_poststop_hooks_only_warn") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let mut config = bundle::config(&["sleep", "1000"]);
    config["hooks"] = json!({
        "poststart": [host_hook("poststart", "echo poststart-broke >&2; exit 1")],
        "poststop": [host_hook("poststop", "echo poststop-broke >&2; exit 1")],
    });
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    for runtime in ["husk", "crun"] {
        let state = dir.path().join(runtime);
        let id = format!("hk-warn-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let out = call(runtime, &state, &["create", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let start = call(runtime, &state, &["start", &id]);
        let s: Value =
            serde_json::from_str(&text(&call(runtime, &state, &["state", &id]))).unwrap();
        let delete = call(runtime, &state, &["delete", "--force", &id]);
        println!(
            "{runtime}: start {} {:?}; status then {}; delete {} {:?}",
            start.status,
            err(&start).trim(),
            s["status"],
            delete.status,
            err(&delete).trim()
        );
        if runtime != "husk" {
            continue;
        }
        assert!(start.status.success(), "start failed: {}", err(&start));
        assert!(
            err(&start).contains("warning") && err(&start).contains("poststart-broke"),
            "{}",
            err(&start)
        );
        assert_eq!(s["status"], "running");
        assert!(delete.status.success(), "delete failed: {}", err(&delete));
        assert!(
            err(&delete).contains("warning") && err(&delete).contains("poststop-broke"),
            "{}",
            err(&delete)
        );
        assert!(!state.join(&id).exists());
    }
}

/// `start` itself fails when the init fails after it (a startContainer
/// hook, or an execve of a program removed since `create`), with the
/// reason, and the container is stopped.
#[test]
fn start_reports_what_failed_after_it() {
    if !enter("hooks::start_reports_what_failed_after_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let b = bundle::make(&dir.path().join("hook"), &["sh", "-c", "echo program-ran"]);
    let mut config = bundle::config(&["sh", "-c", "echo program-ran"]);
    config["hooks"] = json!({"startContainer": [{
        "path": "/bin/sh", "args": ["sh", "-c", "echo start-broke >&2; exit 1"],
    }]});
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    assert!(
        oci(&root, &["create", "--bundle", bs, "h"])
            .status
            .success()
    );
    let _cleanup = Cleanup::new("husk", &root, "h");
    let start = oci(&root, &["start", "h"]);
    assert!(!start.status.success(), "start succeeded");
    assert!(err(&start).contains("start-broke"), "{}", err(&start));
    let state = text(&oci(&root, &["state", "h"]));
    assert!(state.contains("stopped"), "{state}");

    // The program is there at create and gone at start.
    let b = bundle::make(&dir.path().join("gone"), &["/bin/gone"]);
    std::fs::copy("/bin/busybox", b.join("rootfs/bin/gone")).unwrap();
    let bs = b.to_str().unwrap();
    assert!(
        oci(&root, &["create", "--bundle", bs, "g"])
            .status
            .success()
    );
    let _cleanup = Cleanup::new("husk", &root, "g");
    std::fs::remove_file(b.join("rootfs/bin/gone")).unwrap();
    let start = oci(&root, &["start", "g"]);
    assert!(!start.status.success(), "start succeeded");
    assert!(err(&start).contains("exec /bin/gone"), "{}", err(&start));
}
