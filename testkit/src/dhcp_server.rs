//! A real DHCP server for the machine-network tests: Debian's dnsmasq
//! (package `dnsmasq-base`) serving leases on one interface, in the
//! network namespace of a process of the test's (or the test's own),
//! with its DHCP log in a file the test reads. Killed when dropped, also
//! when a test panics.
//!
//! dnsmasq gives no lease shorter than two minutes; T1 and T2 (options
//! 58 and 59) are set short instead, so renewals and rebinding come
//! within seconds.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// What a server hands out.
#[derive(Debug, Clone)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub router: Ipv4Addr,
    pub dns: Ipv4Addr,
    pub ntp: Ipv4Addr,
    /// Seconds; 120 at the least (dnsmasq's floor).
    pub lease: u32,
    pub renew: u32,
    pub rebind: u32,
    /// IPv6 on the same interface (which must have an address in the
    /// prefix): router advertisements, and DHCPv6 or SLAAC.
    pub v6: Option<Pool6>,
}

/// IPv6 of a [`Pool`]: a /64 advertised by router advertisements, its
/// addresses handed out by DHCPv6 (`::10` to `::50`, the RA's M flag)
/// or left to SLAAC (`stateful` false: the RA's A flag, no DHCPv6).
#[derive(Debug, Clone)]
pub struct Pool6 {
    pub prefix: Ipv6Addr,
    pub stateful: bool,
    pub dns: Ipv6Addr,
}

impl Pool6 {
    fn args(&self, lease: u32) -> Vec<String> {
        let p = self.prefix.segments();
        let at = |last: u16| Ipv6Addr::new(p[0], p[1], p[2], p[3], 0, 0, 0, last);
        let range = if self.stateful {
            format!("--dhcp-range={},{},64,{lease}", at(0x10), at(0x50))
        } else {
            format!("--dhcp-range={},ra-only,64", self.prefix)
        };
        vec![
            "--enable-ra".into(),
            range,
            format!("--dhcp-option=option6:dns-server,[{}]", self.dns),
        ]
    }
}

pub struct DhcpServer {
    child: Child,
    pub log: PathBuf,
}

impl DhcpServer {
    /// Serves `pool` on `interface` (which must have an address in the
    /// pool's subnet), in the network namespace of process `netns` (None:
    /// the caller's), with its files under `dir`; returns once it listens.
    pub fn start(netns: Option<u32>, interface: &str, pool: &Pool, dir: &Path) -> Self {
        assert!(
            Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: install Debian's dnsmasq-base (cargo xtask test does)"
        );
        let log = dir.join(format!("dnsmasq-{interface}.log"));
        let _ = std::fs::remove_file(&log);
        let mut command = match netns {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &pid.to_string(), "-n", "--", DNSMASQ]);
                c
            }
            None => Command::new(DNSMASQ),
        };
        let v6 = pool
            .v6
            .as_ref()
            .map(|v6| v6.args(pool.lease))
            .unwrap_or_default();
        let child = command
            .args(v6)
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--bind-interfaces",
                &format!("--interface={interface}"),
                &format!(
                    "--dhcp-range={},{},255.255.255.0,{}",
                    pool.first, pool.last, pool.lease
                ),
                &format!("--dhcp-option=option:router,{}", pool.router),
                &format!("--dhcp-option=option:dns-server,{}", pool.dns),
                &format!("--dhcp-option=option:ntp-server,{}", pool.ntp),
                &format!("--dhcp-option=option:T1,{}", pool.renew),
                &format!("--dhcp-option=option:T2,{}", pool.rebind),
                &format!(
                    "--dhcp-leasefile={}",
                    dir.join(format!("leases-{interface}")).display()
                ),
                "--log-dhcp",
                &format!("--log-facility={}", log.display()),
                "--user=root",
                "--pid-file",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {DNSMASQ}: {e}"));
        let mut server = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.text().contains("sockets bound exclusively") {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("dnsmasq on {interface} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq on {interface} did not start: {}",
                server.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Its log so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's lines holding `what` (`DHCPACK(`, `DHCPDISCOVER(`…).
    pub fn lines_with(&self, what: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(what))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
