//! User networks end to end on this host, as root, in namespaces of the
//! test's own: `huskctl network create|ls|inspect|rm`, containers that
//! find each other by name (and alias) through the network's DNS server,
//! names of the outside forwarded to the host's resolver (Debian's
//! dnsmasq, started here), no way across networks, none out of an
//! internal one, and all of it back after the agent restarts.

mod common;

use std::process::Command;
use std::time::Duration;

use husk_api::networks::Network;
use husk_testkit::dnsmasq::Dnsmasq;

use common::net_machine::*;
use common::{enter_cgroup2_namespace, eventually};

fn network(machine: &Machine, name: &str) -> Network {
    serde_json::from_str(&machine.ok(&["network", "inspect", name])).unwrap()
}

/// A one-off container on `network` running `script` (with a deadline:
/// busybox's tools as PID 1 would ignore `timeout`'s signal).
fn run_on(machine: &Machine, network: &str, script: &str) -> std::process::Output {
    machine.huskctl(&[
        "run",
        "--rm",
        "--network",
        network,
        IMAGE,
        "sh",
        "-c",
        &format!("busybox timeout 5 sh -c '{script}'; exit $?"),
    ])
}

fn out_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_nothing_across() {
    if !enter_cgroup2_namespace(
        "containers_on_a_user_network_find_each_other_by_name_and_nothing_across",
    ) {
        return;
    }
    // The host's resolver (the machine's resolv.conf lists 127.0.0.53
    // first), knowing one outside name. It holds port 53 of every address
    // of the host (wildcard sockets, as a host-network DNS server may):
    // the networks' own servers must not need the gateways' port 53.
    let _resolver = Dnsmasq::start(
        std::net::Ipv4Addr::UNSPECIFIED,
        53,
        "outside.test",
        "192.0.2.77".parse().unwrap(),
    );
    let err = std::net::UdpSocket::bind("0.0.0.0:53").unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::AddrInUse,
        "0.0.0.0:53: {err}"
    );
    let mut machine = Machine::new("");
    machine.outside.serve(8000, "outside", machine.dir.path());
    assert_eq!(machine.ok(&["network", "create", "app"]).trim(), "app");
    machine.ok(&["network", "create", "--subnet", "10.30.0.0/24", "other"]);
    machine.ok(&["network", "create", "--internal", "sealed"]);
    let app = network(&machine, "app");
    assert_eq!(app.subnet, "172.18.0.0/16", "{app:?}");
    assert!(app.dns && !app.internal && !app.builtin, "{app:?}");
    let ls = machine.ok(&["network", "ls"]);
    for name in ["bridge", "app", "other", "sealed"] {
        assert!(
            ls.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from:\n{ls}"
        );
    }

    machine.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "--network-alias",
        "www",
        "-p",
        "8088:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("web"),
    ]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "other",
        IMAGE,
        "sh",
        "-c",
        &httpd("peer"),
    ]);
    let web = machine.inspect("web").network.unwrap();
    assert_eq!(web.network, "app");
    assert!(app_contains(&network(&machine, "app"), "web"));

    // By name and by alias, from the same network.
    for host in ["web", "www", "WEB"] {
        let out = eventually(Duration::from_secs(10), "web by name", || {
            let out = run_on(&machine, "app", &format!("wget -q -O - http://{host}/"));
            out.status.success().then_some(out)
        });
        assert!(out_text(&out).contains("hello from web"), "{host}: {out:?}");
    }
    // Outside names through the host's resolver; the outside through NAT.
    let out = run_on(&machine, "app", "nslookup outside.test");
    assert!(out_text(&out).contains("192.0.2.77"), "{out:?}");
    let out = run_on(
        &machine,
        "app",
        &format!("wget -q -O - http://{OUTSIDE_IP}:8000/"),
    );
    assert!(out_text(&out).contains("outside"), "{out:?}");

    // Not from another network: neither the name nor the address, nor
    // through the other network's DNS server; its own peer, yes.
    let ip = web.ip_address.to_string();
    let out = eventually(Duration::from_secs(10), "peer by name on other", || {
        let out = run_on(&machine, "other", "wget -q -O - http://peer/");
        out.status.success().then_some(out)
    });
    assert!(out_text(&out).contains("hello from peer"), "{out:?}");
    for from in ["other", "bridge"] {
        let out = run_on(&machine, from, "wget -q -O - http://web/");
        assert!(!out.status.success(), "{from} resolved web: {out:?}");
        let out = run_on(&machine, from, &format!("wget -q -O - http://{ip}/"));
        assert!(!out.status.success(), "{from} reached {ip}: {out:?}");
    }
    let out = run_on(&machine, "other", "nslookup peer 10.30.0.1");
    assert!(out_text(&out).contains("10.30.0."), "{out:?}");
    let out = run_on(&machine, "other", &format!("nslookup web {}", app.gateway));
    assert!(
        !out_text(&out).contains(&ip),
        "app's DNS answered other: {out:?}"
    );
    // A published port is the machine's: any network reaches it.
    let out = run_on(
        &machine,
        "other",
        &format!("wget -q -O - http://{HOST_IP}:8088/"),
    );
    assert!(out_text(&out).contains("hello from web"), "{out:?}");

    // An internal network: its containers reach each other, nothing out.
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "vault",
        "--network",
        "sealed",
        IMAGE,
        "sh",
        "-c",
        &httpd("vault"),
    ]);
    let out = eventually(Duration::from_secs(10), "vault by name", || {
        let out = run_on(&machine, "sealed", "wget -q -O - http://vault/");
        out.status.success().then_some(out)
    });
    assert!(out_text(&out).contains("hello from vault"), "{out:?}");
    let out = run_on(
        &machine,
        "sealed",
        &format!("wget -q -O - http://{OUTSIDE_IP}:8000/"),
    );
    assert!(
        !out.status.success(),
        "an internal network got out: {out:?}"
    );
    // Not even through another network's published port.
    let out = run_on(
        &machine,
        "sealed",
        &format!("wget -q -O - http://{HOST_IP}:8088/"),
    );
    assert!(
        !out.status.success(),
        "an internal network reached a published port: {out:?}"
    );
    // Its DNS server answers, and refuses what is not the network's.
    let out = run_on(&machine, "sealed", "nslookup outside.test");
    assert!(out_text(&out).contains("REFUSED"), "{out:?}");

    // An agent that restarts brings the DNS servers and the rules back,
    // each rule once.
    let rules_before = ruleset();
    machine.crash_agent();
    machine.start_agent();
    let out = eventually(
        Duration::from_secs(10),
        "web by name after a restart",
        || {
            let out = run_on(&machine, "app", "wget -q -O - http://web/");
            out.status.success().then_some(out)
        },
    );
    assert!(out_text(&out).contains("hello from web"), "{out:?}");
    assert_eq!(
        strip_counters(&ruleset()),
        strip_counters(&rules_before),
        "the table changed across a restart"
    );

    // A network in use stays, its stopped containers counting; once they
    // are gone, it goes.
    machine.ok(&["stop", "-t", "1", "web"]);
    let err = machine.err(&["network", "rm", "app"]);
    assert!(err.contains("in use by web"), "{err}");
    machine.ok(&["rm", "-f", "web"]);
    assert_eq!(machine.ok(&["network", "rm", "app"]).trim(), "app");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&app.interface),
        "the bridge {} is left",
        app.interface
    );
    assert!(!ruleset().contains(&app.interface), "its rules are left");
    let err = machine.err(&["network", "inspect", "app"]);
    assert!(err.contains("no such network: app"), "{err}");
}

#[test]
fn network_requests_that_cannot_work_are_refused_by_name() {
    if !enter_cgroup2_namespace("network_requests_that_cannot_work_are_refused_by_name") {
        return;
    }
    let machine = Machine::new("");
    machine.ok(&["network", "create", "--subnet", "10.40.0.0/16", "one"]);
    for (args, part) in [
        (vec!["one"], "a network named one already exists"),
        (
            vec!["--subnet", "10.40.8.0/24", "two"],
            "overlaps network one",
        ),
        (
            vec!["--subnet", "172.17.5.0/24", "two"],
            "overlaps network bridge",
        ),
        (vec!["--subnet", "10.50.0.1/24", "two"], "host bits"),
        (
            vec!["--subnet", "10.50.0.0/33", "two"],
            "is not an IPv4 subnet",
        ),
        (vec!["--subnet", "nonsense", "two"], "is not an IPv4 subnet"),
        (vec!["--subnet", "169.254.0.0/16", "two"], "link-local"),
        (vec!["--subnet-v6", "fe80::/64", "two"], "link-local"),
        (vec!["host"], "reserved"),
        (vec!["--", "-bad"], "network name"),
        (vec!["a/b"], "network name"),
    ] {
        let mut full = vec!["network", "create"];
        full.extend(args.iter().copied());
        let err = machine.err(&full);
        assert!(err.contains(part), "{full:?}: {err}");
    }
    // Nothing half-made: only `bridge` and `one`.
    let ls = machine.ok(&["network", "ls"]);
    assert_eq!(ls.lines().count(), 3, "{ls}");
    let err = machine.err(&["network", "rm", "bridge"]);
    assert!(err.contains("cannot be removed"), "{err}");
    let err = machine.err(&["network", "rm", "nope"]);
    assert!(err.contains("no such network: nope"), "{err}");
    let err = machine.err(&["run", "--rm", "--network", "nope", IMAGE, "true"]);
    assert!(err.contains("no such network: nope"), "{err}");
    machine.ok(&["network", "create", "--internal", "sealed"]);
    let err = machine.err(&[
        "create",
        "--name",
        "pub",
        "--network",
        "sealed",
        "-p",
        "8080:80",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("sealed is internal"), "{err}");
    let err = machine.err(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "--network-alias",
        "a..b",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("labels of 1 to 63"), "{err}");
    let err = machine.err(&["run", "--rm", "--network-alias", "x", IMAGE, "true"]);
    assert!(err.contains("aliases are names on a user network"), "{err}");
    // IPv4 only, and a prefix of one's own.
    machine.ok(&["network", "create", "--ipv6=false", "v4only"]);
    assert_eq!(network(&machine, "v4only").subnet_v6, None);
    machine.ok(&["network", "create", "--subnet-v6", "fd00:77::/64", "v6own"]);
    let v6own = network(&machine, "v6own");
    assert_eq!(v6own.subnet_v6.as_deref(), Some("fd00:77::/64"));
    assert_eq!(v6own.gateway_v6, Some("fd00:77::1".parse().unwrap()));
    let err = machine.err(&[
        "network",
        "create",
        "--subnet-v6",
        "fd00:77::/80",
        "v6clash",
    ]);
    assert!(err.contains("overlaps network v6own"), "{err}");
    // The definitions survive a restart of the agent.
    let mut machine = machine;
    machine.crash_agent();
    machine.start_agent();
    let one = network(&machine, "one");
    assert_eq!(one.subnet, "10.40.0.0/16");
    assert!(network(&machine, "sealed").internal);
}

fn app_contains(network: &Network, container: &str) -> bool {
    network
        .containers
        .iter()
        .any(|e| e.container == container && e.attached)
}

/// The table without its counters (which move with traffic).
fn strip_counters(table: &str) -> String {
    table
        .lines()
        .map(|line| match line.find("counter packets") {
            Some(at) => line[..at].to_owned(),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// README's user network commands, as a user types them (after
/// `--socket`, which says where this test's agent is).
#[test]
fn the_readme_user_network_commands_work_as_written() {
    if !enter_cgroup2_namespace("the_readme_user_network_commands_work_as_written") {
        return;
    }
    let commands = readme_commands("User networks give containers names");
    let commands: Vec<Vec<&str>> = commands
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    let machine = Machine::new("");
    let archive = machine.dir.path().join("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive()).unwrap();
    machine.ok(&["image", "import", archive.to_str().unwrap()]);
    for command in &commands[..2] {
        assert_eq!(command[0], "huskctl", "{command:?}");
        machine.ok(&command[1..]);
    }
    // The last one, again until the server in the second is up.
    let answer = eventually(Duration::from_secs(10), "the README's wget", || {
        let out = machine.huskctl(&commands[2][1..]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(answer, "hello from web-1\n");
}

/// `network connect` and `disconnect`, on a running container and on a
/// stopped one, kept across its restarts and the agent's.
#[test]
fn a_container_connected_to_another_network_reaches_it_until_disconnected() {
    if !enter_cgroup2_namespace(
        "a_container_connected_to_another_network_reaches_it_until_disconnected",
    ) {
        return;
    }
    let mut machine = Machine::new("");
    machine.ok(&["network", "create", "front"]);
    machine.ok(&["network", "create", "back"]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "back",
        IMAGE,
        "sh",
        "-c",
        &httpd("db"),
    ]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "front",
        IMAGE,
        "sleep",
        "600",
    ]);
    let fetch = |machine: &Machine, host: &str| {
        machine.huskctl(&[
            "exec",
            "app",
            "busybox",
            "timeout",
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{host}/"),
        ])
    };
    let out = fetch(&machine, "db");
    assert!(
        !out.status.success(),
        "app reached db before connect: {out:?}"
    );

    machine.ok(&["network", "connect", "--alias", "api", "back", "app"]);
    let info = machine.inspect("app");
    let connected = &info.connected[0];
    assert_eq!(connected.network, "back");
    let endpoint = connected.endpoint.as_ref().expect("its place on back");
    assert!(
        endpoint.ip_address.to_string().starts_with("172.19."),
        "{endpoint:?}"
    );
    let out = eventually(
        Duration::from_secs(10),
        "db from app once connected",
        || {
            let out = fetch(&machine, "db");
            out.status.success().then_some(out)
        },
    );
    assert!(out_text(&out).contains("hello from db"), "{out:?}");
    // db finds app on back by its alias there.
    let out = machine.huskctl(&["exec", "db", "busybox", "nslookup", "api"]);
    assert!(
        out_text(&out).contains(&endpoint.ip_address.to_string()),
        "{out:?}"
    );
    let err = machine.err(&["network", "connect", "back", "app"]);
    assert!(err.contains("already on network back"), "{err}");
    let err = machine.err(&["network", "rm", "back"]);
    assert!(err.contains("in use by app, db"), "{err}");

    // Across the agent's restart and the container's.
    machine.crash_agent();
    machine.start_agent();
    let out = fetch(&machine, "db");
    assert!(out.status.success(), "after the agent's restart: {out:?}");
    machine.ok(&["stop", "-t", "1", "app"]);
    machine.ok(&["start", "app"]);
    let out = eventually(Duration::from_secs(10), "db after app's restart", || {
        let out = fetch(&machine, "db");
        out.status.success().then_some(out)
    });
    assert!(out_text(&out).contains("hello from db"), "{out:?}");

    machine.ok(&["network", "disconnect", "back", "app"]);
    assert!(machine.inspect("app").connected.is_empty());
    let out = fetch(&machine, "db");
    assert!(
        !out.status.success(),
        "app reached db after disconnect: {out:?}"
    );
    let err = machine.err(&["network", "disconnect", "front", "app"]);
    assert!(err.contains("was created on network front"), "{err}");
    let err = machine.err(&["network", "disconnect", "back", "app"]);
    assert!(err.contains("is not connected to network back"), "{err}");

    // A stopped container is connected when it starts.
    machine.ok(&["stop", "-t", "1", "app"]);
    machine.ok(&["network", "connect", "back", "app"]);
    machine.ok(&["start", "app"]);
    let out = eventually(Duration::from_secs(10), "db once app starts", || {
        let out = fetch(&machine, "db");
        out.status.success().then_some(out)
    });
    assert!(out_text(&out).contains("hello from db"), "{out:?}");
    let err = machine.err(&["network", "connect", "back", "nope"]);
    assert!(err.contains("no such container: nope"), "{err}");
    let err = machine.err(&["network", "connect", "nope", "app"]);
    assert!(err.contains("no such network: nope"), "{err}");
}
