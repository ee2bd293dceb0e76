//! User networks end to end on this host, as root, in namespaces of the
//! test's own: `huskctl network create|ls|inspect|rm`, containers that
//! find each other by name (and alias) through the network's DNS server,
//! names of the outside forwarded to the host's resolver (Debian's
//! dnsmasq, started here) — or a container's `--dns` ones — and to the
//! new ones when the machine's resolv.conf changes, a container of the
//! agent's bridge connected to a user network asking that network's
//! server, no way across networks, none out of an internal one, and all
//! of it back after the agent restarts.

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
        "front",
        "--network",
        "app",
        "--network-alias",
        "www",
        "-p",
        "8088:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("front"),
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
    let web = machine.inspect("front").network.unwrap();
    assert_eq!(web.network, "app");
    assert!(app_contains(&network(&machine, "app"), "front"));

    // By name and by alias, from the same network.
    for host in ["front", "www", "FRONT"] {
        let out = eventually(Duration::from_secs(10), "front by name", || {
            let out = run_on(&machine, "app", &format!("wget -q -O - http://{host}/"));
            out.status.success().then_some(out)
        });
        assert!(
            out_text(&out).contains("hello from front"),
            "{host}: {out:?}"
        );
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
        let out = run_on(&machine, from, "wget -q -O - http://front/");
        assert!(!out.status.success(), "{from} resolved front: {out:?}");
        let out = run_on(&machine, from, &format!("wget -q -O - http://{ip}/"));
        assert!(!out.status.success(), "{from} reached {ip}: {out:?}");
    }
    let out = run_on(&machine, "other", "nslookup peer 10.30.0.1");
    assert!(out_text(&out).contains("10.30.0."), "{out:?}");
    let out = run_on(
        &machine,
        "other",
        &format!("nslookup front {}", app.gateway),
    );
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
    assert!(out_text(&out).contains("hello from front"), "{out:?}");

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
        "front by name after a restart",
        || {
            let out = run_on(&machine, "app", "wget -q -O - http://front/");
            out.status.success().then_some(out)
        },
    );
    assert!(out_text(&out).contains("hello from front"), "{out:?}");
    assert_eq!(
        strip_counters(&ruleset()),
        strip_counters(&rules_before),
        "the table changed across a restart"
    );

    // A network in use stays, its stopped containers counting; once they
    // are gone, it goes.
    machine.ok(&["stop", "-t", "1", "front"]);
    let err = machine.err(&["network", "rm", "app"]);
    assert!(err.contains("in use by front"), "{err}");
    machine.ok(&["rm", "-f", "front"]);
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

/// The name server of the machine (its resolv.conf's first), answering
/// `name` with `answer`, and a second one at `HOST_IP` (not loopback: a
/// `--dns` server the network's server, on the host, can reach).
fn resolvers(name: &str) -> (Dnsmasq, Dnsmasq) {
    let machines = Dnsmasq::start(
        std::net::Ipv4Addr::new(127, 0, 0, 53),
        53,
        name,
        "192.0.2.77".parse().unwrap(),
    );
    let own = Dnsmasq::start(
        HOST_IP.parse().unwrap(),
        53,
        name,
        "192.0.2.78".parse().unwrap(),
    );
    (machines, own)
}

/// `--dns` on a user network, as Docker's: the container still asks the
/// network's server (its names), which forwards the rest to the `--dns`
/// servers, for that container alone; an internal network forwards
/// nothing, `--dns` or not.
#[test]
fn dns_on_a_user_network_is_that_containers_upstream() {
    if !enter_cgroup2_namespace("dns_on_a_user_network_is_that_containers_upstream") {
        return;
    }
    let machine = Machine::new("");
    let (_machines, _own) = resolvers("who.test");
    machine.ok(&["network", "create", "app"]);
    machine.ok(&["network", "create", "--internal", "sealed"]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "dns-web",
        "--network",
        "app",
        IMAGE,
        "sh",
        "-c",
        &httpd("dns-web"),
    ]);
    let app = network(&machine, "app");
    let web = machine
        .inspect("dns-web")
        .network
        .unwrap()
        .ip_address
        .to_string();
    let run_with_dns = |network: &str, script: &str| {
        machine.huskctl(&[
            "run",
            "--rm",
            "--network",
            network,
            "--dns",
            HOST_IP,
            IMAGE,
            "sh",
            "-c",
            &format!("busybox timeout 5 sh -c '{script}'; exit $?"),
        ])
    };
    let out = run_with_dns(
        "app",
        "cat /etc/resolv.conf; nslookup who.test; nslookup dns-web",
    );
    let text = out_text(&out);
    assert!(
        text.contains(&format!("nameserver {}\n", app.gateway)),
        "{text}"
    );
    assert!(!text.contains(&format!("nameserver {HOST_IP}")), "{text}");
    assert!(
        text.contains("192.0.2.78") && !text.contains("192.0.2.77"),
        "{text}"
    );
    assert!(text.contains(&web), "the network's names: {text}");
    // Another container on the network: the machine's name servers.
    let out = run_on(&machine, "app", "nslookup who.test");
    let text = out_text(&out);
    assert!(
        text.contains("192.0.2.77") && !text.contains("192.0.2.78"),
        "{text}"
    );
    // Internal: its names, nothing forwarded.
    let out = run_with_dns("sealed", "nslookup who.test");
    let text = out_text(&out);
    assert!(text.contains("REFUSED"), "{text}");
    assert!(!text.contains("192.0.2.78"), "{text}");
    // A loopback server would be the machine's, where the network's
    // server runs, not the container's own: refused, saying so.
    let err = machine.err(&[
        "create",
        "--name",
        "dns-lo",
        "--network",
        "app",
        "--dns",
        "127.0.0.1",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("loopback"), "{err}");
}

/// A running network's server asks the machine's new name servers as
/// soon as its resolv.conf changes (DHCP), no container started.
#[test]
fn a_networks_upstream_follows_the_machines_resolv_conf() {
    if !enter_cgroup2_namespace("a_networks_upstream_follows_the_machines_resolv_conf") {
        return;
    }
    let machine = Machine::new("");
    let _first = Dnsmasq::start(
        std::net::Ipv4Addr::new(127, 0, 0, 53),
        53,
        "moved.test",
        "192.0.2.77".parse().unwrap(),
    );
    let _second = Dnsmasq::start(
        std::net::Ipv4Addr::new(127, 0, 0, 54),
        53,
        "moved.test",
        "192.0.2.78".parse().unwrap(),
    );
    machine.ok(&["network", "create", "app"]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "app1",
        "--network",
        "app",
        IMAGE,
        "sleep",
        "600",
    ]);
    let lookup = |machine: &Machine| {
        out_text(&machine.huskctl(&[
            "exec",
            "app1",
            "busybox",
            "timeout",
            "5",
            "busybox",
            "nslookup",
            "moved.test",
        ]))
    };
    let text = lookup(&machine);
    assert!(text.contains("192.0.2.77"), "{text}");
    // As the net module writes it: a new file renamed over the old.
    let resolv = machine.dir.path().join("run/resolv.conf");
    let new = machine.dir.path().join("run/.resolv.conf.new");
    std::fs::write(&new, "nameserver 127.0.0.54\nsearch husk.test\n").unwrap();
    std::fs::rename(&new, &resolv).unwrap();
    let text = eventually(Duration::from_secs(10), "the new name server", || {
        let text = lookup(&machine);
        text.contains("192.0.2.78").then_some(text)
    });
    assert!(!text.contains("192.0.2.77"), "{text}");
}

fn resolv_conf_of(machine: &Machine, container: &str) -> String {
    machine.ok(&["exec", container, "busybox", "cat", "/etc/resolv.conf"])
}

/// A container on the agent's bridge (no DNS server there) connected to
/// a user network asks that network's server, which answers it the
/// network's names and forwards the rest (its `--dns` servers, if any);
/// its resolv.conf is the host's again once disconnected. An internal
/// network connected alone changes nothing: its server would refuse
/// every outside name.
#[test]
fn a_bridge_container_connected_to_a_user_network_resolves_its_names() {
    if !enter_cgroup2_namespace("a_bridge_container_connected_to_a_user_network_resolves_its_names")
    {
        return;
    }
    let mut machine = Machine::new("");
    let (_machines, _own) = resolvers("outside.test");
    machine.ok(&["network", "create", "app"]);
    machine.ok(&["network", "create", "--internal", "sealed"]);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "b-web",
        "--network",
        "app",
        IMAGE,
        "sh",
        "-c",
        &httpd("b-web"),
    ]);
    machine.ok(&["run", "-d", "--name", "b-solo", IMAGE, "sleep", "600"]);
    machine.ok(&[
        "run", "-d", "--name", "b-own", "--dns", HOST_IP, IMAGE, "sleep", "600",
    ]);
    let app = network(&machine, "app");
    let gateway = format!("nameserver {}\n", app.gateway);
    let hosts = resolv_conf_of(&machine, "b-solo");
    assert!(hosts.contains("nameserver 192.0.2.53\n"), "{hosts}");

    machine.ok(&["network", "connect", "sealed", "b-solo"]);
    assert_eq!(resolv_conf_of(&machine, "b-solo"), hosts, "internal alone");
    machine.ok(&["network", "connect", "app", "b-solo"]);
    machine.ok(&["network", "connect", "app", "b-own"]);
    let text = resolv_conf_of(&machine, "b-solo");
    assert!(text.starts_with(&gateway), "{text}");
    let lookup = |machine: &Machine, container: &str, name: &str| {
        out_text(&machine.huskctl(&[
            "exec", container, "busybox", "timeout", "5", "busybox", "nslookup", name,
        ]))
    };
    let web = machine
        .inspect("b-web")
        .network
        .unwrap()
        .ip_address
        .to_string();
    let check = |machine: &Machine| {
        let text = lookup(machine, "b-solo", "b-web");
        assert!(text.contains(&web), "{text}");
        let text = lookup(machine, "b-solo", "outside.test");
        assert!(text.contains("192.0.2.77"), "the machine's servers: {text}");
        let text = lookup(machine, "b-own", "outside.test");
        assert!(text.contains("192.0.2.78"), "its --dns server: {text}");
        let out = machine.huskctl(&[
            "exec",
            "b-solo",
            "busybox",
            "timeout",
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://b-web/",
        ]);
        assert!(out_text(&out).contains("hello from b-web"), "{out:?}");
    };
    check(&machine);
    // The same after the agent's restart and the container's.
    machine.crash_agent();
    machine.start_agent();
    check(&machine);
    machine.ok(&["stop", "-t", "1", "b-solo"]);
    machine.ok(&["start", "b-solo"]);
    assert!(resolv_conf_of(&machine, "b-solo").starts_with(&gateway));
    check(&machine);

    machine.ok(&["network", "disconnect", "app", "b-solo"]);
    assert_eq!(
        resolv_conf_of(&machine, "b-solo"),
        hosts,
        "after disconnect"
    );
    let text = lookup(&machine, "b-solo", "b-web");
    assert!(!text.contains(&web), "{text}");
}
