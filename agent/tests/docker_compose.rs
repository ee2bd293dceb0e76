//! Debian's docker-compose (1.29, `/usr/bin/docker-compose`) against the
//! agent's Docker Engine API, run as a user types it from the directory
//! of a docker-compose.yml: two busybox services on a network of the
//! project's, one serving a page from a named volume on a published
//! port, the other fetching it by the service's name; `up -d`, `ps`,
//! `logs`, the port from the machine, `down` (containers and network
//! gone) and `down -v` (the volume too). As root, in a private mount and
//! network namespace with cgroup2, as the other container tests.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::docker::{COMMAND_LIMIT, MACHINE_IP, Machine, add_uplink};
use common::{enter_cgroup2_namespace, eventually, run_with_deadline, text};

/// `docker-compose ARGS` in `dir` against the agent, within
/// [`COMMAND_LIMIT`].
fn compose(m: &Machine, dir: &Path, args: &[&str]) -> Output {
    run_with_deadline(
        &mut m.compose_command(dir, args),
        None,
        COMMAND_LIMIT,
        &format!("docker-compose {args:?}"),
    )
}

/// stdout and stderr, asserting success.
fn compose_ok(m: &Machine, dir: &Path, args: &[&str]) -> String {
    let out = compose(m, dir, args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "docker-compose {args:?}: {:?}\n{stdout}{stderr}",
        out.status
    );
    format!("{stdout}{stderr}")
}

fn wget(url: &str) -> Output {
    Command::new("timeout")
        .args(["5", "busybox", "wget", "-q", "-O", "-", url])
        .output()
        .unwrap()
}

/// The application: `web` serves a page it writes into the named volume
/// `pages`, on a published port; `client` fetches it by the service's
/// name on the project's network `front` and prints it.
fn compose_file(host_port: u16) -> String {
    format!(
        r#"version: "3"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello from web > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
    ports:
      - "{host_port}:8080"
    volumes:
      - pages:/www
    networks:
      - front
  client:
    image: busybox
    command: ["sh", "-c", "for i in $$(seq 1 100); do busybox wget -q -O - http://web:8080/ && exit 0; sleep 0.2; done; echo web never answered; exit 1"]
    depends_on:
      - web
    networks:
      - front
networks:
  front: {{}}
volumes:
  pages: {{}}
"#
    )
}

#[test]
fn docker_compose_runs_a_two_service_application() {
    if !enter_cgroup2_namespace("docker_compose_runs_a_two_service_application") {
        return;
    }
    add_uplink();
    let m = Machine::start();
    // The project is named after its directory, as docker-compose does.
    let dir = m.path("shop");
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    std::fs::write(dir.join("docker-compose.yml"), compose_file(port)).unwrap();

    let up = compose_ok(&m, &dir, &["up", "-d"]);
    for line in [
        "Creating network \"shop_front\" with the default driver",
        "Creating volume \"shop_pages\" with default driver",
        "Creating shop_web_1",
        "Creating shop_client_1",
    ] {
        assert!(up.contains(line), "no {line:?} in:\n{up}");
    }
    // The network as Docker shows it, with compose's labels.
    let network: serde_json::Value =
        serde_json::from_str(&m.ok(&["network", "inspect", "shop_front"])).unwrap();
    assert_eq!(network[0]["Driver"], "bridge", "{network}");
    assert_eq!(
        network[0]["Labels"]["com.docker.compose.project"], "shop",
        "{network}"
    );
    assert_eq!(
        network[0]["Labels"]["com.docker.compose.network"], "front",
        "{network}"
    );
    let web = m.inspect("shop_web_1");
    let endpoint = &web["NetworkSettings"]["Networks"]["shop_front"];
    let aliases = endpoint["Aliases"].as_array().unwrap();
    assert!(aliases.contains(&"web".into()), "{endpoint}");
    let short_id = &web["Id"].as_str().unwrap()[..12];
    assert!(aliases.contains(&short_id.into()), "{endpoint}");
    assert_eq!(endpoint["NetworkID"], network[0]["Id"], "{endpoint}");
    assert!(
        endpoint["IPAddress"].as_str().unwrap().starts_with("172."),
        "{endpoint}"
    );

    // The client fetched the page by the service's name, and exited.
    let logs = eventually(Duration::from_secs(30), "the client's page", || {
        let logs = compose_ok(&m, &dir, &["logs", "client"]);
        logs.contains("hello from web").then_some(logs)
    });
    assert!(logs.contains("client_1"), "{logs}");
    eventually(Duration::from_secs(20), "the client's exit", || {
        let status = m.ok(&[
            "ps",
            "-a",
            "--filter",
            "name=shop_client_1",
            "--format",
            "{{.Status}}",
        ]);
        status.starts_with("Exited (0)").then_some(())
    });
    let ps = compose_ok(&m, &dir, &["ps"]);
    let web_row = ps
        .lines()
        .find(|l| l.starts_with("shop_web_1 "))
        .unwrap_or_else(|| panic!("no web in:\n{ps}"));
    assert!(web_row.contains(" Up "), "{ps}");
    assert!(
        web_row.contains(&format!("0.0.0.0:{port}->8080/tcp")),
        "{ps}"
    );
    let client_row = ps
        .lines()
        .find(|l| l.starts_with("shop_client_1 "))
        .unwrap_or_else(|| panic!("no client in:\n{ps}"));
    assert!(client_row.contains("Exit 0"), "{ps}");

    // The published port answers on the machine's address.
    let page = eventually(Duration::from_secs(10), "the published port", || {
        let out = wget(&format!("http://{MACHINE_IP}:{port}/"));
        out.status.success().then(|| text(&out).0)
    });
    assert_eq!(page, "hello from web\n");

    // A second `up` finds everything as it left it.
    let again = compose_ok(&m, &dir, &["up", "-d"]);
    assert!(again.contains("shop_web_1 is up-to-date"), "{again}");

    // down: the containers and the network go, the volume stays.
    let down = compose_ok(&m, &dir, &["down"]);
    for line in [
        "Stopping shop_web_1",
        "Removing shop_client_1",
        "Removing shop_web_1",
        "Removing network shop_front",
    ] {
        assert!(down.contains(line), "no {line:?} in:\n{down}");
    }
    assert_eq!(m.ok(&["ps", "-a", "--format", "{{.Names}}"]), "");
    let networks = m.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("shop_front"), "{networks}");
    assert_eq!(m.ok(&["volume", "ls", "-q"]), "shop_pages\n");

    // down -v: the named volume too.
    compose_ok(&m, &dir, &["up", "-d"]);
    let down = compose_ok(&m, &dir, &["down", "-v"]);
    assert!(down.contains("Removing volume shop_pages"), "{down}");
    assert_eq!(m.ok(&["ps", "-a", "--format", "{{.Names}}"]), "");
    assert_eq!(m.ok(&["volume", "ls", "-q"]), "");
    let networks = m.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(networks, "bridge\nhost\nnone\n");
}
