//! The bridge end to end on this host, as root: the real agent and
//! huskctl, containers on `husk0` with published ports, NAT out, the
//! firewall read back with Debian's `nft`. Each test runs in network and
//! mount namespaces of its own (`enter_cgroup2_namespace`); "outside the
//! machine" is one more network namespace, joined to the test's by a veth
//! (192.0.2.1 here, 192.0.2.2 there), which also plays the cloud's
//! metadata service (169.254.169.254).

mod common;

use std::process::{Child, Command};

use husk_api::containers::ContainerInfo;
use std::time::Duration;

use common::net_machine::*;
use common::{enter_cgroup2_namespace, eventually};

#[test]
fn a_published_port_answers_from_outside_the_host_and_other_containers() {
    if !enter_cgroup2_namespace(
        "a_published_port_answers_from_outside_the_host_and_other_containers",
    ) {
        return;
    }
    let mut machine = Machine::new(FIREWALL);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "bridge-web",
        "-p",
        "8080:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("bridge-web"),
    ]);
    let info = machine.inspect("bridge-web");
    let network = info.network.expect("a bridged container has a network");
    assert_eq!(network.bridge, "husk0");
    assert_eq!(network.ip_address.to_string(), "172.17.0.2");
    assert_eq!(network.gateway.to_string(), "172.17.0.1");
    assert_eq!(network.mac_address, "02:42:ac:11:00:02");
    assert_eq!(network.ports.len(), 1);
    let ps = machine.ok(&["ps"]);
    assert!(ps.lines().next().unwrap().ends_with("PORTS"), "{ps}");
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");

    let url = format!("http://{HOST_IP}:8080/");
    let answered = eventually(
        Duration::from_secs(10),
        "web through 8080 from outside",
        || {
            let out = machine.outside.wget(&url);
            out.status.success().then(|| stdout(&out))
        },
    );
    assert_eq!(answered, "hello from bridge-web\n");
    // The host itself, through its own address.
    assert_eq!(stdout(&wget(&url)), "hello from bridge-web\n");
    // Another container, through the host's address (hairpin).
    let out = machine.wget_from_container(&url);
    assert_eq!(stdout(&out), "hello from bridge-web\n", "{out:?}");

    // Out through NAT: a server outside sees the host, and answers.
    let dir = machine.dir.path().to_path_buf();
    machine.outside.serve(8000, "from outside\n", &dir);
    let out = machine.wget_from_container(&format!("http://{OUTSIDE_IP}:8000/"));
    assert_eq!(stdout(&out), "from outside\n", "{out:?}");

    // Nothing else of the host: not the metadata service (which the host
    // reaches), not a port of the host's own.
    machine.outside.serve(80, "metadata\n", &dir);
    assert_eq!(stdout(&wget("http://169.254.169.254/")), "metadata\n");
    let out = machine.wget_from_container("http://169.254.169.254/");
    assert!(
        !out.status.success(),
        "a container reached the metadata service: {out:?}"
    );
    let host_server = Command::new("busybox")
        .args(["httpd", "-f", "-p", "9000", "-h"])
        .arg(&dir)
        .spawn()
        .unwrap();
    let _host_server = KillOnDrop(host_server);
    let open_server = Command::new("busybox")
        .args(["httpd", "-f", "-p", "9001", "-h"])
        .arg(&dir)
        .spawn()
        .unwrap();
    let _open_server = KillOnDrop(open_server);
    std::fs::write(dir.join("index.html"), "the host\n").unwrap();
    // The machine's own firewall: a port it serves is closed to the
    // outside unless agent.toml opens it.
    let open = eventually(Duration::from_secs(5), "the open port", || {
        let out = machine.outside.wget(&format!("http://{HOST_IP}:9001/"));
        out.status.success().then(|| stdout(&out))
    });
    assert_eq!(open, "the host\n");
    let out = machine.outside.wget(&format!("http://{HOST_IP}:9000/"));
    assert!(
        !out.status.success(),
        "a closed port of the host answered: {out:?}"
    );
    assert_eq!(
        stdout(&wget("http://127.0.0.1:9000/")),
        "the host\n",
        "loopback is the host's"
    );
    let out = machine.wget_from_container("http://172.17.0.1:9000/");
    assert!(
        !out.status.success(),
        "a container reached the host: {out:?}"
    );
    // Both were dropped and counted.
    let rules = ruleset();
    for (needle, what) in [
        ("ip daddr 169.254.169.254 counter packets ", "metadata"),
        ("iifname \"husk*\" counter packets ", "container to host"),
        ("counter packets ", "\"inbound\""),
    ] {
        let line = rules
            .lines()
            .find(|l| l.contains(needle) && l.contains(what))
            .unwrap_or_else(|| panic!("no {what} rule: {rules}"));
        assert!(!line.contains("packets 0 "), "nothing counted: {line}");
    }

    // The container's files.
    let cat = machine.ok(&[
        "exec",
        "bridge-web",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/hostname",
    ]);
    assert!(cat.contains("nameserver 192.0.2.53\n"), "{cat}");
    assert!(
        !cat.contains("127.0.0.53"),
        "a loopback server reached a container: {cat}"
    );
    assert!(cat.contains("172.17.0.2\tbridge-web\n"), "{cat}");

    // Removed: its rule, its namespace and its veth go with it.
    assert!(ruleset().contains("dport 8080"), "{}", ruleset());
    machine.ok(&["rm", "-f", "bridge-web"]);
    let rules = ruleset();
    assert!(
        !rules.contains("dport 8080"),
        "a removed container's port: {rules}"
    );
    assert!(
        !machine.dir.path().join("run/netns/bridge-web").exists(),
        "the namespace is left"
    );
    eventually(Duration::from_secs(5), "the veth to go", || {
        let links = stdout(&sh("ip -o link show"));
        (!links.contains(": vh")).then_some(())
    });
    let out = machine.outside.wget(&url);
    assert!(!out.status.success(), "the port still answers: {out:?}");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_agent_restart_keeps_every_rule_once_and_cleans_what_is_stale() {
    if !enter_cgroup2_namespace("an_agent_restart_keeps_every_rule_once_and_cleans_what_is_stale") {
        return;
    }
    let mut machine = Machine::new(FIREWALL);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "restart-web",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::81",
        IMAGE,
        "sh",
        "-c",
        &httpd("restart-web"),
    ]);
    machine.ok(&["run", "-d", "--name", "restart-idle", IMAGE, "sleep", "600"]);
    machine.ok(&["create", "--name", "restart-later", IMAGE, "true"]);
    let before = ruleset();
    let picked = machine.inspect("restart-web").network.unwrap().ports[1].host_port;
    assert_ne!(picked, 0);
    // What a crash halfway through an attach would leave: a namespace, a
    // veth, an attachment of a container that is not running.
    let run = machine.dir.path().join("run");
    std::fs::write(run.join("netns/restart-later"), b"").unwrap();
    sh("ip link add vh0123456789 type veth peer name vhpeer0");
    machine.crash_agent();
    machine.start_agent();
    let after = ruleset();
    assert_eq!(before, after, "the table changed across the restart");
    let links = stdout(&sh("ip -o link show"));
    assert!(!links.contains("vh0123456789"), "a stale veth: {links}");
    assert!(
        !run.join("netns/restart-later").exists(),
        "a stale namespace"
    );
    // The running container still answers, its picked port still its own.
    let info = machine.inspect("restart-web");
    assert_eq!(info.network.unwrap().ports[1].host_port, picked);
    let answered = machine
        .outside
        .wget_until(&format!("http://{HOST_IP}:8080/"), "web after the restart");
    assert_eq!(answered, "hello from restart-web\n");
    // A stop takes its rules out; a start puts them back once, at the
    // same address.
    machine.ok(&["stop", "-t", "1", "restart-web"]);
    assert!(!ruleset().contains("dport 8080"));
    machine.ok(&["start", "restart-web"]);
    let rules = ruleset();
    assert_eq!(
        rules.matches("dnat ip to 172.17.0.2:80 ").count(),
        1,
        "{rules}"
    );
    assert_eq!(
        machine
            .inspect("restart-web")
            .network
            .unwrap()
            .ip_address
            .to_string(),
        "172.17.0.2"
    );
}

#[test]
fn conflicting_and_malformed_requests_are_refused_by_name() {
    if !enter_cgroup2_namespace("conflicting_and_malformed_requests_are_refused_by_name") {
        return;
    }
    let machine = Machine::new(FIREWALL);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "refused-a",
        "-p",
        "8080:80",
        IMAGE,
        "sleep",
        "600",
    ]);
    let err = machine.err(&[
        "run",
        "-d",
        "--name",
        "refused-b",
        "-p",
        "8080:80",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(
        err.contains("8080/tcp is already published by container refused-a"),
        "{err}"
    );
    // The refused container is left created, and holds nothing.
    let info = machine.inspect("refused-b");
    assert!(info.network.is_none(), "{info:?}");
    assert!(!machine.dir.path().join("run/netns/refused-b").exists());
    // A port a host process has.
    let taken = std::net::TcpListener::bind("0.0.0.0:9090").unwrap();
    let err = machine.err(&[
        "run",
        "-d",
        "--name",
        "refused-c",
        "-p",
        "9090:80",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(
        err.contains("9090/tcp is already in use on the host"),
        "{err}"
    );
    drop(taken);
    for (args, part) in [
        (
            vec!["-p", "8081:80", "--network", "none"],
            "need a bridge network",
        ),
        (vec!["-p", "80000:80"], "a port is 1 to 65535"),
        (vec!["-p", "8082:80/sctp"], "tcp or udp"),
        (vec!["--add-host", "nocolon"], "NAME:IP"),
        (vec!["--network", "overlay"], "no such network: overlay"),
        (vec!["--network", "bad/name"], "(or bridge, none, host)"),
        (vec!["--metadata-access"], "allow_metadata_access = false"),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(args.iter().copied());
        full.extend([IMAGE, "true"]);
        let out = machine.huskctl(&full);
        assert!(!out.status.success(), "{full:?} ran");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(part), "{full:?}: {err}");
    }
    // The agent refuses a subnet it cannot use, naming it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[network]\nsubnet = \"172.17.0.5/16\"\n").unwrap();
    let out = common::start_refused(dir.path(), &config);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("host bits"), "{text}");
}

/// README's container network commands, as a user types them (after
/// `--socket`, which says where this test's agent is).
#[test]
fn the_readme_network_commands_work_as_written() {
    if !enter_cgroup2_namespace("the_readme_network_commands_work_as_written") {
        return;
    }
    let commands = readme_commands("Containers get Docker's default network");
    let commands: Vec<Vec<&str>> = commands
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let machine = Machine::new(FIREWALL);
    let archive = machine.dir.path().join("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive()).unwrap();
    machine.ok(&["image", "import", archive.to_str().unwrap()]);
    let mut outputs = Vec::new();
    for command in &commands {
        assert_eq!(command[0], "huskctl", "{command:?}");
        outputs.push(machine.ok(&command[1..]));
    }
    let info: ContainerInfo = serde_json::from_str(&outputs[1]).unwrap();
    assert_eq!(info.network.unwrap().ports[0].host_port, 8080);
    let answered = machine
        .outside
        .wget_until(&format!("http://{HOST_IP}:8080/"), "web through 8080");
    assert_eq!(answered, "hello from web-1\n");
    machine.ok(&["rm", "-f", "web"]);
}

/// A container in a user namespace of its own joins the namespace the
/// agent made (owned by the host's user namespace: the runtime joins it
/// before cloning into the new one) and binds port 80 as its root.
#[test]
fn a_container_in_a_user_namespace_is_bridged_too() {
    if !enter_cgroup2_namespace("a_container_in_a_user_namespace_is_bridged_too") {
        return;
    }
    let machine = Machine::new(FIREWALL);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "userns-web",
        "--userns",
        "auto",
        "-p",
        "8080:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("userns-web"),
    ]);
    let answered = machine
        .outside
        .wget_until(&format!("http://{HOST_IP}:8080/"), "the userns container");
    assert_eq!(answered, "hello from userns-web\n");
    machine.ok(&["rm", "-f", "userns-web"]);
}

/// Dual stack: containers have IPv6 addresses of the machine's unique
/// local prefix, reach each other and the outside (NAT66) on IPv6, and a
/// port published on every address answers on the host's IPv6 address.
#[test]
fn ipv6_between_containers_out_and_through_a_published_port() {
    if !enter_cgroup2_namespace("ipv6_between_containers_out_and_through_a_published_port") {
        return;
    }
    let mut machine = Machine::new(FIREWALL);
    machine.ok(&[
        "run",
        "-d",
        "--name",
        "v6-web",
        "-p",
        "8080:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("v6-web"),
    ]);
    let network = machine.inspect("v6-web").network.unwrap();
    let v6 = network.ipv6_address.expect("a dual-stack address");
    assert_eq!(v6.octets()[0], 0xfd, "a unique local address: {v6}");
    assert!(v6.to_string().ends_with("::ac11:2"), "{v6}");
    assert_eq!(network.ipv6_prefix_len, Some(64));
    // Forwarding is on for the bridge, and the uplink still takes router
    // advertisements (SLAAC).
    let read = |f: &str| std::fs::read_to_string(f).unwrap().trim().to_string();
    assert_eq!(read("/proc/sys/net/ipv6/conf/all/forwarding"), "1");
    assert_eq!(read("/proc/sys/net/ipv6/conf/up0/accept_ra"), "2");
    // Another container, straight to its IPv6 address on the bridge.
    let answered = eventually(Duration::from_secs(10), "v6-web over IPv6", || {
        let out = machine.wget_from_container(&format!("http://[{v6}]:80/"));
        out.status.success().then(|| stdout(&out))
    });
    assert_eq!(answered, "hello from v6-web\n");
    // From outside, through the host's IPv6 address.
    let out = machine.outside.wget(&format!("http://[{HOST_IP6}]:8080/"));
    assert_eq!(stdout(&out), "hello from v6-web\n", "{out:?}");
    // Out, masqueraded.
    let dir = machine.dir.path().to_path_buf();
    machine
        .outside
        .serve(8000, "from outside over IPv6\n", &dir);
    let out = machine.wget_from_container(&format!("http://[{OUTSIDE_IP6}]:8000/"));
    assert_eq!(stdout(&out), "from outside over IPv6\n", "{out:?}");
    let rules = ruleset();
    assert!(rules.contains("dnat ip6 to ["), "{rules}");
    let cat = machine.ok(&["exec", "v6-web", "cat", "/etc/hosts"]);
    assert!(cat.contains(&format!("{v6}\tv6-web\n")), "{cat}");
    machine.ok(&["rm", "-f", "v6-web"]);
}

/// The metadata service for the one container agent.toml lets ask it.
#[test]
fn metadata_access_is_one_containers_where_agent_toml_allows_it() {
    if !enter_cgroup2_namespace("metadata_access_is_one_containers_where_agent_toml_allows_it") {
        return;
    }
    let mut machine = Machine::new(&format!(
        "{FIREWALL}[security]\nallow_metadata_access = true\n"
    ));
    let dir = machine.dir.path().to_path_buf();
    machine.outside.serve(80, "metadata\n", &dir);
    let url = "http://169.254.169.254/";
    let fetch = |extra: &[&str]| {
        let script = format!("busybox timeout 5 busybox wget -q -O - {url}; exit $?");
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend([IMAGE, "sh", "-c", script.as_str()]);
        machine.huskctl(&args)
    };
    let out = fetch(&["--metadata-access"]);
    assert_eq!(stdout(&out), "metadata\n", "{out:?}");
    let out = fetch(&[]);
    assert!(
        !out.status.success(),
        "a container without access reached it: {out:?}"
    );
    let err = machine.err(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--metadata-access",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("for bridged containers"), "{err}");
}

/// The attacker next door, with the CAP_NET_RAW every container has:
/// gratuitous ARP claiming a neighbour's address (which, believed, makes
/// the host send that neighbour's replies to it: a connection to the
/// metadata service with an allowed container's address). The host's
/// entries for containers are permanent and their MACs sticky on their
/// ports; the control is an address the agent did not pin, which the
/// same packets do take over.
#[test]
fn a_neighbour_cannot_take_over_another_containers_address() {
    if !enter_cgroup2_namespace("a_neighbour_cannot_take_over_another_containers_address") {
        return;
    }
    let machine = Machine::new("");
    for name in ["spoof-victim", "spoof-attacker"] {
        machine.ok(&["run", "-d", "--name", name, IMAGE, "sleep", "1000"]);
    }
    let victim = machine.inspect("spoof-victim").network.unwrap();
    let attacker = machine.inspect("spoof-attacker").network.unwrap();
    let victim_ip = victim.ip_address.to_string();
    let victim_mac = victim.mac_address.clone();
    let neigh = |ip: &str| {
        let out = Command::new("ip")
            .args(["neigh", "show", ip, "dev", "husk0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let all = Command::new("ip").args(["neigh", "show"]).output().unwrap();
    assert_eq!(
        neigh(&victim_ip),
        format!("{victim_ip} lladdr {victim_mac} PERMANENT"),
        "{}",
        String::from_utf8_lossy(&all.stdout)
    );
    if let Some(v6) = victim.ipv6_address {
        assert!(
            neigh(&v6.to_string()).ends_with("PERMANENT"),
            "{}",
            neigh(&v6.to_string())
        );
    }
    let fdb = Command::new("bridge")
        .args(["fdb", "show", "br", "husk0"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
    let line = fdb
        .lines()
        .find(|l| l.starts_with(&victim_mac) && l.contains(" dev vh"))
        .unwrap_or_else(|| panic!("no entry for {victim_mac}:\n{fdb}"));
    assert!(line.contains("static") && line.contains("sticky"), "{line}");

    // The control: an address of the subnet the host knows but the agent
    // did not pin.
    let unpinned = "172.17.0.200";
    let status = Command::new("ip")
        .args(["neigh", "add", unpinned, "lladdr", "02:00:00:00:00:01"])
        .args(["dev", "husk0", "nud", "stale"])
        .status()
        .unwrap();
    assert!(status.success());
    // The frames are what any container can forge with CAP_NET_RAW;
    // busybox's arping sends only from an address of the interface, so
    // they are sent from the attacker's namespace by this test, which
    // adds the address claimed there first.
    let netns = machine.dir.path().join("run/netns/spoof-attacker");
    for claimed in [victim_ip.as_str(), unpinned] {
        let script = format!(
            "ip addr add {claimed}/32 dev eth0 && \
             busybox arping -U -c 3 -w 3 -s {claimed} -I eth0 {claimed}; \
             ip addr del {claimed}/32 dev eth0"
        );
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["sh", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "the attacker could not send: {out:?}");
    }
    eventually(Duration::from_secs(5), "the control taken over", || {
        neigh(unpinned)
            .contains(&attacker.mac_address)
            .then_some(())
    });
    assert_eq!(
        neigh(&victim_ip),
        format!("{victim_ip} lladdr {victim_mac} PERMANENT"),
        "the attacker took the victim's address"
    );
}
