//! A real NTP server for the time tests: Debian's chronyd (package
//! `chrony`), started on 127.0.0.1 and a free port with `-x` (it never
//! touches this machine's clock) and `local stratum 8` (it serves its
//! own clock, with no sources). Killed when dropped, also when a test
//! panics. A missing chronyd fails the test, naming the package.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHRONYD: &str = "/usr/sbin/chronyd";

pub struct Chronyd {
    child: Child,
    /// Where it serves: 127.0.0.1 and its port.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Chronyd {
    /// Starts it and returns once it answers as a stratum 8 server.
    pub fn start() -> Self {
        assert!(
            std::path::Path::new(CHRONYD).exists(),
            "{CHRONYD} is missing: install Debian's chrony (cargo xtask test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        // chronyd drops root for `_chrony`, then writes its drift file.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        // A free port: bound, read, released (chronyd takes it at once).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("chrony.conf");
        // `allow all`: a QEMU guest's packets reach it through slirp,
        // from this host's loopback too.
        let config = format!(
            "port {port}\nbindaddress 127.0.0.1\nallow all\nlocal stratum 8\ncmdport 0\n\
             pidfile {dir}/chronyd.pid\ndriftfile {dir}/chrony.drift\n",
            dir = dir.path().display()
        );
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("chronyd.log")).unwrap();
        // -d: foreground, logging to stderr; -x: never adjust the clock.
        let child = Command::new(CHRONYD)
            .args(["-d", "-x", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHRONYD}: {e}"));
        let mut chronyd = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        chronyd.wait_until_it_serves();
        chronyd
    }

    /// What it logged.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("chronyd.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// A client packet (version 4, mode 3) until a server packet of
    /// stratum 8 comes back; panics with its log if it dies or never does.
    fn wait_until_it_serves(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut request = [0u8; 48];
        request[0] = 0x23;
        let mut reply = [0u8; 128];
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chronyd exited ({status}):\n{}", self.log());
            }
            let _ = socket.send_to(&request, self.addr);
            if let Ok(n) = socket.recv(&mut reply)
                && n >= 48
                && reply[0] & 0x07 == 4
                && reply[1] == 8
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "chronyd on {} never answered as a stratum 8 server:\n{}",
            self.addr,
            self.log()
        );
    }
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
