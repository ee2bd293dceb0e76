//! A real DNS server for the name tests: Debian's dnsmasq (package
//! `dnsmasq-base`), answering `NAME` with one IPv4 address and nothing
//! else (no upstream, no hosts file), on an address and port of the
//! test's. Killed when dropped, also when a test panics.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// Serves `name` → `answer` on `listen`:`port` (0: a free port) and
    /// returns once it answers so. `listen` 0.0.0.0: on every address,
    /// through wildcard sockets (`0.0.0.0:port`, `[::]:port`), as a
    /// host-network DNS server holds port 53 of the whole machine.
    pub fn start(listen: Ipv4Addr, port: u16, name: &str, answer: Ipv4Addr) -> Self {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: install Debian's dnsmasq-base (cargo xtask test does)"
        );
        // A port that was free a moment ago may be taken by the time
        // dnsmasq binds it: it exits, and another is tried.
        for _ in 0..5 {
            let port = match port {
                0 => UdpSocket::bind((listen, 0))
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port(),
                given => given,
            };
            let bind = if listen.is_unspecified() {
                // dnsmasq's default: wildcard sockets.
                Vec::new()
            } else {
                vec![
                    "--bind-interfaces".to_string(),
                    format!("--listen-address={listen}"),
                ]
            };
            let child = Command::new(DNSMASQ)
                .args(bind)
                .args([
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    &format!("--port={port}"),
                    &format!("--address=/{name}/{answer}"),
                    "--user=root",
                    "--pid-file",
                    "--cache-size=0",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {DNSMASQ}: {e}"));
            let mut dnsmasq = Self {
                child,
                addr: SocketAddr::from((listen, port)),
            };
            if dnsmasq.answers(name, answer) {
                return dnsmasq;
            }
        }
        panic!("dnsmasq did not start on {listen}:{port}");
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Asks for `name` (A) until the answer holds `answer`, for up to
    /// 10 s or until dnsmasq exits.
    fn answers(&mut self, name: &str, answer: Ipv4Addr) -> bool {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let query = a_query(name);
        let mut reply = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive() {
                return false;
            }
            let _ = socket.send_to(&query, self.addr);
            if let Ok(n) = socket.recv(&mut reply)
                && reply[..n].windows(4).any(|w| w == answer.octets())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS query for `name`'s A record, id 0x4853, recursion desired.
fn a_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x48, 0x53, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
