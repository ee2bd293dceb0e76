//! Docker's own CLI (Debian's `docker` 20.10) and its network verbs
//! against the agent's Docker Engine API: `network create --subnet
//! --label`, `ls` (with filters), `inspect` (by name and id prefix, the
//! built-in bridge, host and none), `run --network` with two containers
//! finding each other by name, `connect --alias`, `disconnect`, `rm`
//! (refused while in use, and of a built-in network), `prune`; and what
//! is refused by name: a subnet over the agent's bridge or the
//! machine's uplink, drivers other than bridge, options Husk cannot
//! honour, names that are paths. As root, in a private mount and
//! network namespace with cgroup2, as the other container tests.

mod common;

use std::time::Duration;

use common::docker::{Machine, add_uplink};
use common::{enter_cgroup2_namespace, eventually};
use serde_json::Value;

/// A web server in a container: `hello from NAME` on port 8080.
fn httpd(name: &str) -> String {
    format!(
        "mkdir -p /www && echo hello from {name} > /www/index.html && exec busybox httpd -f -p 8080 -h /www"
    )
}

/// `busybox wget URL` from a one-off container on `network`, within a
/// deadline (busybox's tools as PID 1 ignore `timeout`'s signal, so it
/// runs under a shell).
fn wget_on(m: &Machine, network: &str, url: &str) -> std::process::Output {
    m.docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &format!("busybox timeout 5 busybox wget -q -O - {url}; exit $?"),
    ])
}

fn inspect_network(m: &Machine, name: &str) -> Value {
    let json: Value = serde_json::from_str(&m.ok(&["network", "inspect", name])).unwrap();
    json[0].clone()
}

fn names(m: &Machine, args: &[&str]) -> Vec<String> {
    let mut all = vec!["network", "ls", "--format", "{{.Name}}"];
    all.extend_from_slice(args);
    m.ok(&all).lines().map(str::to_owned).collect()
}

#[test]
fn docker_cli_manages_networks() {
    if !enter_cgroup2_namespace("docker_cli_manages_networks") {
        return;
    }
    let m = Machine::start();
    let id = m.ok(&[
        "network",
        "create",
        "--subnet",
        "10.50.0.0/24",
        "--label",
        "team=shop",
        "app",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");

    // The built-in ones and ours (the CLI sorts them by name).
    assert_eq!(names(&m, &[]), ["app", "bridge", "host", "none"]);
    let table = m.ok(&["network", "ls"]);
    let row = table
        .lines()
        .find(|l| l.contains(" app "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("bridge") && row.ends_with("local"), "{row}");
    assert_eq!(names(&m, &["--filter", "label=team=shop"]), ["app"]);
    assert_eq!(names(&m, &["--filter", "name=ap"]), ["app"]);
    assert_eq!(
        names(&m, &["--filter", "type=builtin"]),
        ["bridge", "host", "none"]
    );
    assert_eq!(names(&m, &["--filter", "driver=null"]), ["none"]);

    let app = inspect_network(&m, "app");
    assert_eq!(app["Id"], id, "{app}");
    assert_eq!(app["Name"], "app");
    assert_eq!(app["Driver"], "bridge");
    assert_eq!(app["Scope"], "local");
    assert_eq!(app["EnableIPv6"], false);
    assert_eq!(app["IPAM"]["Driver"], "default");
    assert_eq!(app["IPAM"]["Config"][0]["Subnet"], "10.50.0.0/24", "{app}");
    assert_eq!(app["IPAM"]["Config"][0]["Gateway"], "10.50.0.1", "{app}");
    assert_eq!(app["Labels"]["team"], "shop", "{app}");
    assert_eq!(app["Containers"], serde_json::json!({}), "{app}");
    // By an id prefix, as Docker resolves it.
    assert_eq!(inspect_network(&m, &id[..10])["Name"], "app");
    let bridge = inspect_network(&m, "bridge");
    assert_eq!(bridge["Driver"], "bridge");
    assert_eq!(bridge["Options"]["com.docker.network.bridge.name"], "husk0");
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(inspect_network(&m, "host")["Driver"], "host");
    assert_eq!(inspect_network(&m, "none")["Driver"], "null");
    // Husk's own API shows the labels too.
    let husk: Value = serde_json::from_str(
        &m.agent
            .as_ref()
            .unwrap()
            .huskctl_ok(&["network", "inspect", "app"]),
    )
    .unwrap();
    assert_eq!(husk["labels"]["team"], "shop", "{husk}");
    // And huskctl gives a network labels Docker shows.
    let agent = m.agent.as_ref().unwrap();
    agent.huskctl_ok(&["network", "create", "--label", "owner=ops", "ops"]);
    assert_eq!(inspect_network(&m, "ops")["Labels"]["owner"], "ops");
    agent.huskctl_ok(&["network", "rm", "ops"]);

    // Two containers on it find each other by name.
    m.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "busybox",
        "sh",
        "-c",
        &httpd("web"),
    ]);
    let page = eventually(Duration::from_secs(20), "web by name", || {
        let out = wget_on(&m, "app", "http://web:8080/");
        out.status.success().then(|| common::text(&out).0)
    });
    assert_eq!(page, "hello from web\n");
    let web = m.inspect("web");
    let web_id = web["Id"].as_str().unwrap().to_owned();
    let endpoint = &web["NetworkSettings"]["Networks"]["app"];
    assert_eq!(endpoint["NetworkID"], id, "{endpoint}");
    assert_eq!(endpoint["IPAddress"], "10.50.0.2", "{endpoint}");
    // dockerd's alias of a container on a user network: its short id,
    // which resolves too.
    assert_eq!(endpoint["Aliases"], serde_json::json!([&web_id[..12]]));
    let out = wget_on(&m, "app", &format!("http://{}:8080/", &web_id[..12]));
    assert!(out.status.success(), "{out:?}");
    let app = inspect_network(&m, "app");
    let entry = &app["Containers"][&web_id];
    assert_eq!(entry["Name"], "web", "{app}");
    assert_eq!(entry["IPv4Address"], "10.50.0.2/24", "{app}");
    assert_eq!(entry["MacAddress"], "02:42:0a:32:00:02", "{app}");
    assert_eq!(entry["EndpointID"], endpoint["EndpointID"], "{app}");

    // Another network, and web connected to it under an alias.
    m.ok(&["network", "create", "other"]);
    let other = inspect_network(&m, "other");
    assert_eq!(other["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    m.ok(&["network", "connect", "--alias", "cache", "other", "web"]);
    let aliases = m.inspect("web")["NetworkSettings"]["Networks"]["other"]["Aliases"].clone();
    assert!(
        aliases.as_array().unwrap().contains(&"cache".into()),
        "{aliases}"
    );
    let page = eventually(Duration::from_secs(10), "web as cache", || {
        let out = wget_on(&m, "other", "http://cache:8080/");
        out.status.success().then(|| common::text(&out).0)
    });
    assert_eq!(page, "hello from web\n");
    m.ok(&["network", "disconnect", "other", "web"]);
    assert!(
        m.inspect("web")["NetworkSettings"]["Networks"]
            .get("other")
            .is_none()
    );
    let out = wget_on(&m, "other", "http://cache:8080/");
    assert!(!out.status.success(), "cache after the disconnect: {out:?}");

    // In use: refused, as dockerd refuses it, naming the container.
    let e = m.fails(&["network", "rm", "app"]);
    assert!(
        e.contains("has active endpoints") && e.contains("in use by web"),
        "{e}"
    );
    let e = m.fails(&["network", "rm", "bridge"]);
    assert!(e.contains("bridge is a pre-defined network"), "{e}");
    m.ok(&["rm", "-f", "web"]);
    assert_eq!(m.ok(&["network", "rm", "app"]), "app\n");
    let e = m.fails(&["network", "inspect", "app"]);
    assert!(e.contains("No such network: app"), "{e}");

    // prune: every user network nothing is on, but what the filter keeps.
    m.ok(&["network", "create", "--label", "keep", "kept"]);
    m.ok(&["network", "create", "busy"]);
    m.ok(&[
        "create",
        "--name",
        "holder",
        "--network",
        "busy",
        "busybox",
        "true",
    ]);
    let pruned = m.ok(&["network", "prune", "-f", "--filter", "label!=keep"]);
    assert!(pruned.contains("other"), "{pruned}");
    assert!(
        !pruned.contains("kept") && !pruned.contains("busy"),
        "{pruned}"
    );
    assert_eq!(names(&m, &[]), ["bridge", "busy", "host", "kept", "none"]);
    m.ok(&["rm", "holder"]);
    m.ok(&["network", "prune", "-f"]);
    assert_eq!(names(&m, &[]), ["bridge", "host", "none"]);
}

#[test]
fn docker_cli_network_refusals_are_named() {
    if !enter_cgroup2_namespace("docker_cli_network_refusals_are_named") {
        return;
    }
    add_uplink();
    let m = Machine::start();
    for (args, says) in [
        (
            vec!["--subnet", "172.17.0.0/16"],
            "overlaps network bridge (172.17.0.0/16)",
        ),
        (
            vec!["--subnet", "172.17.5.0/24"],
            "overlaps network bridge (172.17.0.0/16)",
        ),
        (
            vec!["--subnet", "192.0.2.0/24"],
            "overlaps the machine's own network 192.0.2.0/24 on up0",
        ),
        (
            vec!["--subnet", "192.0.0.0/16"],
            "overlaps the machine's own network 192.0.2.0/24 on up0",
        ),
        (
            vec!["-d", "overlay"],
            "network driver overlay is not supported",
        ),
        (
            vec!["-d", "macvlan"],
            "network driver macvlan is not supported",
        ),
        (
            vec!["-o", "com.docker.network.bridge.name=br9"],
            "network option com.docker.network.bridge.name=br9 is not supported",
        ),
        (
            vec!["--subnet", "10.9.0.0/24", "--gateway", "10.9.0.9"],
            "Gateway 10.9.0.9 is not supported",
        ),
        (
            vec!["--subnet", "10.9.0.0/24", "--ip-range", "10.9.0.128/25"],
            "IPRange 10.9.0.128/25 is not supported",
        ),
        (vec!["--subnet", "10.9.0.1/24"], "host bits set"),
        (
            vec!["--ipam-driver", "dhcp"],
            "IPAM driver dhcp is not supported",
        ),
    ] {
        let mut all = vec!["network", "create"];
        all.extend_from_slice(&args);
        all.push("x");
        let e = m.fails(&all);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    // Names that are paths, or reserved.
    for name in ["a/b", "../x", "..", "x/../y", ".hidden", "host", "none"] {
        let e = m.fails(&["network", "create", name]);
        assert!(e.contains("network name"), "{name}: {e}");
    }
    // The same through the API itself, past the CLI.
    let raw = m.curl(&[
        "-w",
        " %{http_code}",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Name": "../../etc"}"#,
        "http://docker/v1.41/networks/create",
    ]);
    assert!(
        raw.contains("network name") && raw.ends_with(" 400"),
        "{raw}"
    );
    // Nothing was made, nor written.
    assert_eq!(names(&m, &[]), ["bridge", "host", "none"]);
    let defs = std::fs::read_to_string(m.path("root/network/networks.json")).unwrap_or_default();
    assert!(!defs.contains("\"name\""), "{defs}");
    assert!(!m.path("root/network/networks/x.json").exists());

    // Docker's modes are not networks to join or leave.
    m.ok(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]);
    let e = m.fails(&["network", "connect", "host", "idle"]);
    assert!(e.contains("network host: it is a network mode"), "{e}");
    let e = m.fails(&["network", "connect", "--ip", "172.17.0.9", "bridge", "idle"]);
    assert!(e.contains("IPv4Address"), "{e}");
    let e = m.fails(&["network", "rm", "none"]);
    assert!(e.contains("none is a pre-defined network"), "{e}");
    m.ok(&[
        "create",
        "--name",
        "alone",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let alone = m.inspect("alone");
    let networks = alone["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.keys().collect::<Vec<_>>(), ["none"], "{alone}");
    assert_eq!(
        networks["none"]["NetworkID"],
        inspect_network(&m, "none")["Id"]
    );
    m.ok(&["rm", "alone"]);
    m.ok(&["rm", "-f", "idle"]);
}
