//! `docker exec` with Debian's CLI (`/usr/bin/docker` 20.10) against the
//! agent's Docker socket: commands, exit codes, `-e`, `-u`, `-w`, `-i`
//! fed to its EOF, `-it` on a real pty (python3's pty module) with the
//! CLI's resizes, `-d`, what is refused (a stopped container,
//! `--privileged`, an unknown exec), the exec endpoints as the API has
//! them, and — hostile — an exec'd process that has exactly its
//! container's restrictions. As root, in a private mount and network
//! namespace with cgroup2, as the other container tests.

mod common;

use std::time::{Duration, Instant};

use common::docker::Machine;
use common::{enter_cgroup2_namespace, eventually};
use serde_json::Value;

/// curl on the Docker socket with a JSON body: what came and the status.
fn post_json(m: &Machine, path: &str, body: &str) -> (String, u16) {
    let out = m.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        "-w",
        "\n%{http_code}",
        &format!("http://docker{path}"),
    ]);
    let (body, code) = out.rsplit_once('\n').unwrap();
    (body.to_string(), code.parse().unwrap())
}

fn get_json(m: &Machine, path: &str) -> (Value, u16) {
    let out = m.curl(&["-w", "\n%{http_code}", &format!("http://docker{path}")]);
    let (body, code) = out.rsplit_once('\n').unwrap();
    (serde_json::from_str(body).unwrap(), code.parse().unwrap())
}

#[test]
fn docker_exec_runs_what_it_is_asked_and_refuses_what_husk_refuses() {
    if !enter_cgroup2_namespace("docker_exec_runs_what_it_is_asked_and_refuses_what_husk_refuses") {
        return;
    }
    let m = Machine::start();
    m.ok(&["run", "-d", "--name", "ex-box", "busybox", "sleep", "1000"]);

    assert_eq!(m.ok(&["exec", "ex-box", "echo", "hi"]), "hi\n");
    m.assert_streams_and_exit_code(&["exec", "ex-box"]);
    assert_eq!(
        m.ok(&["exec", "-e", "X=y z", "ex-box", "sh", "-c", "echo $X"]),
        "y z\n"
    );
    assert_eq!(
        m.ok(&["exec", "-u", "1000", "ex-box", "id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        m.ok(&["exec", "-w", "/etc", "ex-box", "sh", "-c", "pwd"]),
        "/etc\n"
    );
    // A command that is not there: Docker's 126, and why on stderr.
    let out = m.docker(&["exec", "ex-box", "no-such-command"]);
    let (stdout, stderr) = common::text(&out);
    assert_eq!(out.status.code(), Some(126), "{stdout}{stderr}");
    assert!(stderr.contains("no-such-command"), "{stderr}");

    // -i: stdin streamed to the process, its EOF the process's.
    let out = m.docker_fed(&["exec", "-i", "ex-box", "cat"], b"fed through\nstdin\n");
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "fed through\nstdin\n", "{stderr}");
    let out = m.docker_fed(
        &["exec", "-i", "ex-box", "sh", "-c", "busybox wc -l; exit 4"],
        b"a\nb\n",
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");

    // -d: the CLI returns at once; the process runs on and does its work.
    let started = Instant::now();
    assert_eq!(
        m.ok(&[
            "exec",
            "-d",
            "ex-box",
            "sh",
            "-c",
            "sleep 5; echo done > /flag"
        ]),
        ""
    );
    assert!(started.elapsed() < Duration::from_secs(4), "-d waited");
    eventually(Duration::from_secs(20), "the detached exec's file", || {
        let out = m.docker(&["exec", "ex-box", "cat", "/flag"]);
        (out.status.success() && out.stdout == b"done\n").then_some(())
    });

    // Refused: --privileged by name (the policy never grants it), a
    // stopped container, an exec id nobody made.
    let privileged = m.fails(&["exec", "--privileged", "ex-box", "true"]);
    assert!(privileged.contains("Privileged is refused"), "{privileged}");
    m.ok(&["run", "-d", "--name", "ex-stopped", "busybox", "true"]);
    eventually(Duration::from_secs(20), "stopped exited", || {
        (m.inspect("ex-stopped")["State"]["Running"] == false).then_some(())
    });
    let stopped = m.fails(&["exec", "ex-stopped", "echo", "hi"]);
    assert!(stopped.contains("is not running"), "{stopped}");
    let (unknown, status) = get_json(&m, "/v1.41/exec/0123abcd/json");
    assert_eq!(status, 404);
    assert_eq!(unknown["message"], "No such exec instance: 0123abcd");
    let (_, status) = post_json(&m, "/exec/0123abcd/start", r#"{"Detach":true}"#);
    assert_eq!(status, 404);
    let (_, status) = post_json(&m, "/exec/0123abcd/resize?h=1&w=1", "");
    assert_eq!(status, 404);

    // The endpoints as the API has them: create, a detached start, the
    // exit code and the rest in the exec's inspect, a second start.
    let (created, status) = post_json(
        &m,
        "/v1.41/containers/ex-box/exec",
        r#"{"Cmd":["sh","-c","exit 7"],"AttachStdout":true,"User":"","Env":null}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<Value>(&created).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64);
    let (before, _) = get_json(&m, &format!("/exec/{id}/json"));
    assert_eq!(before["Running"], false);
    assert_eq!(before["ExitCode"], Value::Null);
    let (_, status) = post_json(&m, &format!("/exec/{id}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 200);
    let inspect = eventually(Duration::from_secs(20), "exit 7 ended", || {
        let (inspect, _) = get_json(&m, &format!("/exec/{id}/json"));
        (inspect["Running"] == false).then_some(inspect)
    });
    assert_eq!(inspect["ID"], id.as_str());
    assert_eq!(inspect["ExitCode"], 7);
    assert!(inspect["Pid"].as_i64().unwrap() > 0, "{inspect}");
    assert_eq!(inspect["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        inspect["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 7"])
    );
    assert_eq!(inspect["OpenStdout"], true);
    assert_eq!(inspect["OpenStdin"], false);
    assert_eq!(inspect["ContainerID"], m.inspect("ex-box")["Id"]);
    let (again, status) = post_json(&m, &format!("/exec/{id}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 409, "{again}");
    assert!(again.contains("has already run"), "{again}");
    // A field Husk cannot honour is refused by name, not dropped.
    let (refused, status) = post_json(
        &m,
        "/containers/ex-box/exec",
        r#"{"Cmd":["true"],"Capabilities":["CAP_SYS_ADMIN"]}"#,
    );
    assert_eq!(status, 400, "{refused}");
    assert!(refused.contains("Capabilities"), "{refused}");
    // A start without the upgrade: the stream as the answer's body.
    let (created, _) = post_json(
        &m,
        "/containers/ex-box/exec",
        r#"{"Cmd":["echo","streamed"],"AttachStdout":true}"#,
    );
    let id = serde_json::from_str::<Value>(&created).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (streamed, status) = post_json(&m, &format!("/exec/{id}/start"), "{}");
    assert_eq!(status, 200);
    assert_eq!(streamed.as_bytes()[..8], [1, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(&streamed[8..], "streamed\n");
    // The exec's container went: so did the exec.
    m.ok(&["rm", "-f", "ex-box"]);
    let (_, status) = get_json(&m, &format!("/exec/{id}/json"));
    assert_eq!(status, 404);
}

/// `docker exec -it`: a terminal the CLI sizes at once and on every
/// SIGWINCH, and the shell's exit code.
#[test]
fn docker_exec_it_gives_a_terminal_that_resizes() {
    if !enter_cgroup2_namespace("docker_exec_it_gives_a_terminal_that_resizes") {
        return;
    }
    let m = Machine::start();
    m.ok(&["run", "-d", "--name", "ex-tty", "busybox", "sleep", "1000"]);
    let steps = common::pty::terminal_steps(
        33,
        77,
        serde_json::json!([
            ["send", "echo $((6*7))-$TERM\r"],
            ["expect", "42-"],
            ["send", "exit 5\r"],
        ]),
    );
    let tty = m.docker_command(m.dir(), &["exec", "-it", "ex-tty", "sh"]);
    let (code, screen) = common::pty::run(&steps, &tty);
    assert_eq!(code, 5, "{screen}");
    // The container runs on.
    assert_eq!(m.inspect("ex-tty")["State"]["Running"], true);
    // -it without a terminal: the CLI refuses it before asking.
    let out = m.docker(&["exec", "-it", "ex-tty", "sh"]);
    let (_, stderr) = common::text(&out);
    assert!(stderr.contains("the input device is not a TTY"), "{stderr}");
}

/// Hostile: an exec'd process is its container's kind, not the agent's:
/// the same capabilities, seccomp, no_new_privs, cgroup and namespaces
/// as the container's main process.
#[test]
fn a_docker_exec_has_its_containers_restrictions() {
    if !enter_cgroup2_namespace("a_docker_exec_has_its_containers_restrictions") {
        return;
    }
    let m = Machine::start();
    m.ok(&["run", "-d", "--name", "ex-jail", "busybox", "sleep", "1000"]);
    let init = m.inspect("ex-jail")["State"]["Pid"].as_i64().unwrap();
    m.ok(&["exec", "-d", "ex-jail", "sleep", "4242"]);
    let exec = eventually(Duration::from_secs(20), "the exec'd sleep", || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .find_map(|entry| {
                let pid: i64 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                (cmdline == b"sleep\x004242\x00").then_some(pid)
            })
    });
    let status = |pid: i64| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let keep = [
            "Uid:",
            "Gid:",
            "CapInh:",
            "CapPrm:",
            "CapEff:",
            "CapBnd:",
            "CapAmb:",
            "NoNewPrivs:",
            "Seccomp:",
        ];
        text.lines()
            .filter(|l| keep.iter().any(|k| l.starts_with(k)))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (theirs, ours) = (status(init), status(exec));
    assert_eq!(ours.len(), 9, "{ours:?}");
    assert_eq!(ours, theirs);
    // Docker's default set, not the full one of root on the host (this
    // test's process).
    let host = std::process::id() as i64;
    let eff = |lines: &[String]| lines.iter().find(|l| l.starts_with("CapEff:")).cloned();
    assert_ne!(eff(&ours), eff(&status(host)), "{ours:?}");
    assert!(ours.contains(&"Seccomp:\t2".to_string()), "{ours:?}");
    let cgroup = |pid: i64| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup(exec), cgroup(init));
    assert_ne!(cgroup(exec), cgroup(host));
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"] {
        let link = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(link(exec), link(init), "the {ns} namespace");
    }
    let link = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(link(exec), link(host));
}
