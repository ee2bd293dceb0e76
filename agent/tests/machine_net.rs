//! The machine's own network (`husk_agent::net`, what the agent runs at
//! boot) on the real kernel, against Debian's dnsmasq: DHCP renewal at
//! T1, rebinding at T2, expiry and a new lease; links followed through
//! the kernel's events (carrier lost and back, a NIC that appears later,
//! one that goes); IPv6 on the uplink (a DHCPv6 address, a SLAAC one,
//! the router, DHCPv6's name servers). Each test's thread unshares a network namespace of
//! its own (the machine), and a `unshare -n` process holds the other
//! side (the cloud's network), joined by veths. Root only: not root, a
//! test fails saying so.
//!
//! dnsmasq gives no lease under two minutes, so the expiry tests wait
//! that long; they sleep, and run beside the others.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{eventually, private_netns};
use husk_agent::net::{Interface, NetConfig, NetState};
use husk_testkit::dhcp_server::{DhcpServer, Pool, Pool6};

const LEASE: Duration = Duration::from_secs(120);

fn pool(subnet: u8) -> Pool {
    let ip = |last| std::net::Ipv4Addr::new(10, 77, subnet, last);
    Pool {
        first: ip(10),
        last: ip(50),
        router: ip(1),
        dns: ip(53),
        ntp: ip(123),
        lease: LEASE.as_secs() as u32,
        renew: 4,
        rebind: 8,
        v6: None,
    }
}

/// The machine (the test thread's namespace, the net module running in
/// it) and the network outside (a namespace held by a `sleep`).
struct Lab {
    dir: tempfile::TempDir,
    outside: Child,
    /// The net module's thread and what stops it.
    net: Option<(
        std::thread::JoinHandle<()>,
        std::sync::Arc<tokio::sync::Notify>,
    )>,
}

impl Lab {
    fn new(test: &str) -> Self {
        private_netns(test);
        let outside = Command::new("unshare")
            .args(["-n", "sleep", "900"])
            .spawn()
            .unwrap();
        let pid = outside.id();
        eventually(Duration::from_secs(5), "the outside namespace", || {
            let ours = std::fs::read_link("/proc/thread-self/ns/net").ok()?;
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (ours != theirs).then_some(())
        });
        let lab = Self {
            dir: tempfile::tempdir().unwrap(),
            outside,
            net: None,
        };
        lab.outside_sh("ip link set lo up");
        lab
    }

    /// A NIC of the machine, `name`, cabled to `srv<n>` outside, which
    /// has 10.77.n.1 and a dnsmasq serving 10.77.n.0/24.
    fn cable(&self, name: &str, n: u8) -> DhcpServer {
        let pid = self.outside.id();
        sh(&format!(
            "ip link add {name} type veth peer name srv{n} netns {pid}"
        ));
        self.outside_sh(&format!(
            "ip addr add 10.77.{n}.1/24 dev srv{n} && ip link set srv{n} up"
        ));
        self.dhcp(n)
    }

    fn dhcp(&self, n: u8) -> DhcpServer {
        self.dhcp_with(n, pool(n))
    }

    fn dhcp_with(&self, n: u8, pool: Pool) -> DhcpServer {
        DhcpServer::start(
            Some(self.outside.id()),
            &format!("srv{n}"),
            &pool,
            self.dir.path(),
        )
    }

    /// The net module, as the agent starts it, on a thread of its own
    /// made here (so in this namespace too), with the agent's runtime
    /// (one thread).
    fn start_net(&mut self) {
        let config = NetConfig::new(self.dir.path().join("run"));
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                husk_agent::net::start(config);
                stopped.notified().await;
            });
        });
        self.net = Some((thread, stop));
    }

    fn state(&self) -> NetState {
        std::fs::read(self.dir.path().join("run/net.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn interface(&self, name: &str) -> Option<Interface> {
        self.state().interfaces.get(name).cloned()
    }

    /// Waits (up to `limit`) for `name`'s entry to satisfy `check`.
    fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Interface) -> bool,
    ) -> Interface {
        eventually(limit, &format!("{name}: {what}"), || {
            self.interface(name).filter(|i| check(i))
        })
    }

    fn bound(&self, name: &str) -> Interface {
        self.wait_for(name, Duration::from_secs(40), "bound", |i| {
            i.state == "bound"
        })
    }

    fn outside_sh(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.outside.id().to_string(), "-n", "--"])
            .args(["sh", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "outside: {script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some((thread, stop)) = self.net.take() {
            stop.notify_one();
            let _ = thread.join();
        }
        let _ = self.outside.kill();
        let _ = self.outside.wait();
    }
}

/// A shell command in the machine's namespace (this thread's).
fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The IPv4 addresses the kernel has on `link`, as `ip` prints them.
fn addresses(link: &str) -> Vec<String> {
    sh(&format!("ip -4 -o addr show dev {link}"))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

fn address_of(i: &Interface) -> String {
    i.address.clone().unwrap_or_default()
}

fn in_pool(address: &str, n: u8) -> bool {
    let prefix = format!("10.77.{n}.");
    address.starts_with(&prefix) && address.ends_with("/24")
}

#[test]
fn a_lease_is_renewed_at_t1_rebound_at_t2_dropped_at_expiry_and_taken_again() {
    let mut lab =
        Lab::new("a_lease_is_renewed_at_t1_rebound_at_t2_dropped_at_expiry_and_taken_again");
    let server = lab.cable("up0", 0);
    lab.start_net();

    // Bound: everything the lease gives is applied and reported.
    let bound = lab.bound("up0");
    let address = address_of(&bound);
    assert!(in_pool(&address, 0), "{bound:?}");
    assert_eq!(bound.gateway.as_deref(), Some("10.77.0.1"), "{bound:?}");
    assert_eq!(bound.dns, ["10.77.0.53"], "{bound:?}");
    assert_eq!(bound.ntp, ["10.77.0.123"], "{bound:?}");
    assert_eq!(bound.lease_seconds, Some(120), "{bound:?}");
    assert!(bound.carrier, "{bound:?}");
    assert_eq!(addresses("up0"), [address.as_str()]);
    let routes = sh("ip -4 route show default");
    assert!(routes.contains("via 10.77.0.1 dev up0"), "{routes}");
    let resolv = std::fs::read_to_string(lab.dir.path().join("run/resolv.conf")).unwrap();
    assert_eq!(resolv, "nameserver 10.77.0.53\n");
    let lo = sh("ip -o link show lo");
    assert!(lo.contains("UP"), "lo is not up: {lo}");

    // Renewing at T1 (4 s), unicast to the server.
    let renewed = lab.wait_for("up0", Duration::from_secs(30), "renewed", |i| {
        i.renewals >= 1
    });
    assert_eq!(address_of(&renewed), address);
    assert_eq!(renewed.rebinds, 0, "{renewed:?}");
    let acks = server.lines_with("DHCPACK(srv0)").len();
    assert!(acks >= 2, "dnsmasq acked {acks} times:\n{}", server.text());

    // The server's unicast address stops answering: renewing fails, and
    // at T2 the client asks by broadcast, which the server still gets.
    lab.outside_sh(
        "nft add table inet t && \
         nft add chain inet t in '{ type filter hook input priority 0; }' && \
         nft add rule inet t in ip daddr 10.77.0.1 udp dport 67 counter drop",
    );
    let rebound = lab.wait_for("up0", Duration::from_secs(60), "rebound", |i| {
        i.rebinds >= 1
    });
    assert_eq!(address_of(&rebound), address);
    assert_eq!(rebound.state, "bound", "{rebound:?}");
    let dropped = lab.outside_sh("nft list chain inet t in");
    assert!(
        !dropped.contains("packets 0 "),
        "no unicast renewal was tried before rebinding: {dropped}"
    );

    // No server at all: the address stays until the lease runs out
    // (two minutes after the last ACK), then goes.
    drop(server);
    let gone_at = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(
        addresses("up0"),
        [address.as_str()],
        "the address went before its lease ran out"
    );
    let expired = lab.wait_for("up0", LEASE + Duration::from_secs(30), "expired", |i| {
        i.address.is_none()
    });
    assert!(
        gone_at.elapsed() >= LEASE - Duration::from_secs(15),
        "the address went after {:?}, before its lease of {LEASE:?} ran out",
        gone_at.elapsed()
    );
    assert!(
        matches!(expired.state.as_str(), "expired" | "dhcp"),
        "{expired:?}"
    );
    eventually(Duration::from_secs(5), "the address removed", || {
        addresses("up0").is_empty().then_some(())
    });

    // A server again: a new lease.
    let _server = lab.dhcp(0);
    let again = lab.wait_for("up0", Duration::from_secs(60), "bound again", |i| {
        i.state == "bound"
    });
    assert!(in_pool(&address_of(&again), 0), "{again:?}");
    assert_eq!(addresses("up0"), [address_of(&again)]);
}

#[test]
fn links_are_followed_carrier_lost_and_back_a_nic_added_and_one_removed() {
    let mut lab = Lab::new("links_are_followed_carrier_lost_and_back_a_nic_added_and_one_removed");
    let server = lab.cable("up0", 0);
    // A NIC without carrier from the start (its cable's far end down).
    let pid = lab.outside.id();
    sh(&format!(
        "ip link add up2 type veth peer name srv2 netns {pid}"
    ));
    lab.start_net();
    let address = address_of(&lab.bound("up0"));
    let waiting = lab.wait_for("up2", Duration::from_secs(10), "no carrier", |i| {
        i.state == "no-carrier"
    });
    assert!(!waiting.carrier && waiting.address.is_none(), "{waiting:?}");

    // The cable's far end goes down: no carrier, the address kept.
    lab.outside_sh("ip link set srv0 down");
    let lost = lab.wait_for("up0", Duration::from_secs(10), "no carrier", |i| {
        i.state == "no-carrier"
    });
    assert!(!lost.carrier, "{lost:?}");
    assert_eq!(address_of(&lost), address);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(lab.interface("up0").unwrap().state, "no-carrier");
    assert_eq!(addresses("up0"), [address.as_str()]);

    // Back: DHCP again, asking for the address it holds, and getting it.
    let discovers_before = server.lines_with("DHCPDISCOVER(srv0)").len();
    lab.outside_sh("ip link set srv0 up");
    let back = lab.wait_for("up0", Duration::from_secs(30), "bound again", |i| {
        i.state == "bound" && i.carrier
    });
    assert_eq!(address_of(&back), address);
    assert_eq!(addresses("up0"), [address.as_str()]);
    let discovers = server.lines_with("DHCPDISCOVER(srv0)");
    assert!(discovers.len() > discovers_before, "{}", server.text());
    let ip = address.trim_end_matches("/24");
    assert!(
        discovers[discovers_before..].iter().any(|l| l.contains(ip)),
        "the DISCOVER after the carrier came back did not ask for {ip}:\n{}",
        server.text()
    );

    // The NIC without carrier gets one, and a lease.
    lab.outside_sh("ip addr add 10.77.2.1/24 dev srv2 && ip link set srv2 up");
    let _server2 = lab.dhcp(2);
    let up2 = lab.bound("up2");
    assert!(in_pool(&address_of(&up2), 2), "{up2:?}");

    // A NIC that appears later (moved into the machine's namespace, as a
    // hot-plugged one appears) is configured.
    lab.outside_sh(
        "ip link add up1 type veth peer name srv1 && \
         ip addr add 10.77.1.1/24 dev srv1 && ip link set srv1 up",
    );
    let _server1 = lab.dhcp(1);
    // The machine's namespace is this thread's: named by its thread id.
    let tid = rustix::thread::gettid().as_raw_nonzero();
    lab.outside_sh(&format!("ip link set up1 netns {tid}"));
    let up1 = lab.bound("up1");
    assert!(in_pool(&address_of(&up1), 1), "{up1:?}");

    // A NIC that goes is forgotten.
    sh("ip link del up1");
    eventually(Duration::from_secs(10), "up1 forgotten", || {
        lab.interface("up1").is_none().then_some(())
    });
    assert!(lab.interface("up0").is_some());

    // Without carrier past the lease's end, the address goes and the
    // state stays no-carrier; back, a new lease.
    lab.outside_sh("ip link set srv2 down");
    lab.wait_for("up2", Duration::from_secs(10), "no carrier", |i| {
        i.state == "no-carrier"
    });
    let dropped = lab.wait_for(
        "up2",
        LEASE + Duration::from_secs(30),
        "lease dropped",
        |i| i.address.is_none(),
    );
    assert_eq!(dropped.state, "no-carrier", "{dropped:?}");
    assert!(addresses("up2").is_empty(), "{:?}", addresses("up2"));
    lab.outside_sh("ip link set srv2 up");
    let renewed = lab.bound("up2");
    assert!(in_pool(&address_of(&renewed), 2), "{renewed:?}");
}

#[test]
fn ipv6_on_the_uplink_a_dhcpv6_address_a_slaac_one_the_router_and_name_servers() {
    let mut lab =
        Lab::new("ipv6_on_the_uplink_a_dhcpv6_address_a_slaac_one_the_router_and_name_servers");
    let pid = lab.outside.id();
    let v6 = |n: u8, stateful: bool| Pool6 {
        prefix: format!("2001:db8:{n}::").parse().unwrap(),
        stateful,
        dns: format!("2001:db8:{n}::53").parse().unwrap(),
    };
    let mut servers = Vec::new();
    for (n, stateful) in [(7u8, true), (8, false)] {
        let name = format!("up{n}");
        sh(&format!(
            "ip link add {name} type veth peer name srv{n} netns {pid}"
        ));
        lab.outside_sh(&format!(
            "ip addr add 10.77.{n}.1/24 dev srv{n} && \
             ip -6 addr add 2001:db8:{n}::1/64 dev srv{n} nodad && ip link set srv{n} up"
        ));
        servers.push(lab.dhcp_with(
            n,
            Pool {
                v6: Some(v6(n, stateful)),
                ..pool(n)
            },
        ));
    }
    lab.start_net();

    // DHCPv6 (the RA's M flag): the address, a /128 with its lifetimes,
    // reported, and its name server in resolv.conf after IPv4's.
    let up7 = lab.wait_for("up7", Duration::from_secs(60), "a DHCPv6 address", |i| {
        i.dhcp6
            .as_deref()
            .is_some_and(|d| d.starts_with("bound 2001:db8:7::"))
            && i.addresses_v6
                .iter()
                .any(|a| a.starts_with("2001:db8:7::") && a.ends_with("/128"))
    });
    let leased = up7
        .dhcp6
        .clone()
        .unwrap()
        .trim_start_matches("bound ")
        .to_owned();
    let kernel = sh("ip -6 -o addr show dev up7 scope global");
    assert!(kernel.contains(&format!("{leased}/128")), "{kernel}");
    assert!(
        kernel.contains("valid_lft") && !kernel.contains("valid_lft forever"),
        "{kernel}"
    );
    let resolv = eventually(
        Duration::from_secs(10),
        "resolv.conf with DHCPv6's server",
        || {
            let text = std::fs::read_to_string(lab.dir.path().join("run/resolv.conf")).ok()?;
            text.contains("nameserver 2001:db8:7::53").then_some(text)
        },
    );
    assert!(
        resolv.starts_with("nameserver 10.77."),
        "IPv4's first:\n{resolv}"
    );

    // The router, from the router advertisements.
    let routed = lab.wait_for("up7", Duration::from_secs(30), "an IPv6 router", |i| {
        i.gateway_v6.is_some()
    });
    assert!(
        routed.gateway_v6.as_deref().unwrap().starts_with("fe80::"),
        "{routed:?}"
    );

    // SLAAC (the RA's A flag, no DHCPv6): the kernel's address, reported;
    // no DHCPv6 server answered there.
    let up8 = lab.wait_for("up8", Duration::from_secs(60), "a SLAAC address", |i| {
        i.addresses_v6
            .iter()
            .any(|a| a.starts_with("2001:db8:8:") && a.ends_with("/64"))
    });
    assert!(up8.dhcp6.is_none(), "{up8:?}");

    // The DHCPv6 lease is renewed (dnsmasq's T1: half its two minutes).
    eventually(Duration::from_secs(100), "a DHCPv6 renewal", || {
        (!servers[0].lines_with("DHCPRENEW(srv7)").is_empty()).then_some(())
    });
    assert_eq!(
        lab.interface("up7").unwrap().dhcp6.as_deref(),
        Some(format!("bound {leased}").as_str())
    );
}
