//! The embedded OCI runtime (`husk-agent oci`), end to end on this host.

mod bundle;
#[path = "../common/mod.rs"]
mod common;
mod console;
mod devices;
mod exec;
mod harness;
mod hooks;
mod hostile;
mod keyring;
mod lifecycle;
mod mounts;
mod no_pivot;
mod race;
mod sealed;
mod seccomp_abi;
mod seccomp_order;
mod stdio;
mod sysctl;
mod time_ns;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{enter, err, oci, text};
use serde_json::Value;

fn run(bundle: &Path, root: &Path, id: &str) -> (i32, String, String) {
    let out = oci(root, &["run", "--bundle", bundle.to_str().unwrap(), id]);
    (out.status.code().unwrap_or(-1), text(&out), err(&out))
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in:\n{out}"))
}

#[test]
fn run_sets_up_the_container() {
    if !enter("run_sets_up_the_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "echo pid=$$; hostname; id; pwd; echo env=$FOO; \
        grep -E 'Cap|Seccomp|NoNewPrivs' /proc/self/status; \
        echo kcore=$(cat /proc/kcore | wc -c); \
        touch /sys/x 2>&1 | grep -q 'Read-only' && echo sys=ro; \
        mount -t tmpfs none /mnt 2>/dev/null || echo mount=refused; \
        echo fds=$(ls /proc/self/fd | wc -l); \
        unshare -m true 2>&1 | grep -q 'not permitted' && echo unshare=EPERM; exit 7";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let mut config = bundle::config(&["sh", "-c", script]);
    config["process"]["user"] =
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
    config["process"]["cwd"] = "/work".into();
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("FOO=bar".into());
    bundle::write_config(&b, &config);
    let root = dir.path().join("state");
    let (code, out, stderr) = run(&b, &root, "basics");
    println!("{out}{stderr}");
    assert_eq!(code, 7, "exit code propagates");
    assert_eq!(field(&out, "pid="), "1");
    assert!(out.contains("husk-test"));
    assert!(out.contains("uid=1000 gid=1000 groups=10"), "{out}");
    assert!(out.contains("\n/work\n"));
    assert_eq!(field(&out, "env="), "bar");
    for set in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
        assert_eq!(field(&out, set), bundle::DOCKER_CAPS_HEX, "{set}");
    }
    assert_eq!(field(&out, "Seccomp:"), "2");
    assert_eq!(field(&out, "NoNewPrivs:"), "1");
    assert_eq!(field(&out, "kcore="), "0");
    assert_eq!(field(&out, "unshare="), "EPERM", "seccomp's errno");
    assert!(out.contains("sys=ro"));
    assert!(out.contains("mount=refused"));
    // 0, 1, 2 and the directory ls itself opens.
    assert_eq!(field(&out, "fds="), "4");
    // Nothing left behind by run.
    assert!(!root.join("basics").exists());
    assert!(!Path::new("/sys/fs/cgroup/husk/basics").exists());
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    if !enter("lifecycle_create_start_state_kill_delete") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(dir.path(), &["sleep", "1000"]);
    let root = dir.path().join("state");
    let bs = b.to_str().unwrap();
    let pid_file = dir.path().join("pid");
    let out = oci(
        &root,
        &[
            "create",
            "--bundle",
            bs,
            "--pid-file",
            pid_file.to_str().unwrap(),
            "c1",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    let state =
        |id: &str| -> Value { serde_json::from_str(&text(&oci(&root, &["state", id]))).unwrap() };
    let s = state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "c1");
    assert_eq!(s["ociVersion"], "1.0.2");
    assert_eq!(s["bundle"], bs);
    let pid = s["pid"].as_i64().unwrap();
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(Path::new("/sys/fs/cgroup/husk/c1/cgroup.procs").exists());
    assert!(
        fs::read_to_string("/sys/fs/cgroup/husk/c1/cgroup.procs")
            .unwrap()
            .contains(&pid.to_string())
    );
    // Same id twice.
    let again = oci(&root, &["create", "--bundle", bs, "c1"]);
    assert!(!again.status.success() && err(&again).contains("already exists"));
    assert!(oci(&root, &["start", "c1"]).status.success());
    assert_eq!(state("c1")["status"], "running");
    let bad = oci(&root, &["delete", "c1"]);
    assert!(
        !bad.status.success() && err(&bad).contains("running"),
        "{}",
        err(&bad)
    );
    assert!(oci(&root, &["kill", "c1", "SIGKILL"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while state("c1")["status"] != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = state("c1");
    assert_eq!(s["status"], "stopped");
    assert!(s.get("pid").is_none());
    assert!(oci(&root, &["delete", "c1"]).status.success());
    assert!(!root.join("c1").exists());
    assert!(!Path::new("/sys/fs/cgroup/husk/c1").exists());
    let gone = oci(&root, &["state", "c1"]);
    assert!(!gone.status.success() && err(&gone).contains("does not exist"));

    // delete --force on a running container.
    let out = oci(&root, &["create", "--bundle", bs, "c3"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(oci(&root, &["start", "c3"]).status.success());
    assert!(oci(&root, &["delete", "--force", "c3"]).status.success());
    assert!(!root.join("c3").exists());
    assert!(!Path::new("/sys/fs/cgroup/husk/c3").exists());
}

#[test]
fn bad_configs_fail_and_leave_nothing() {
    if !enter("bad_configs_fail_and_leave_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(dir.path(), &["true"]);
    let root = dir.path().join("state");
    let bs = b.to_str().unwrap();
    let try_create = |expect: &str| {
        let out = oci(&root, &["create", "--bundle", bs, "bad"]);
        assert!(!out.status.success());
        let e = err(&out);
        assert!(e.contains(expect), "expected {expect:?} in {e}");
        assert!(!root.join("bad").exists(), "state left behind");
        assert!(
            !Path::new("/sys/fs/cgroup/husk/bad").exists(),
            "cgroup left behind"
        );
    };
    fs::write(b.join("config.json"), "{ \"ociVersion\": ").unwrap();
    try_create("config.json");
    let mut c = bundle::config(&["true"]);
    c.as_object_mut().unwrap().remove("root");
    bundle::write_config(&b, &c);
    try_create("no root");
    let mut c = bundle::config(&["true"]);
    c["mounts"].as_array_mut().unwrap().push(
        serde_json::json!({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}),
    );
    bundle::write_config(&b, &c);
    try_create("mount destination relative/dir is not absolute");
    // Fails inside the init: its message comes back.
    let mut c = bundle::config(&["/no/such/program"]);
    bundle::write_config(&b, &c);
    try_create("not found");
    c = bundle::config(&["true"]);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}));
    bundle::write_config(&b, &c);
    try_create("mounting nosuchfs on /mnt/x: ENODEV");
    // Confinement asked for and not available: refused, not ignored.
    c = bundle::config(&["true"]);
    c["process"]["apparmorProfile"] = "docker-default".into();
    bundle::write_config(&b, &c);
    try_create("no AppArmor");
    c = bundle::config(&["true"]);
    c["linux"]["resources"] = serde_json::json!({"network": {"classID": 1}});
    bundle::write_config(&b, &c);
    try_create("net_cls");
}

#[test]
fn user_namespace_maps_root() {
    if !enter("user_namespace_maps_root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "id -u; touch /data/f; cat /proc/self/uid_map";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(100_000), Some(100_000)).unwrap();
    // The rootfs must be readable by the mapped root.
    let status = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.join("rootfs"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut c = bundle::config(&["sh", "-c", script]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    c["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}));
    bundle::write_config(&b, &c);
    let (code, out, stderr) = run(&b, &dir.path().join("state"), "userns");
    println!("{out}{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out.lines().next(), Some("0"));
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(data.join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 100_000));
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(fs::read(path).unwrap()))
}

#[test]
fn runtime_binary_cannot_be_overwritten() {
    if !enter("runtime_binary_cannot_be_overwritten") {
        return;
    }
    let before = sha256(&harness::husk());
    let dir = tempfile::tempdir().unwrap();
    // Every /proc/<pid>/exe the container can see, written to.
    let script = "for p in /proc/[0-9]*; do echo x > $p/exe 2>/dev/null && echo wrote $p; done; ls -d /proc/[0-9]* | wc -l";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let (code, out, stderr) = run(&b, &dir.path().join("state"), "exe");
    println!("{out}{stderr}");
    assert_eq!(code, 0);
    assert!(!out.contains("wrote"), "{out}");
    assert_eq!(sha256(&harness::husk()), before);
}

#[test]
fn same_bundle_under_husk_crun_and_runc() {
    if !enter("same_bundle_under_husk_crun_and_runc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Seccomp_filters included: Husk compiles a profile into one filter,
    // as libseccomp does for crun and runc.
    let script = "id; hostname; cat /proc/self/status | grep -E 'Cap|Seccomp|NoNewPrivs'";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let bs = b.to_str().unwrap();
    let (code, husk, stderr) = run(&b, &dir.path().join("husk"), "cmp");
    assert_eq!(code, 0, "{stderr}");
    let mut outputs = vec![("husk", husk)];
    for (name, args) in [
        ("crun", vec!["--cgroup-manager=disabled", "--root"]),
        ("runc", vec!["--root"]),
    ] {
        harness::require(name);
        let state = dir.path().join(name);
        let out = std::process::Command::new(name)
            .args(&args)
            .arg(&state)
            .args(["run", "--bundle", bs, "cmp"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", err(&out));
        outputs.push((name, text(&out)));
    }
    for (name, out) in &outputs[1..] {
        assert_eq!(out, &outputs[0].1, "{name} differs from husk");
    }
    println!("{}", outputs[0].1);
}

#[test]
fn oom_score_adj_is_the_specs_not_the_callers() {
    if !enter("oom_score_adj_is_the_specs_not_the_callers") {
        return;
    }
    // The caller (a shim, on a machine) is shielded; its container must
    // not inherit that.
    fs::write("/proc/self/oom_score_adj", "300").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = "cat /proc/self/oom_score_adj";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    for (adj, want) in [(Some(0), "0"), (Some(500), "500"), (None, "300")] {
        let mut config = bundle::config(&["sh", "-c", script]);
        if let Some(adj) = adj {
            config["process"]["oomScoreAdj"] = adj.into();
        }
        bundle::write_config(&b, &config);
        let (code, out, stderr) = run(&b, &dir.path().join("state"), "oom");
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(out.trim(), want, "oomScoreAdj {adj:?}");
    }
    let mut config = bundle::config(&["sh", "-c", script]);
    config["process"]["oomScoreAdj"] = 5000.into();
    bundle::write_config(&b, &config);
    let (code, _, stderr) = run(&b, &dir.path().join("state"), "oom");
    assert_ne!(code, 0);
    assert!(stderr.contains("outside -1000..=1000"), "{stderr}");
}

/// runc's global flags as containerd-shim-runc-v2 passes them: the error
/// also lands in the `--log` file as the JSON line the shim reads back.
#[test]
fn runc_global_flags_as_the_containerd_shim_passes_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let root = dir.path().join("state");
    let out = harness::command(
        &harness::husk(),
        &[
            "oci",
            "--root",
            root.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "kill",
            "nosuch",
            "KILL",
        ],
    );
    assert!(!out.status.success());
    let line: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("nosuch"), "{line}");
    let out = harness::command(
        &harness::husk(),
        &[
            "oci",
            "--systemd-cgroup",
            "--root",
            root.to_str().unwrap(),
            "state",
            "x",
        ],
    );
    assert!(err(&out).contains("systemd cgroup driver"), "{}", err(&out));
    // runc: deleting with --force what is not there is done.
    let out = harness::oci(&root, &["delete", "--force", "nosuch"]);
    assert!(out.status.success(), "{}", err(&out));
}
