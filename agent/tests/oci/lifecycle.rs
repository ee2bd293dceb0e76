//! The rest of runc's command line around a container's life: `run
//! --detach`, `ps`, `pause`/`resume`, `list`, `exec` and its flags,
//! `kill --all`, `delete --force`, `features`, `spec` (`--no-pivot`, the
//! session keyring and `linux.sysctl` have files of their own). Where a peer does the same (runc
//! here: crun without cgroups cannot pause or ps) it runs the same bundle.
//! Cgroup limits and `update` of them are QEMU's (this host's cgroup2 has
//! only the hugetlb controller).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bundle;
use crate::harness::{self, Cleanup, call, enter, err, oci, text};

pub fn state(runtime: &str, root: &Path, id: &str) -> Value {
    let out = call(runtime, root, &["state", id]);
    serde_json::from_str(&text(&out))
        .unwrap_or_else(|e| panic!("{runtime} state {id}: {e}: {}{}", text(&out), err(&out)))
}

/// Alive and not a zombie (a detached exec's process is reaped by the
/// container's init, which `sleep` never does).
fn alive(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
        !matches!(state, Some('Z' | 'X'))
    })
}

/// Waits up to 10 s for `done` (the agent tests' `eventually`, 20 ms
/// apart).
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `exec --detach --pid-file F ID ARGS…`: the process's host pid.
fn exec_detached(runtime: &str, root: &Path, id: &str, args: &[&str]) -> i64 {
    let pid_file = root.with_extension(format!("exec-{}.pid", args.join("-")));
    let _ = fs::remove_file(&pid_file);
    let mut all = vec![
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        id,
    ];
    all.extend_from_slice(args);
    let out = call(runtime, root, &all);
    assert!(out.status.success(), "{runtime} exec: {}", err(&out));
    fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A container whose init counts: `<rootfs>/tick` changes every 50 ms
/// while it runs.
const TICKER: &[&str] = &[
    "sh",
    "-c",
    "i=0; while :; do i=$((i+1)); echo $i > /tick; sleep 0.05; done",
];

fn ticks(b: &Path) -> String {
    fs::read_to_string(b.join("rootfs/tick")).unwrap_or_default()
}

/// Whether the ticker moves within 400 ms (it ticks every 50 ms).
fn advancing(b: &Path) -> bool {
    let before = ticks(b);
    std::thread::sleep(Duration::from_millis(400));
    ticks(b) != before
}

/// Whether the ticker moves within 5 s: a thawed shell's next fork and
/// exec can take longer than 400 ms on a loaded machine (a full run saw
/// it after a resume).
fn advances_soon(b: &Path) -> bool {
    let before = ticks(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if ticks(b) != before {
            return true;
        }
    }
    false
}

#[test]
fn detached_run_ps_pause_and_resume() {
    if !enter("lifecycle::detached_run_ps_pause_and_resume") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), TICKER);
    let bs = b.to_str().unwrap();
    let mut observed = Vec::new();
    for runtime in ["husk", "runc"] {
        let root = dir.path().join(runtime);
        let id = format!("lc-pause-{runtime}");
        let _cleanup = Cleanup::new(runtime, &root, &id);
        let started = Instant::now();
        let out = call(runtime, &root, &["run", "--detach", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "run --detach waited"
        );
        let s = state(runtime, &root, &id);
        assert_eq!(s["status"], "running", "{runtime}");
        let init = s["pid"].as_i64().unwrap();
        let sleeper = exec_detached(runtime, &root, &id, &["sleep", "300"]);
        let out = call(runtime, &root, &["ps", "--format", "json", &id]);
        assert!(out.status.success(), "{runtime} ps: {}", err(&out));
        let pids: Vec<i64> = serde_json::from_str(&text(&out)).unwrap();
        assert!(pids.contains(&init), "{runtime}: ps {pids:?} lacks {init}");
        assert!(
            pids.contains(&sleeper),
            "{runtime}: ps {pids:?} lacks {sleeper}"
        );
        if runtime == "husk" {
            let table = text(&oci(&root, &["ps", &id]));
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with(&sleeper.to_string()) && l.contains("sleep 300")),
                "{table}"
            );
            let out = oci(&root, &["events", "--stats", &id]);
            assert!(out.status.success(), "events --stats: {}", err(&out));
            let event: Value = serde_json::from_str(&text(&out)).unwrap();
            assert_eq!(
                (&event["type"], &event["id"]),
                (&json!("stats"), &json!(id))
            );
        }
        assert!(advances_soon(&b), "{runtime}: the ticker does not tick");

        let out = call(runtime, &root, &["pause", &id]);
        assert!(out.status.success(), "{runtime} pause: {}", err(&out));
        let paused = state(runtime, &root, &id)["status"].clone();
        let proc_states: Vec<String> = [init, sleeper]
            .iter()
            .map(|pid| {
                fs::read_to_string(format!("/proc/{pid}/status"))
                    .unwrap()
                    .lines()
                    .find(|l| l.starts_with("State:"))
                    .unwrap()
                    .to_string()
            })
            .collect();
        let frozen_ticks = !advancing(&b);
        let exec = call(runtime, &root, &["exec", &id, "true"]);
        let again = call(runtime, &root, &["pause", &id]);
        println!(
            "{runtime}: paused: state {paused}, processes {proc_states:?}, ticker stopped {frozen_ticks}, \
             exec {} {:?}, pause again {} {:?}",
            exec.status,
            err(&exec).trim(),
            again.status,
            err(&again).trim()
        );
        assert_eq!(paused, "paused", "{runtime}");
        assert!(frozen_ticks, "{runtime}: the ticker ticks while paused");
        assert!(
            !exec.status.success(),
            "{runtime}: exec into a paused container"
        );
        assert!(!again.status.success(), "{runtime}: paused twice");
        if runtime == "husk" {
            assert!(err(&exec).contains("paused"), "{}", err(&exec));
            let events =
                fs::read_to_string(format!("/sys/fs/cgroup/husk/{id}/cgroup.events")).unwrap();
            assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
        }
        observed.push((runtime, paused, frozen_ticks));

        let out = call(runtime, &root, &["resume", &id]);
        assert!(out.status.success(), "{runtime} resume: {}", err(&out));
        assert_eq!(state(runtime, &root, &id)["status"], "running", "{runtime}");
        assert!(advances_soon(&b), "{runtime}: the ticker stays stopped");
        let again = call(runtime, &root, &["resume", &id]);
        assert!(
            !again.status.success(),
            "{runtime}: resumed a running container"
        );
        let out = call(runtime, &root, &["exec", &id, "true"]);
        assert!(
            out.status.success(),
            "{runtime}: exec after resume: {}",
            err(&out)
        );
        // delete --force takes every process with it.
        let out = call(runtime, &root, &["delete", "--force", &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        assert!(!alive(init) && !alive(sleeper), "{runtime}: processes left");
        assert!(!call(runtime, &root, &["state", &id]).status.success());
        if runtime == "husk" {
            assert!(!root.join(&id).exists());
            assert!(!Path::new("/sys/fs/cgroup/husk").join(&id).exists());
        }
    }
    assert_eq!(
        observed[0].1, observed[1].1,
        "paused status differs from runc"
    );
}

#[test]
fn list_shows_every_container() {
    if !enter("lifecycle::list_shows_every_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let bs = b.to_str().unwrap();
    let root = dir.path().join("husk");
    let out = oci(&root, &["list", "--format", "json"]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        serde_json::from_str::<Value>(&text(&out)).unwrap(),
        json!([])
    );
    let _a = Cleanup::new("husk", &root, "lc-list-a");
    let _b = Cleanup::new("husk", &root, "lc-list-b");
    assert!(
        oci(&root, &["create", "--bundle", bs, "lc-list-a"])
            .status
            .success()
    );
    assert!(
        oci(&root, &["run", "--detach", "--bundle", bs, "lc-list-b"])
            .status
            .success()
    );
    let pid = |id: &str| state("husk", &root, id)["pid"].as_i64().unwrap();
    let out = oci(&root, &["list"]);
    let table = text(&out);
    println!("husk list:\n{table}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["lc-list-a", &pid("lc-list-a").to_string(), "created", bs],
            vec!["lc-list-b", &pid("lc-list-b").to_string(), "running", bs],
        ]
    );
    let json: Value =
        serde_json::from_str(&text(&oci(&root, &["list", "--format", "json"]))).unwrap();
    let summary: Vec<(&str, &str)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("lc-list-a", "created"), ("lc-list-b", "running")]
    );
    assert_eq!(json[1]["pid"].as_i64(), Some(pid("lc-list-b")));
    assert_eq!(json[1]["bundle"], bs);
    assert_eq!(
        text(&oci(&root, &["list", "--quiet"])),
        "lc-list-a\nlc-list-b\n"
    );
    // runc's, for the record.
    let runc = dir.path().join("runc");
    let _c = Cleanup::new("runc", &runc, "lc-list-c");
    let _ = harness::peer(
        "runc",
        &runc,
        &["run", "--detach", "--bundle", bs, "lc-list-c"],
    );
    println!(
        "runc list:\n{}runc list --format json: {}",
        text(&harness::peer("runc", &runc, &["list"])),
        text(&harness::peer("runc", &runc, &["list", "--format", "json"]))
    );
    let empty = harness::peer(
        "runc",
        &dir.path().join("runc-empty"),
        &["list", "-f", "json"],
    );
    println!("runc list --format json, no containers: {:?}", text(&empty));
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

#[test]
fn exec_flags_and_process_files() {
    if !enter("lifecycle::exec_flags_and_process_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let mut config = bundle::config(&["sleep", "1000"]);
    // Without it, --no-new-privs is what sets it.
    config["process"]["noNewPrivileges"] = false.into();
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    let process = dir.path().join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 1234, "gid": 1235, "additionalGids": [7]},
            "args": ["sh", "-c", "echo args=$0,$1; echo env=$MYVAR path=$PATH; pwd; id; \
                     grep -E '^(CapEff|NoNewPrivs):' /proc/self/status", "first", "second"],
            "env": ["MYVAR=fromfile", "PATH=/bin"],
            "cwd": "/tmp",
            "noNewPrivileges": true
        }))
        .unwrap(),
    )
    .unwrap();
    let ps = process.to_str().unwrap();
    let status = "grep -E '^(Cap...|NoNewPrivs):' /proc/self/status";
    let mut outputs: Vec<Vec<String>> = Vec::new();
    for runtime in ["husk", "runc"] {
        let root = dir.path().join(runtime);
        let id = format!("lc-exec-{runtime}");
        let _cleanup = Cleanup::new(runtime, &root, &id);
        let out = call(runtime, &root, &["run", "--detach", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let exec = |args: &[&str]| {
            let mut all = vec!["exec"];
            all.extend_from_slice(args);
            let out = call(runtime, &root, &all);
            if out.status.success() {
                text(&out)
            } else {
                format!("exec {args:?} failed: {}", err(&out))
            }
        };
        let runs = vec![
            exec(&["--process", ps, &id]),
            exec(&[&id, "sh", "-c", status]),
            exec(&["--cap", "CAP_SYS_ADMIN", &id, "sh", "-c", status]),
            exec(&["--no-new-privs", &id, "sh", "-c", status]),
            exec(&[
                "--user",
                "1000:1000",
                "--additional-gids",
                "10",
                "--additional-gids",
                "20",
                &id,
                "id",
            ]),
            exec(&["--additional-gids", "10", &id, "id"]),
        ];
        for (i, r) in runs.iter().enumerate() {
            println!("{runtime} exec #{i}:\n{r}");
        }
        outputs.push(runs);
    }
    // Every finding at once: one broken flag does not hide the others.
    let husk = &outputs[0];
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    let hex = |out: &str, key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let field = |out: &str, key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    // The file's process as given; without capabilities of its own it has
    // the container's, as under runc.
    check(
        husk[0]
            == format!(
                "args=first,second\nenv=fromfile path=/bin\n/tmp\nuid=1234 gid=1235 groups=7\n\
                 CapEff:\t{}\nNoNewPrivs:\t1\n",
                bundle::DOCKER_CAPS_HEX
            ),
        format!("exec --process: the file's process: {:?}", husk[0]),
    );
    let docker = u64::from_str_radix(bundle::DOCKER_CAPS_HEX, 16).unwrap();
    check(
        hex(&husk[1], "CapEff:") == Some(docker),
        format!("exec: the container's capabilities: {:?}", husk[1]),
    );
    check(
        field(&husk[1], "NoNewPrivs:").as_deref() == Some("0"),
        format!("exec: no_new_privs of the spec (false): {:?}", husk[1]),
    );
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        check(
            hex(&husk[2], set) == Some(docker | CAP_SYS_ADMIN),
            format!("exec --cap CAP_SYS_ADMIN: {set} {:?}", husk[2]),
        );
    }
    check(
        field(&husk[3], "NoNewPrivs:").as_deref() == Some("1")
            && hex(&husk[3], "CapEff:") == Some(docker),
        format!("exec --no-new-privs: {:?}", husk[3]),
    );
    check(
        husk[4].trim() == "uid=1000 gid=1000 groups=10,20",
        format!("exec --user --additional-gids: {:?}", husk[4]),
    );
    for (i, what) in [
        "--process",
        "no flags",
        "--cap",
        "--no-new-privs",
        "--user with --additional-gids",
        "--additional-gids alone",
    ]
    .iter()
    .enumerate()
    {
        if outputs[0][i] != outputs[1][i] {
            println!(
                "exec {what}: husk {:?}, runc {:?}",
                outputs[0][i], outputs[1][i]
            );
        }
    }
    // runc adds --additional-gids to the process's user also without
    // --user; dropping them silently would run it with fewer groups
    // than asked for.
    check(
        outputs[0][5] == outputs[1][5],
        format!(
            "exec --additional-gids without --user: husk {:?}, runc {:?}",
            outputs[0][5], outputs[1][5]
        ),
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn kill_all_signals_every_process() {
    if !enter("lifecycle::kill_all_signals_every_process") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let bs = b.to_str().unwrap();
    for runtime in ["husk", "runc"] {
        let root = dir.path().join(runtime);
        let id = format!("lc-killall-{runtime}");
        let _cleanup = Cleanup::new(runtime, &root, &id);
        let out = call(runtime, &root, &["run", "--detach", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let init = state(runtime, &root, &id)["pid"].as_i64().unwrap();
        let a = exec_detached(runtime, &root, &id, &["sleep", "301"]);
        let c = exec_detached(runtime, &root, &id, &["sleep", "302"]);
        // TERM to the init alone: the PID namespace's init has no handler,
        // so the kernel drops it; the others are not sent anything.
        let out = call(runtime, &root, &["kill", &id, "TERM"]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            alive(init) && alive(a) && alive(c),
            "{runtime}: kill without --all"
        );
        let out = call(runtime, &root, &["kill", "--all", &id, "TERM"]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        eventually(&format!("{runtime}: kill --all TERM"), || {
            !alive(a) && !alive(c)
        });
        assert!(
            alive(init),
            "{runtime}: the init took a TERM it has no handler for"
        );
        assert_eq!(state(runtime, &root, &id)["status"], "running");
        let out = call(runtime, &root, &["kill", "--all", &id, "KILL"]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        eventually(&format!("{runtime}: kill --all KILL"), || !alive(init));
        eventually(&format!("{runtime}: stopped"), || {
            state(runtime, &root, &id)["status"] == "stopped"
        });
        let out = call(runtime, &root, &["delete", &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
    }
}

#[test]
fn features_is_the_specs_json() {
    let out = oci(Path::new("/nonexistent"), &["features"]);
    assert!(out.status.success(), "{}", err(&out));
    let husk: Value = serde_json::from_str(&text(&out)).unwrap();
    let max = husk["ociVersionMax"].as_str().unwrap();
    assert!(max.starts_with("1."), "{max}");
    assert!(husk["ociVersionMin"].as_str().unwrap().starts_with("1."));
    let namespaces: Vec<&str> = husk["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(namespaces.contains(&ns), "{ns} in {namespaces:?}");
    }
    let hooks: Vec<&str> = husk["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(
        hooks,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    assert!(
        husk["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN"))
    );
    // runc's, for what it lists that Husk does not.
    harness::require("runc");
    let runc = harness::command(Path::new("runc"), &["features"]);
    let runc: Value = serde_json::from_str(&text(&runc)).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    println!(
        "keys: husk {:?} runc {:?}; linux: husk {:?} runc {:?}",
        keys(&husk),
        keys(&runc),
        keys(&husk["linux"]),
        keys(&runc["linux"])
    );
    for key in keys(&runc) {
        assert!(husk.get(&key).is_some(), "runc has {key}, husk not");
    }
    for ns in runc["linux"]["namespaces"].as_array().unwrap() {
        assert!(namespaces.contains(&ns.as_str().unwrap()), "{ns}");
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let (ours, theirs) = (list(&husk["mountOptions"]), list(&runc["mountOptions"]));
    println!(
        "mount options runc has, husk not: {:?}; husk has, runc not: {:?}",
        theirs
            .iter()
            .filter(|o| !ours.contains(o))
            .collect::<Vec<_>>(),
        ours.iter()
            .filter(|o| !theirs.contains(o))
            .collect::<Vec<_>>()
    );
}

#[test]
fn spec_writes_a_config_that_run_accepts() {
    if !enter("lifecycle::spec_writes_a_config_that_run_accepts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A bundle made for its rootfs; spec writes the config.
    let b = bundle::make(&dir.path().join("b"), &["true"]);
    fs::remove_file(b.join("config.json")).unwrap();
    let bs = b.to_str().unwrap();
    let out = oci(Path::new("/nonexistent"), &["spec", "--bundle", bs]);
    assert!(out.status.success(), "{}", err(&out));
    let again = oci(Path::new("/nonexistent"), &["spec", "--bundle", bs]);
    assert!(!again.status.success(), "spec overwrote config.json");
    let mut config: Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    config["process"]["args"] = json!(["sh", "-c", "echo spec-ok; id -u"]);
    config["process"]["terminal"] = false.into();
    bundle::write_config(&b, &config);
    let root = dir.path().join("husk");
    let out = oci(&root, &["run", "--bundle", bs, "lc-spec"]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(text(&out), "spec-ok\n0\n");
    // runc runs husk's spec too, and husk runc's.
    let out = harness::peer(
        "runc",
        &dir.path().join("runc"),
        &["run", "--bundle", bs, "lc-spec"],
    );
    assert_eq!(
        text(&out),
        "spec-ok\n0\n",
        "runc on husk's spec: {}",
        err(&out)
    );
    let theirs = dir.path().join("runc-spec");
    fs::create_dir(&theirs).unwrap();
    let out = harness::command(
        Path::new("runc"),
        &["spec", "--bundle", theirs.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", err(&out));
    let mut runc: Value =
        serde_json::from_slice(&fs::read(theirs.join("config.json")).unwrap()).unwrap();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    println!(
        "spec keys: husk {:?} runc {:?}; process.terminal husk {} runc {}",
        keys(&config),
        keys(&runc),
        config["process"]["terminal"],
        runc["process"]["terminal"]
    );
    runc["process"]["args"] = json!(["sh", "-c", "echo spec-ok; id -u"]);
    runc["process"]["terminal"] = false.into();
    bundle::write_config(&b, &runc);
    let out = oci(&root, &["run", "--bundle", bs, "lc-spec2"]);
    assert!(out.status.success(), "husk on runc's spec: {}", err(&out));
    assert_eq!(text(&out), "spec-ok\n0\n");
}
