//! `docker events` (Debian's `/usr/bin/docker` 20.10) through Husk's
//! Docker API, as a user types it: live with filters while containers,
//! networks and volumes come and go; `--since`/`--until` replaying what
//! happened and ending by itself; and docker-compose 1.29's attached
//! `up`, which follows the events to print the logs of a container
//! restarted under it, and ends when its containers have exited. As root, in a private mount
//! and network namespace with cgroup2, as the other container tests.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::docker::Machine;
use common::enter_cgroup2_namespace;
use common::follow::Following;

const WAIT: Duration = Duration::from_secs(30);

fn events(m: &Machine, args: &[&str]) -> Following {
    let mut all = vec!["events"];
    all.extend_from_slice(args);
    Following::start(
        &mut m.docker_command(m.dir(), &all),
        &format!("docker {all:?}"),
    )
}

fn unix_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

#[test]
fn docker_events_follow_and_replay_what_happens() {
    if !enter_cgroup2_namespace("docker_events_follow_and_replay_what_happens") {
        return;
    }
    let m = Machine::start();
    let format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}";
    let mut containers = events(&m, &["--filter", "container=ev-box", "--format", format]);
    let mut by_label = events(
        &m,
        &[
            "--filter",
            "label=tier=front",
            "--filter",
            "event=die",
            "--format",
            format,
        ],
    );
    // A volume's name is its id; a network's is an attribute (dockerd's).
    let mut others = events(
        &m,
        &[
            "--filter",
            "type=network",
            "--filter",
            "type=volume",
            "--format",
            "{{.Type}} {{.Action}} {{if eq .Type \"volume\"}}{{.Actor.ID}}{{else}}{{.Actor.Attributes.name}}{{end}}",
        ],
    );
    // The CLI has its stream once `docker events` printed nothing and
    // still runs: wait for the agent to see the three subscribers.
    std::thread::sleep(Duration::from_secs(2));
    let since = unix_now();

    let out = m.docker(&[
        "run",
        "--name",
        "ev-box",
        "--label",
        "tier=front",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    m.ok(&["run", "--name", "ev-other", "busybox", "true"]);
    m.ok(&["rm", "ev-box", "ev-other"]);
    m.ok(&["network", "create", "ev-net"]);
    m.ok(&["volume", "create", "ev-vol"]);
    m.ok(&["network", "rm", "ev-net"]);
    m.ok(&["volume", "rm", "ev-vol"]);

    for line in [
        "container create ev-box",
        "container start ev-box",
        "container die ev-box 3",
        "container destroy ev-box",
    ] {
        containers.wait_for(line, WAIT);
    }
    assert!(
        !containers.seen.iter().any(|l| l.contains("ev-other")),
        "the filter let another container by: {:?}",
        containers.seen
    );
    by_label.wait_for("container die ev-box 3", WAIT);
    for line in [
        "network create ev-net",
        "volume create ev-vol",
        "network destroy ev-net",
        "volume destroy ev-vol",
    ] {
        others.wait_for(line, WAIT);
    }
    assert!(
        !others.seen.iter().any(|l| l.starts_with("container")),
        "{:?}",
        others.seen
    );
    assert!(
        !by_label
            .seen
            .iter()
            .any(|l| l.contains("ev-other") || l.contains("start")),
        "{:?}",
        by_label.seen
    );

    // What happened, replayed: the stream ends at --until by itself.
    let until = unix_now();
    let replay = events(
        &m,
        &[
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    let (code, lines) = replay.finish(WAIT);
    assert_eq!(code, Some(0), "{lines:?}");
    let ev_box: Vec<&str> = lines
        .iter()
        .filter(|l| l.ends_with(" ev-box"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(ev_box, ["create", "start", "die", "destroy"], "{lines:?}");
    assert!(lines.iter().any(|l| l == "destroy ev-other"), "{lines:?}");

    // A filter dockerd does not know is refused, naming it.
    let refused = m.fails(&["events", "--filter", "colour=red", "--until", &until]);
    assert!(refused.contains("invalid filter 'colour'"), "{refused}");
}

#[test]
fn docker_compose_up_attached_prints_the_logs_and_ends_with_its_containers() {
    if !enter_cgroup2_namespace(
        "docker_compose_up_attached_prints_the_logs_and_ends_with_its_containers",
    ) {
        return;
    }
    let m = Machine::start();
    let dir = m.path("evapp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        r#"version: "3"
services:
  counter:
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3; do echo count $$i; sleep 1; done"]
"#,
    )
    .unwrap();
    let mut command = m.compose_command(&dir, &["up", "--no-color"]);
    let mut up = Following::start(&mut command, "docker-compose up");
    up.wait_for("count 1", Duration::from_secs(90));
    // Restarted under it: only the events (its die, its start) tell
    // compose to follow the new run's output.
    // (The new run's first line may come before compose attaches to it,
    // as with dockerd: attaching gives what comes from then on.)
    m.ok(&["restart", "-t", "0", "evapp_counter_1"]);
    up.wait_for(
        "evapp_counter_1 exited with code 137",
        Duration::from_secs(30),
    );
    up.wait_for("count 3", Duration::from_secs(30));
    let (code, lines) = up.finish(Duration::from_secs(60));
    let text = lines.join("\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("evapp_counter_1 exited with code 0"),
        "{text}"
    );
    assert!(!text.contains("Traceback"), "{text}");
}
