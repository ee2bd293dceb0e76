//! The agent's nftables table on the real kernel, checked against the
//! real `nft` CLI. Each test runs in a network namespace of its own
//! (unshared by the test's thread, which does everything: nftables state
//! is per namespace, so nothing touches the host's). Root only: not
//! root, a test fails saying so.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use husk_agent::nft::{self, BridgeRules, FirewallState, NftError, PortRule, Protocol};

mod common;
use common::private_netns;

/// `nft ARGS`' output (in the calling thread's namespace).
fn nft(args: &[&str]) -> String {
    let output = Command::new("nft")
        .args(args)
        .output()
        .expect("the nft CLI (Debian package nftables; `cargo xtask` installs it)");
    assert!(
        output.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn listing() -> String {
    nft(&["list", "table", "inet", "husk"])
}

fn bridge(name: &str, third: u8) -> BridgeRules {
    BridgeRules {
        interface: name.into(),
        subnet_v4: (Ipv4Addr::new(172, third, 0, 0), 16),
        subnet_v6: None,
        internal: false,
        dns: Vec::new(),
    }
}

fn port(host_port: u16, container: &str, container_port: u16, comment: &str) -> PortRule {
    PortRule {
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port,
        container_ip: container.parse().unwrap(),
        container_port,
        bridge: "husk0".into(),
        comment: comment.into(),
    }
}

fn sample() -> FirewallState {
    let mut husk0 = bridge("husk0", 17);
    husk0.subnet_v6 = Some(("fd00:1::".parse().unwrap(), 64));
    let mut husk1 = bridge("husk1", 18);
    husk1.internal = true;
    husk1.dns = vec!["172.18.0.1:40053".parse().unwrap()];
    let mut dns = port(5353, "172.17.0.3", 53, "dns 5353->53/udp");
    dns.protocol = Protocol::Udp;
    dns.host_ip = Some("10.0.0.1".parse().unwrap());
    let mut v6 = port(8443, "fd00:1::2", 443, "web6 8443->443/tcp");
    v6.host_ip = Some("fd00:1::1".parse().unwrap());
    FirewallState {
        bridges: vec![husk0, husk1],
        ports: vec![port(8080, "172.17.0.2", 80, "web 8080->80/tcp"), dns, v6],
        metadata_allowed: ["172.17.0.5", "172.17.0.6", "fd00:1::5"]
            .map(|a| a.parse().unwrap())
            .to_vec(),
        host: Some(nft::HostFirewall {
            inbound: vec![(Protocol::Tcp, 22), (Protocol::Udp, 5353)],
        }),
    }
}

fn assert_lists(listing: &str, lines: &[&str]) {
    for line in lines {
        assert!(listing.contains(line), "no {line:?} in\n{listing}");
    }
}

#[test]
fn apply_builds_the_table_nft_lists() {
    private_netns("apply_builds_the_table_nft_lists");
    nft::apply(&sample()).unwrap();
    let listing = listing();
    assert_lists(
        &listing,
        &[
            "type nat hook prerouting priority dstnat; policy accept;",
            "type nat hook output priority -100; policy accept;",
            "type nat hook postrouting priority srcnat; policy accept;",
            "type filter hook forward priority filter; policy accept;",
            "type filter hook input priority filter; policy accept;",
            "fib daddr type local jump ports comment \"published ports\"",
            // a network's DNS, redirected to its server
            "iifname \"husk1\" ip daddr 172.18.0.1 udp dport 53 dnat ip to 172.18.0.1:40053 comment \"dns husk1\"",
            "iifname \"husk1\" ip daddr 172.18.0.1 tcp dport 53 dnat ip to 172.18.0.1:40053 comment \"dns husk1\"",
            // ports
            "meta nfproto ipv4 tcp dport 8080 dnat ip to 172.17.0.2:80 comment \"web 8080->80/tcp\"",
            "ip daddr 10.0.0.1 udp dport 5353 dnat ip to 172.17.0.3:53 comment \"dns 5353->53/udp\"",
            "ip6 daddr fd00:1::1 tcp dport 8443 dnat ip6 to [fd00:1::2]:443",
            // postrouting
            "ip saddr 172.17.0.0/16 oifname != \"husk0\" masquerade",
            "ip6 saddr fd00:1::/64 oifname != \"husk0\" masquerade",
            "oifname \"husk0\" ct status dnat ip saddr 172.17.0.0/16 masquerade",
            "oifname \"husk0\" ct status dnat ip6 saddr fd00:1::/64 masquerade",
            "oifname \"husk0\" ip saddr 127.0.0.0/8 masquerade",
            "oifname \"husk1\" ip saddr 127.0.0.0/8 masquerade",
            // forward
            "ct state established,related accept",
            "ct state invalid drop",
            "iifname \"husk0\" ip daddr 169.254.169.254 ip saddr != { 172.17.0.5, 172.17.0.6 } counter packets 0 bytes 0 drop comment \"metadata\"",
            "iifname \"husk1\" ip6 daddr fd00:ec2::254 ip6 saddr != fd00:1::5 counter packets 0 bytes 0 drop comment \"metadata\"",
            "oifname \"husk1\" ct status dnat accept",
            "iifname \"husk1\" oifname \"husk1\" accept",
            "iifname \"husk0\" oifname != \"husk*\" accept",
            "iifname \"husk*\" counter packets 0 bytes 0 drop comment \"isolation\"",
            "oifname \"husk*\" counter packets 0 bytes 0 drop comment \"isolation\"",
            // input
            "iifname \"husk*\" ct state established,related accept",
            "iifname \"husk1\" ip daddr 172.18.0.1 udp dport 40053 accept comment \"dns husk1\"",
            "iifname \"husk1\" ip daddr 172.18.0.1 tcp dport 40053 accept comment \"dns husk1\"",
            "iifname \"husk*\" meta l4proto icmp accept",
            "iifname \"husk*\" meta l4proto ipv6-icmp accept",
            "iifname \"husk*\" counter packets 0 bytes 0 drop comment \"container to host\"",
            // the machine's own inbound firewall
            "counter packets 0 bytes 0 drop comment \"not a router\"",
            "iifname \"lo\" accept comment \"loopback\"",
            "ct state established,related accept comment \"replies\"",
            "meta l4proto icmp accept comment \"icmp\"",
            "udp dport 68 accept comment \"dhcp\"",
            "udp dport 546 accept comment \"dhcpv6\"",
            "tcp dport 22 accept comment \"inbound 22/tcp\"",
            "udp dport 5353 accept comment \"inbound 5353/udp\"",
            "counter packets 0 bytes 0 drop comment \"inbound\"",
        ],
    );
    // The internal bridge has no way out, and nothing masquerades it.
    assert!(
        listing.contains("iifname \"husk1\" oifname != \"husk1\" counter packets 0 bytes 0 drop comment \"internal husk1\""),
        "{listing}"
    );
    assert!(
        listing.contains("oifname \"husk1\" iifname != \"husk1\" counter packets 0 bytes 0 drop comment \"internal husk1\""),
        "{listing}"
    );
    assert!(
        !listing
            .lines()
            .any(|l| l.contains("oifname != \"husk1\"") && l.contains("masquerade")),
        "{listing}"
    );
    assert!(
        !listing.contains("iifname \"husk1\" oifname != \"husk*\""),
        "{listing}"
    );
    // Every rule has a comment.
    for line in listing.lines().map(str::trim) {
        let rule = ["accept", "drop", "masquerade"]
            .iter()
            .any(|end| line.ends_with(end));
        assert!(!rule, "a rule without a comment: {line}");
    }
}

#[test]
fn applying_twice_lists_the_same_table() {
    private_netns("applying_twice_lists_the_same_table");
    nft::apply(&sample()).unwrap();
    let first = listing();
    nft::apply(&sample()).unwrap();
    assert_eq!(listing(), first);
    // One table, each rule once.
    assert_eq!(nft(&["list", "tables"]), "table inet husk\n");
    assert_eq!(first.matches("dnat ip to 172.17.0.2:80").count(), 1);
}

#[test]
fn a_smaller_state_removes_the_old_rules() {
    private_netns("a_smaller_state_removes_the_old_rules");
    let mut state = sample();
    nft::apply(&state).unwrap();
    assert!(listing().contains("dnat ip to 172.17.0.2:80"));
    state.ports.remove(0);
    state.bridges.pop();
    nft::apply(&state).unwrap();
    let listing = listing();
    assert!(!listing.contains("172.17.0.2:80"), "{listing}");
    assert!(!listing.contains("husk1"), "{listing}");
    assert!(listing.contains("dnat ip to 172.17.0.3:53"), "{listing}");
    nft::apply(&FirewallState::default()).unwrap();
    let empty = self::listing();
    assert!(!empty.contains("dnat"), "{empty}");
    assert!(
        empty.contains("iifname \"husk*\" counter packets 0 bytes 0 drop"),
        "{empty}"
    );
}

#[test]
fn remove_deletes_only_the_agents_table() {
    private_netns("remove_deletes_only_the_agents_table");
    // Absent: nothing to do, no error.
    nft::remove().unwrap();
    nft(&["add", "table", "ip", "theirs"]);
    nft::apply(&sample()).unwrap();
    nft::remove().unwrap();
    assert_eq!(nft(&["list", "tables"]), "table ip theirs\n");
    nft::remove().unwrap();
    assert_eq!(nft(&["list", "tables"]), "table ip theirs\n");
    assert_eq!(nft::drop_counters().unwrap(), []);
}

#[test]
fn a_refused_state_leaves_the_table_as_it_was() {
    private_netns("a_refused_state_leaves_the_table_as_it_was");
    nft::apply(&sample()).unwrap();
    let before = listing();

    let mut state = sample();
    state.bridges[1].interface = "husk0123456789ab".into();
    let error = nft::apply(&state).unwrap_err();
    assert!(matches!(error, NftError::Invalid { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "bridges[1].interface: \"husk0123456789ab\" is 16 bytes, an interface name has at most 15"
    );
    assert_eq!(listing(), before);

    let mut state = sample();
    state.bridges[0].interface = "hu\0sk".into();
    let error = nft::apply(&state).unwrap_err();
    assert!(
        error.to_string().starts_with("bridges[0].interface: "),
        "{error}"
    );
    assert!(error.to_string().contains("NUL"), "{error}");
    assert_eq!(listing(), before);

    let mut state = sample();
    state.ports[1].container_ip = "fd00:1::3".parse().unwrap();
    let error = nft::apply(&state).unwrap_err();
    assert!(
        error.to_string().starts_with("ports[1].host_ip: "),
        "{error}"
    );
    assert_eq!(listing(), before);
}

#[test]
fn drop_counters_count_what_containers_may_not_do() {
    private_netns("drop_counters_count_what_containers_may_not_do");
    let state = FirewallState {
        bridges: vec![BridgeRules {
            // Its DNS server's port: queries to the gateway's 53 go there.
            dns: vec!["172.31.0.1:5300".parse().unwrap()],
            ..bridge("huskt0", 31)
        }],
        ports: Vec::new(),
        metadata_allowed: Vec::new(),
        host: None,
    };
    nft::apply(&state).unwrap();
    let zero = nft::drop_counters().unwrap();
    assert_eq!(
        zero,
        [
            ("metadata".to_string(), 0),
            ("isolation".to_string(), 0),
            ("container to host".to_string(), 0),
        ]
    );

    // A "container": the far end of a veth pair, in a namespace of its
    // own (a thread's), sending UDP to the host's end.
    let host = Ipv4Addr::new(172, 31, 0, 1);
    let container = Ipv4Addr::new(172, 31, 0, 2);
    let (tid_tx, tid_rx) = mpsc::channel();
    let (moved_tx, moved_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        // SAFETY: as in `private_netns`: NEWNET only.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.unwrap();
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .unwrap();
        moved_rx.recv().unwrap();
        links(|handle| async move {
            let lo = index(&handle, "lo").await;
            up(&handle, lo).await;
            let peer = index(&handle, "peer0").await;
            handle
                .address()
                .add(peer, IpAddr::V4(container), 16)
                .execute()
                .await
                .unwrap();
            up(&handle, peer).await;
        });
        let socket = UdpSocket::bind(SocketAddr::from((container, 0))).unwrap();
        for _ in 0..3 {
            socket.send_to(b"x", SocketAddr::from((host, 9))).unwrap();
        }
        // DNS on the gateway is redirected to the network's server and
        // allowed: not counted.
        socket.send_to(b"x", SocketAddr::from((host, 53))).unwrap();
    });
    let peer_tid = tid_rx.recv().unwrap();
    links(|handle| async move {
        let veth = rtnetlink::LinkVeth::new("huskt0", "peer0").build();
        handle.link().add(veth).execute().await.unwrap();
        let peer = rtnetlink::LinkUnspec::new_with_name("peer0")
            .setns_by_pid(peer_tid as u32)
            .build();
        handle.link().set(peer).execute().await.unwrap();
        let ours = index(&handle, "huskt0").await;
        handle
            .address()
            .add(ours, IpAddr::V4(host), 16)
            .execute()
            .await
            .unwrap();
        up(&handle, ours).await;
    });
    moved_tx.send(()).unwrap();
    peer.join().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counters = nft::drop_counters().unwrap();
        let to_host = counters
            .iter()
            .find(|(c, _)| c == "container to host")
            .unwrap()
            .1;
        if to_host == 3 || Instant::now() > deadline {
            assert_eq!(
                counters,
                [
                    ("metadata".to_string(), 0),
                    ("isolation".to_string(), 0),
                    ("container to host".to_string(), 3),
                ],
                "\n{}",
                listing()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let counted = "counter packets 3 bytes 87 drop comment \"container to host\"";
    assert!(listing().contains(counted), "{}", listing());

    // A container starts with a published port: the table is replaced
    // whole, and what it counted stays counted.
    let before = nft::drop_counters().unwrap();
    let mut more = state.clone();
    let mut web = port(8080, "172.31.0.3", 80, "web 8080->80/tcp");
    web.bridge = "huskt0".into();
    more.ports.push(web);
    nft::apply(&more).unwrap();
    let listing = listing();
    assert!(listing.contains("dnat ip to 172.31.0.3:80"), "{listing}");
    assert!(listing.contains(counted), "{listing}");
    assert_eq!(nft::drop_counters().unwrap(), before);
    // And it stops again.
    nft::apply(&state).unwrap();
    assert!(self::listing().contains(counted), "{}", self::listing());
    assert_eq!(nft::drop_counters().unwrap(), before);

    // A table removed and made again starts from nothing.
    nft::remove().unwrap();
    nft::apply(&state).unwrap();
    assert_eq!(nft::drop_counters().unwrap(), zero);
}

#[test]
fn thousands_of_ports_fit_one_batch_and_one_listing() {
    private_netns("thousands_of_ports_fit_one_batch_and_one_listing");
    let mut state = sample();
    state.ports = (0..4000u16)
        .map(|i| {
            let ip = format!("172.17.{}.{}", 1 + i / 250, 1 + i % 250);
            port(
                10000 + i,
                &ip,
                80,
                &format!("port {i} of many, with a long comment to fill the batch"),
            )
        })
        .collect();
    // And as many containers allowed the metadata service: a big set.
    state.metadata_allowed = (0..4000u16)
        .map(|i| IpAddr::V4(Ipv4Addr::new(172, 17, (i >> 8) as u8, i as u8)))
        .collect();
    nft::apply(&state).unwrap();
    // Read back with a dump of many datagrams.
    let counters = nft::drop_counters().unwrap();
    // One per drop rule's comment: the internal bridge's, metadata,
    // isolation, not a router, container to host, inbound.
    assert_eq!(counters.len(), 6, "{counters:?}");
    let listing = listing();
    // The ports, and husk1's DNS redirect (UDP and TCP).
    assert_eq!(listing.matches(" dnat ip to ").count(), 4000 + 2);
    assert!(listing.contains("tcp dport 13999 dnat ip to 172.17.16.250:80"));
    assert!(
        listing.contains("ip saddr != { 172.17.0.0, 172.17.0.1, "),
        "{listing}"
    );
    assert!(listing.contains("172.17.15.159 } counter packets 0 bytes 0 drop"));
    // And replaced as a whole.
    nft::apply(&sample()).unwrap();
    let listing = self::listing();
    assert_eq!(
        listing.matches(" dnat ip to ").count() + listing.matches(" dnat ip6 to ").count(),
        3 + 2
    );
}

/// Runs `f` with an rtnetlink handle of the calling thread's namespace.
fn links<F, Fut>(f: F)
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(connection);
        f(handle).await;
    });
}

async fn index(handle: &rtnetlink::Handle, name: &str) -> u32 {
    use futures_util::TryStreamExt;
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    links.try_next().await.unwrap().unwrap().header.index
}

async fn up(handle: &rtnetlink::Handle, index: u32) {
    let link = rtnetlink::LinkUnspec::new_with_index(index).up().build();
    handle.link().set(link).execute().await.unwrap();
}
