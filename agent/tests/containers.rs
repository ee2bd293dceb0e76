//! The container manager end to end on this host, as root: the real agent
//! and huskctl, images imported from a busybox archive, containers run by
//! the embedded runtime under their shims, in a private mount namespace
//! with cgroup2 (see `enter_cgroup2_namespace`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use husk_api::containers::{ContainerInfo, Stats, Status};
use serde_json::Value;

use common::{Agent, enter_cgroup2_namespace, eventually, kill_containers};
use husk_testkit::{busybox_layer, oci_archive};

const IMAGE: &str = "husk.test/busybox:1";

/// A test machine: a state root, a run directory, an agent, and the
/// busybox image imported.
struct Machine {
    dir: tempfile::TempDir,
    agent: Option<Agent>,
}

impl Machine {
    fn new(config: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Searchable by a container's root in a user namespace (an
        // unprivileged host uid), as /var/lib/husk is: mkdtemp's 0700
        // would stop it on the way to its rootfs.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        // This host's cgroup2 has no pids controller (its cgroups are v1
        // hybrid): no default pids limit, which the runtime could not set.
        // The QEMU tests check the default in a real cgroup v2 machine.
        let config = config.unwrap_or("");
        let config = if config.contains("[limits.containers]") {
            config.to_string()
        } else {
            format!("{config}\n[limits.containers]\ndefault_pids = -1\n")
        };
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        let mut machine = Self { dir, agent: None };
        machine.start_agent();
        let archive = machine.dir.path().join("busybox.tar");
        std::fs::write(&archive, oci_archive(IMAGE, &[busybox_layer()])).unwrap();
        machine.ok(&["image", "import", archive.to_str().unwrap()]);
        machine
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn start_agent(&mut self) {
        let args = [
            "--root".into(),
            self.path("root"),
            "--run-dir".into(),
            self.path("run"),
            "--config".into(),
            self.path("agent.toml"),
        ];
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        self.agent = Some(Agent::start(self.dir.path(), &args));
    }

    /// SIGKILL, as a crash: the containers must not notice.
    fn crash_agent(&mut self) {
        drop(self.agent.take());
    }

    fn agent(&self) -> &Agent {
        self.agent.as_ref().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.agent().huskctl(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.agent().huskctl_ok(args)
    }

    fn err(&self, args: &[&str]) -> String {
        self.agent().huskctl_err(args)
    }

    fn inspect(&self, name: &str) -> ContainerInfo {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }

    fn wait_status(&self, name: &str, status: Status) -> ContainerInfo {
        eventually(Duration::from_secs(30), &format!("{name} {status}"), || {
            let info = self.inspect(name);
            (info.status == status).then_some(info)
        })
    }
}

impl Drop for Machine {
    /// Leaves nothing running, even after a failure: every container's
    /// cgroup killed and removed, every shim killed.
    fn drop(&mut self) {
        kill_containers(&self.path("root"), &self.path("run"));
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn foreground_run_streams_output_and_exits_with_its_code() {
    if !enter_cgroup2_namespace("foreground_run_streams_output_and_exits_with_its_code") {
        return;
    }
    let m = Machine::new(None);
    let out = m.run(&[
        "run",
        "--rm",
        "--name",
        "once",
        "-e",
        "GREETING=hello",
        IMAGE,
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; hostname; exit 3",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert_eq!(stdout, "hello\nonce\n");
    assert_eq!(stderr, "oops\n");
    // --rm: gone, with its files and cgroup.
    assert!(!m.ok(&["ps", "-a"]).contains("once"));
    assert!(!m.path("root/containers/once").exists());
    assert!(!Path::new("/sys/fs/cgroup/husk/once").exists());
    // A command that does not exist: a clear error, not a hang.
    let err = m.err(&["run", "--rm", IMAGE, "/nonexistent"]);
    assert!(err.contains("/nonexistent"), "{err}");
}

#[test]
fn detached_container_is_isolated_and_takes_exec_and_stats() {
    if !enter_cgroup2_namespace("detached_container_is_isolated_and_takes_exec_and_stats") {
        return;
    }
    let m = Machine::new(None);
    // (No limits: this host's cgroup2 has no memory or pids controller;
    // the QEMU tests assert them.)
    let name = m.ok(&["run", "-d", "--name", "iso", IMAGE, "sleep", "1000"]);
    assert_eq!(name.trim(), "iso");
    let info = m.inspect("iso");
    assert_eq!(info.status, Status::Running);
    let host_pid = info.pid.unwrap();
    assert!(m.ok(&["ps"]).contains("iso"));

    let out = m.run(&[
        "exec",
        "iso",
        "sh",
        "-c",
        "echo pid=$$; hostname; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; \
         tr '\\0' ' ' < /proc/1/cmdline; echo; exit 4",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(!stdout.contains(&format!("pid={host_pid}\n")), "{stdout}");
    assert!(stdout.contains("\niso\n"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    // Docker's set, CAP_MKNOD (bit 27) included: a node for a disk can be
    // made (on /dev, a tmpfs without nodev), and the device cgroup
    // refuses to open it.
    assert!(stdout.contains("CapEff:\t00000000a80425fb"), "{stdout}");
    let mknod = m.run(&[
        "exec",
        "iso",
        "sh",
        "-c",
        "mknod /dev/sda b 8 0 && echo made && head -c 1 /dev/sda",
    ]);
    let (made, mknod_err) = text(&mknod);
    assert_eq!(made, "made\n", "{mknod_err}");
    assert_ne!(
        mknod.status.code(),
        Some(0),
        "opening the disk must be refused"
    );
    assert!(mknod_err.contains("not permitted"), "{mknod_err}");
    assert!(stdout.contains("sleep 1000"), "{stdout}");
    assert_eq!(
        m.ok(&["exec", "-u", "1000:1000", "iso", "id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        m.ok(&["exec", "-e", "X=y", "iso", "sh", "-c", "echo $X"]),
        "y\n"
    );

    let stats: Stats = serde_json::from_str(&raw_get(&m, "/v1/containers/iso/stats")).unwrap();
    assert!(stats.time_ms > 0, "{stats:?}");
    assert!(m.ok(&["stats", "iso"]).contains("iso"));

    // In use: neither the container nor its image can be removed.
    assert!(m.err(&["rm", "iso"]).contains("running"));
    assert!(m.err(&["image", "rm", IMAGE]).contains("in use"));

    // Stop: SIGTERM is ignored by a pid-1 sleep, so SIGKILL after 1 s.
    m.ok(&["stop", "-t", "1", "iso"]);
    let info = m.inspect("iso");
    assert_eq!(info.status, Status::Exited);
    assert_eq!(info.exit_code, Some(137));
    assert!(!Path::new("/sys/fs/cgroup/husk/iso").exists());
    m.ok(&["rm", "iso"]);
    m.ok(&["image", "rm", IMAGE]);
}

#[test]
fn restart_policies_and_an_agent_crash() {
    if !enter_cgroup2_namespace("restart_policies_and_an_agent_crash") {
        return;
    }
    let mut m = Machine::new(None);
    m.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    let info = eventually(Duration::from_secs(30), "flaky gives up", || {
        let info = m.inspect("flaky");
        (info.status == Status::Exited && info.restart_count == 2).then_some(info)
    });
    assert_eq!(info.exit_code, Some(1));
    assert_eq!(m.ok(&["logs", "flaky"]), "run\nrun\nrun\n");

    m.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--restart",
        "always",
        IMAGE,
        "sh",
        "-c",
        "echo hello; exec sleep 1000",
    ]);
    m.ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        IMAGE,
        "sh",
        "-c",
        "sleep 2; exit 5",
    ]);
    let web_pid = m.inspect("web").pid.unwrap();

    // The agent crashes; the containers carry on without it, and `brief`
    // exits while it is away.
    m.crash_agent();
    std::thread::sleep(Duration::from_secs(3));
    assert!(Path::new(&format!("/proc/{web_pid}")).exists());
    m.start_agent();
    let web = m.inspect("web");
    assert_eq!((web.status, web.pid), (Status::Running, Some(web_pid)));
    let brief = m.wait_status("brief", Status::Exited);
    assert_eq!(brief.exit_code, Some(5));

    // Killed behind the agent's back: `always` brings it back.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(web_pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let web = eventually(Duration::from_secs(30), "web restarted", || {
        let info = m.inspect("web");
        (info.status == Status::Running && info.pid != Some(web_pid)).then_some(info)
    });
    assert_eq!(web.restart_count, 1);
    assert_eq!(m.ok(&["logs", "web"]), "hello\nhello\n");

    // Stopped by the user: stays stopped.
    m.ok(&["stop", "-t", "1", "web"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(m.inspect("web").status, Status::Exited);
    // Follow on a stopped container ends at once, with what is stored.
    assert_eq!(m.ok(&["logs", "-f", "--tail", "1", "web"]), "hello\n");
}

#[test]
fn logs_rotate_and_follow() {
    if !enter_cgroup2_namespace("logs_rotate_and_follow") {
        return;
    }
    let m = Machine::new(Some("[logs]\nmax_size = 4096\nmax_files = 2\n"));
    m.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; seq 1 400; sleep 1",
    ]);
    // Following from the start sees every line still stored, then ends
    // when the container does.
    let followed = m.ok(&["logs", "-f", "chatty"]);
    assert!(followed.ends_with("399\n400\n"), "{followed}");
    assert_eq!(m.wait_status("chatty", Status::Exited).exit_code, Some(0));
    assert_eq!(m.ok(&["logs", "--tail", "2", "chatty"]), "399\n400\n");
    let logs = m.path("root/containers/chatty/logs");
    let mut files: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["container.log", "container.log.1"]);
    for f in &files {
        assert!(std::fs::metadata(logs.join(f)).unwrap().len() <= 4096);
    }
    // What is kept is a contiguous tail of the output.
    let kept: Vec<u32> = m
        .ok(&["logs", "chatty"])
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(kept.len() > 50 && kept.len() < 400, "{}", kept.len());
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn bad_requests_are_refused_clearly() {
    if !enter_cgroup2_namespace("bad_requests_are_refused_clearly") {
        return;
    }
    let m = Machine::new(None);
    let cases: [(&[&str], &str); 6] = [
        (&["run", "nosuch/image:1"], "nosuch/image"),
        (&["run", "--name", "bad name", IMAGE], "name"),
        (
            &["run", "--rm", "--restart", "always", IMAGE],
            "restart policy",
        ),
        (
            &["run", "--privileged", IMAGE],
            "privileged containers are disabled",
        ),
        (
            &["run", "--network", "host", IMAGE],
            "host network is disabled",
        ),
        (&["run", "-u", "nobody", IMAGE, "true"], "nobody"),
    ];
    for (args, expected) in cases {
        let err = m.err(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    for verb in ["start", "stop", "logs", "inspect", "rm", "wait"] {
        let err = m.err(&[verb, "ghost"]);
        assert!(err.contains("no such container: ghost"), "{verb}: {err}");
    }
    let err = m.err(&["exec", "ghost", "true"]);
    assert!(err.contains("no such container"), "{err}");
    m.ok(&["create", "--name", "idle", IMAGE, "true"]);
    assert!(m.err(&["exec", "idle", "true"]).contains("not running"));
    assert!(
        m.err(&["create", "--name", "idle", IMAGE])
            .contains("already in use")
    );
    let status = raw_status(&m, "POST", "/v1/containers", "{\"image\": 5}");
    assert_eq!(status, 400);
    let status = raw_status(
        &m,
        "POST",
        "/v1/containers",
        "{\"image\": \"x\", \"bogus\": 1}",
    );
    assert_eq!(status, 400);
    let status = raw_status(&m, "GET", "/v1/containers/idle/logs?tail=abc", "");
    assert_eq!(status, 400);
    m.ok(&["health"]);
    // Nothing was left behind by the refused requests.
    let names: Vec<_> = std::fs::read_dir(m.path("root/containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["idle"]);
}

/// `--userns auto`: each container's root is a host uid range of its own
/// (none overlapping, kept across an agent restart), and the image's files
/// appear owned as in the image (idmapped layers), the container's own
/// files as the container's root inside and as its host uid outside.
#[test]
fn userns_auto_gives_each_container_its_own_ids() {
    if !enter_cgroup2_namespace("userns_auto_gives_each_container_its_own_ids") {
        return;
    }
    let mut m = Machine::new(None);
    let first = 1u32 << 20;
    let range = 65536u32;
    m.ok(&[
        "run", "-d", "--name", "a", "--userns", "auto", IMAGE, "sleep", "1000",
    ]);
    m.ok(&[
        "run", "-d", "--name", "b", "--userns", "auto", IMAGE, "sleep", "1000",
    ]);
    let map = |name: &str| {
        let line = m.ok(&["exec", name, "cat", "/proc/self/uid_map"]);
        let fields: Vec<u32> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        fields
    };
    assert_eq!(map("a"), [0, first, range]);
    assert_eq!(map("b"), [0, first + range, range]);
    // The image's files are root's inside, the container's new ones too.
    let script = "/bin/busybox stat -c %u:%g /bin/busybox /; echo x > /made; \
                  /bin/busybox stat -c %u:%g /made; id -u";
    assert_eq!(
        m.ok(&["exec", "a", "sh", "-c", script]),
        "0:0\n0:0\n0:0\n0\n"
    );
    // Outside, the new file belongs to the container's host uid.
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(m.path("root/containers/a/upper/made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (first, first));
    let info = m.inspect("a");
    assert!(info.options.userns_auto);
    assert_eq!(info.options.userns.unwrap().host_uid, first);

    // Across an agent restart the ranges stay taken.
    m.crash_agent();
    m.start_agent();
    m.ok(&["create", "--name", "c", "--userns", "auto", IMAGE, "true"]);
    assert_eq!(
        m.inspect("c").options.userns.unwrap().host_uid,
        first + 2 * range
    );
    // A removed container's range is free again.
    m.ok(&["rm", "-f", "a"]);
    m.ok(&["create", "--name", "d", "--userns", "auto", IMAGE, "true"]);
    assert_eq!(m.inspect("d").options.userns.unwrap().host_uid, first);
    // An explicit mapping and auto exclude each other.
    let status = raw_status(
        &m,
        "POST",
        "/v1/containers",
        &format!(
            r#"{{"image":"{IMAGE}","userns_auto":true,"userns":{{"host_uid":1,"host_gid":1,"size":1}}}}"#
        ),
    );
    assert_eq!(status, 400);
}

/// `[security] userns = "required"`: a container that asks nothing gets
/// a user namespace of its own.
#[test]
fn a_required_user_namespace_is_given_to_every_container() {
    if !enter_cgroup2_namespace("a_required_user_namespace_is_given_to_every_container") {
        return;
    }
    let m = Machine::new(Some("[security]\nuserns = \"required\"\n"));
    let out = m.ok(&["run", "--rm", IMAGE, "cat", "/proc/self/uid_map"]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields, ["0", "1048576", "65536"], "{out}");
}

/// agent.toml's maxima refuse more, and what a container got is in its
/// options.
#[test]
fn limits_from_agent_toml_apply() {
    if !enter_cgroup2_namespace("limits_from_agent_toml_apply") {
        return;
    }
    // The refusals, and what a container got: the host's cgroup2 has no
    // memory or pids controller to start a limited container in (the
    // QEMU container-limits scenario runs one).
    let limited = Machine::new(Some(
        "[limits.containers]\ndefault_pids = -1\nmax_pids = 100\n\
         max_memory = 67108864\ndefault_cpus = 0.5\nmax_cpus = 1.0\n",
    ));
    let e = limited.err(&["create", "--pids-limit", "500", IMAGE, "true"]);
    assert!(
        e.contains("pids_limit 500 is above the agent's limit of 100"),
        "{e}"
    );
    assert!(e.contains("limits.containers.max_pids"), "{e}");
    let e = limited.err(&["create", "--memory", "1g", IMAGE, "true"]);
    assert!(e.contains("above the agent's limit of 67108864"), "{e}");
    let e = limited.err(&["create", "--cpus", "2", IMAGE, "true"]);
    assert!(e.contains("max_cpus"), "{e}");
    // Asking nothing: the default CPUs, and the maxima as limits.
    limited.ok(&["create", "--name", "bounded", IMAGE, "true"]);
    let options = limited.inspect("bounded").options;
    assert_eq!(
        (options.pids_limit, options.memory, options.cpus),
        (Some(100), Some(64 << 20), Some(0.5))
    );
    // An invalid [limits] stops the agent from starting with half of it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[limits.containers]\ndefault_memory = 2\nmax_memory = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_husk-agent"))
        .args(["--root", dir.path().join("root").to_str().unwrap()])
        .args(["--run-dir", dir.path().join("run").to_str().unwrap()])
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("default_memory 2 is above max_memory 1"),
        "{stderr}"
    );
}

fn raw_get(m: &Machine, path: &str) -> String {
    let client = husk_api::Client::new(&m.agent().socket);
    let value: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.get(path))
        .unwrap();
    value.to_string()
}

fn raw_status(m: &Machine, method: &str, path: &str, body: &str) -> u16 {
    let client = husk_api::Client::new(&m.agent().socket);
    let method = hyper::Method::from_bytes(method.as_bytes()).unwrap();
    let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.request::<Value>(method, path, body));
    match result {
        Err(husk_api::ClientError::Status { status, .. }) => status,
        Ok(_) => 200,
        Err(e) => panic!("{e}"),
    }
}
