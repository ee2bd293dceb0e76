//! Docker's own CLI (Debian's `docker` 20.10, `/usr/bin/docker`) against
//! the agent's Docker Engine API socket, run as a user types it: version,
//! info, images, run (foreground with --rm, detached), logs, ps, inspect,
//! stop, rm, a refusal of the security policy, and the 501s of what Husk
//! does not implement (build, pause). As root, in a private mount and
//! network namespace with cgroup2, as the other container tests.

mod common;

use std::time::Duration;

use common::docker::Machine;
use common::enter_cgroup2_namespace;
use serde_json::Value;

#[test]
fn docker_cli_reads_the_system_and_images() {
    if !enter_cgroup2_namespace("docker_cli_reads_the_system_and_images") {
        return;
    }
    let m = Machine::start();
    let version = m.ok(&["version"]);
    let agent_version = env!("CARGO_PKG_VERSION");
    assert!(version.contains("Server: Husk"), "{version}");
    assert!(
        version.contains(&format!("Version:          {agent_version}")),
        "{version}"
    );
    assert!(version.contains("API version:      1.41"), "{version}");

    let info = m.ok(&["info"]);
    for line in [
        format!("Server Version: {agent_version}"),
        "Operating System: Husk".to_owned(),
        "Storage Driver: overlay2".to_owned(),
        "Cgroup Version: 2".to_owned(),
        "Containers: 0".to_owned(),
        "Images: 1".to_owned(),
        format!(
            "Kernel Version: {}",
            rustix::system::uname().release().to_str().unwrap()
        ),
    ] {
        assert!(info.contains(&line), "no {line:?} in:\n{info}");
    }

    let images = m.ok(&["images"]);
    let row = images
        .lines()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_else(|| panic!("no busybox in:\n{images}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[1], "latest", "{row}");
    assert_eq!(columns[2].len(), 12, "{row}");
    let image: Value = serde_json::from_str(&m.ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(image[0]["RepoTags"][0], "busybox:latest");
    assert!(
        image[0]["Id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sha256:{}", columns[2]))
    );

    // What Husk does not implement says so, and fails.
    let build = m.path("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    let out = m.docker_in(&build, &["build", "."]);
    let (stdout, stderr) = common::text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("Husk does not implement docker build"),
        "{stdout}{stderr}"
    );
    // A pull that fails says why, as dockerd's error line does.
    let pull = m.fails(&["pull", "127.0.0.1:1/nothing:1"]);
    assert!(
        pull.contains("https://127.0.0.1:1/v2/nothing/manifests/1")
            && pull.contains("Connection refused"),
        "{pull}"
    );

    // The wire, as other clients see it: _ping's headers (HEAD too),
    // unversioned paths, and versions out of range refused.
    // (Header names are case-insensitive; hyper writes them lowercase.)
    let head = m.curl(&["-I", "http://docker/_ping"]).to_ascii_lowercase();
    for header in [
        "api-version: 1.41",
        "ostype: linux",
        "docker-experimental: false",
    ] {
        assert!(head.contains(header), "no {header} in:\n{head}");
    }
    assert_eq!(m.curl(&["http://docker/v1.24/_ping"]), "OK");
    assert_eq!(m.curl(&["http://docker/containers/json"]), "[]");
    let too_new = m.curl(&["http://docker/v1.99/version"]);
    assert!(
        too_new.contains("client version 1.99 is too new"),
        "{too_new}"
    );
    let export = m.curl(&[
        "-w",
        " %{http_code}",
        "http://docker/v1.41/containers/x/export",
    ]);
    assert!(
        export.contains("Husk does not implement container export") && export.ends_with(" 501"),
        "{export}"
    );
}

#[test]
fn docker_cli_runs_containers() {
    if !enter_cgroup2_namespace("docker_cli_runs_containers") {
        return;
    }
    let m = Machine::start();
    // Foreground: attach, wait, start; the output, then the exit code,
    // and --rm removes it.
    let out = m.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "hello\n", "{stderr}");
    m.assert_streams_and_exit_code(&["run", "--rm", "busybox"]);
    let all = m.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(all, "", "--rm left containers");

    // Detached: the id, then logs, ps, inspect.
    let id = m.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    common::eventually(Duration::from_secs(20), "web's output", || {
        (m.ok(&["logs", "web"]) == "ready\n").then_some(())
    });
    let tail = m.ok(&["logs", "--tail", "1", "-t", "web"]);
    let (time, text) = tail.split_once(' ').unwrap();
    assert_eq!(text, "ready\n", "{tail}");
    assert!(
        time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "not a timestamp: {tail}"
    );
    let ps = m.ok(&["ps"]);
    let row = ps
        .lines()
        .find(|l| l.ends_with(" web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("busybox") && row.contains("Up "), "{row}");
    let filtered = m.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=web",
        "--format",
        "{{.ID}} {{.Names}} {{.Status}}",
    ]);
    assert!(
        filtered.starts_with(&format!("{} web Up", &id[..12])),
        "{filtered}"
    );
    let none = m.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=nothing",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(none, "");
    let web = m.inspect("web");
    assert_eq!(web["Id"], id);
    assert_eq!(web["Name"], "/web");
    assert_eq!(web["State"]["Status"], "running");
    assert_eq!(web["State"]["Running"], true);
    assert!(web["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(
        web["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo ready; sleep 1000"])
    );
    assert_eq!(web["Config"]["Tty"], false);
    // By an id prefix, as Docker resolves it.
    assert_eq!(m.inspect(&id[..8])["Name"], "/web");

    assert_eq!(m.ok(&["stop", "-t", "1", "web"]), "web\n");
    let web = m.inspect("web");
    assert_eq!(web["State"]["Status"], "exited");
    assert_eq!(web["State"]["Running"], false);
    let exited = m.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=web",
        "--format",
        "{{.Status}}",
    ]);
    assert!(
        exited.starts_with("Exited (137)") || exited.starts_with("Exited (143)"),
        "{exited}"
    );
    assert_eq!(m.ok(&["rm", "web"]), "web\n");
    assert_eq!(m.ok(&["ps", "-a", "--format", "{{.Names}}"]), "");
    let gone = m.fails(&["inspect", "web"]);
    assert!(
        gone.contains("No such object: web") || gone.contains("No such container"),
        "{gone}"
    );
}

#[test]
fn docker_cli_is_refused_what_husk_refuses() {
    if !enter_cgroup2_namespace("docker_cli_is_refused_what_husk_refuses") {
        return;
    }
    let m = Machine::start();
    // The default policy: no privileged containers. Husk's own message.
    let refused = m.fails(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert!(
        refused.contains(
            "privileged containers are disabled by the agent's configuration \
             (security policy: allow_privileged = false)"
        ),
        "{refused}"
    );
    // What changes isolation and Husk cannot honour is refused by name.
    let cap = m.fails(&["run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "true"]);
    assert!(
        cap.contains("HostConfig.CapAdd is not supported by Husk"),
        "{cap}"
    );
    let dropped = m.fails(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "true",
    ]);
    assert!(dropped.contains("SecurityOpt"), "{dropped}");
    assert_eq!(m.ok(&["ps", "-a", "--format", "{{.Names}}"]), "");

    // pause is not there: said so, and failed.
    m.ok(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]);
    let pause = m.fails(&["pause", "idle"]);
    assert!(
        pause.contains("Husk does not implement container pause"),
        "{pause}"
    );
    m.ok(&["rm", "-f", "idle"]);
}

/// `docker volume …` and `-v`: a volume outlives its container, cannot
/// go while a container names it, and a host path is refused under the
/// default policy, in Docker's words.
#[test]
fn docker_cli_keeps_volumes() {
    if !enter_cgroup2_namespace("docker_cli_keeps_volumes") {
        return;
    }
    let m = Machine::start();
    assert_eq!(
        m.ok(&["volume", "create", "--label", "app=db", "data"]),
        "data\n"
    );
    m.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    let e = m.fails(&["volume", "rm", "data"]);
    assert!(e.contains("in use by container writer"), "{e}");
    m.ok(&["rm", "writer"]);
    assert_eq!(
        m.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=data,dst=/d,readonly",
            "busybox",
            "cat",
            "/d/f"
        ]),
        "kept\n"
    );
    assert!(m.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    let inspect: Value = serde_json::from_str(&m.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspect[0]["Labels"]["app"], "db", "{inspect}");
    assert_eq!(inspect[0]["Driver"], "local", "{inspect}");
    // An anonymous volume goes with a --rm container.
    m.ok(&["run", "--rm", "-v", "/scratch", "busybox", "true"]);
    assert_eq!(m.ok(&["volume", "ls", "-q"]), "data\n");
    let e = m.fails(&["run", "--rm", "-v", "/etc:/host", "busybox", "true"]);
    assert!(e.contains("bind mounts of host paths are disabled"), "{e}");
    let e = m.fails(&["volume", "create", "--driver", "nfs", "x1"]);
    assert!(e.contains("not supported"), "{e}");
    m.ok(&["volume", "rm", "data"]);
    assert_eq!(m.ok(&["volume", "ls", "-q"]), "");
}

/// `docker run -i` streams stdin until its EOF; `docker run -it` gets a
/// terminal (driven through a real pty) that takes resizes and exits
/// with the shell's code.
#[test]
fn docker_cli_runs_interactively() {
    if !enter_cgroup2_namespace("docker_cli_runs_interactively") {
        return;
    }
    let m = Machine::start();
    let out = m.docker_fed(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; exit 4"],
        b"through stdin\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "through stdin\n",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    let steps = serde_json::json!([
        ["expect", "# "],
        ["send", "tty\r"],
        ["expect", "/dev/pts/"],
        ["resize", 40, 100],
        ["send", "sleep 0.5; busybox stty size\r"],
        ["expect", "40 100"],
        ["send", "exit 6\r"],
    ]);
    let tty = m.docker_command(m.dir(), &["run", "-it", "--rm", "busybox", "sh"]);
    let (code, screen) = common::pty::run(&steps, &tty);
    assert_eq!(code, 6, "{screen}");
}
