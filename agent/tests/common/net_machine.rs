//! The machine of the bridge tests (bridge.rs, user_networks.rs): an
//! agent on a temporary root with the busybox image, and "outside the
//! machine": one more network namespace, joined to the test's by a veth
//! (192.0.2.1 here, 192.0.2.2 there), which also plays the cloud's
//! metadata service (169.254.169.254).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use husk_api::containers::ContainerInfo;

use super::{Agent, agent_args, eventually, kill_containers};
use husk_testkit::{busybox_layer, oci_archive};

pub const IMAGE: &str = "husk.test/busybox:1";
pub const HOST_IP: &str = "192.0.2.1";
pub const OUTSIDE_IP: &str = "192.0.2.2";
pub const HOST_IP6: &str = "2001:db8::1";
pub const OUTSIDE_IP6: &str = "2001:db8::2";
/// The machine's own firewall on (the agent leaves it off with
/// `--no-machine-setup`, which every test agent has), one port open.
pub const FIREWALL: &str = "[network]\nhost_firewall = true\ninbound = [\"9001/tcp\"]\n";

/// A web server in a container: `hello from NAME` on port 80.
pub fn httpd(name: &str) -> String {
    format!(
        "mkdir -p /www && echo hello from {name} > /www/index.html && exec busybox httpd -f -p 80 -h /www"
    )
}

/// The test's machine: an agent on a temporary root, the busybox image,
/// and the outside world.
pub struct Machine {
    pub dir: tempfile::TempDir,
    pub agent: Option<Agent>,
    pub outside: Outside,
}

impl Machine {
    pub fn new(agent_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!("{agent_toml}\n[limits.containers]\ndefault_pids = -1\n"),
        )
        .unwrap();
        // The host's name server, as the net module would write it.
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(
            dir.path().join("run/resolv.conf"),
            "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch husk.test\n",
        )
        .unwrap();
        let outside = Outside::new();
        let mut machine = Self {
            dir,
            agent: None,
            outside,
        };
        machine.start_agent();
        let archive = machine.dir.path().join("busybox.tar");
        std::fs::write(&archive, oci_archive(IMAGE, &[busybox_layer()])).unwrap();
        machine.ok(&["image", "import", archive.to_str().unwrap()]);
        machine
    }

    pub fn start_agent(&mut self) {
        let args = agent_args(self.dir.path(), &self.dir.path().join("agent.toml"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        self.agent = Some(Agent::start(self.dir.path(), &args));
    }

    pub fn crash_agent(&mut self) {
        drop(self.agent.take());
    }

    pub fn huskctl(&self, args: &[&str]) -> Output {
        self.agent.as_ref().unwrap().huskctl(args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.agent.as_ref().unwrap().huskctl_ok(args)
    }

    pub fn err(&self, args: &[&str]) -> String {
        self.agent.as_ref().unwrap().huskctl_err(args)
    }

    pub fn inspect(&self, name: &str) -> ContainerInfo {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }

    /// `busybox wget` in a new container on the bridge.
    pub fn wget_from_container(&self, url: &str) -> Output {
        self.huskctl(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            // Not wget as the container's init: `timeout` signals the
            // process it runs, and an init ignores SIGTERM.
            &format!("busybox timeout 5 busybox wget -q -O - {url}; exit $?"),
        ])
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        kill_containers(&self.dir.path().join("root"), &self.dir.path().join("run"));
    }
}

/// Another network namespace, held by a `sleep` (gone with it), joined to
/// the test's by a veth: outside the machine.
pub struct Outside {
    pub holder: Child,
    pub servers: Vec<Child>,
}

impl Outside {
    pub fn new() -> Self {
        let holder = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .unwrap();
        let pid = holder.id().to_string();
        // Wait until the sleep is in its own namespace.
        eventually(Duration::from_secs(5), "the outside namespace", || {
            let ours = std::fs::read_link("/proc/self/ns/net").ok()?;
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (ours != theirs).then_some(())
        });
        sh(&format!(
            "ip link add up0 type veth peer name out0 && ip link set out0 netns {pid} && \
             ip addr add {HOST_IP}/24 dev up0 && ip -6 addr add {HOST_IP6}/64 dev up0 nodad && \
             ip link set up0 up && ip route add 169.254.169.254/32 via {OUTSIDE_IP}"
        ));
        let outside = Self {
            holder,
            servers: Vec::new(),
        };
        outside.sh(&format!(
            "ip link set lo up && ip addr add {OUTSIDE_IP}/24 dev out0 && \
             ip addr add 169.254.169.254/32 dev out0 && ip -6 addr add {OUTSIDE_IP6}/64 dev out0 nodad && \
             ip link set out0 up && ip route add default via {HOST_IP} && \
             ip -6 route add default via {HOST_IP6}"
        ));
        outside
    }

    pub fn enter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-n", "--"]);
        cmd
    }

    pub fn sh(&self, script: &str) -> Output {
        let out = self.enter().args(["sh", "-c", script]).output().unwrap();
        assert!(out.status.success(), "outside: {script}: {out:?}");
        out
    }

    /// The body at `url`, once it answers (within 10 s, or the test fails
    /// naming `what`).
    pub fn wget_until(&self, url: &str, what: &str) -> String {
        eventually(Duration::from_secs(10), what, || {
            let out = self.wget(url);
            out.status.success().then(|| stdout(&out))
        })
    }

    pub fn wget(&self, url: &str) -> Output {
        self.enter()
            .args(["timeout", "5", "busybox", "wget", "-q", "-O", "-", url])
            .output()
            .unwrap()
    }

    /// An HTTP server out there, serving `body` on `port`.
    pub fn serve(&mut self, port: u16, body: &str, dir: &Path) {
        let www = dir.join(format!("www-{port}"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), body).unwrap();
        let child = self
            .enter()
            .args(["busybox", "httpd", "-f", "-p", &port.to_string(), "-h"])
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
        eventually(Duration::from_secs(5), "the outside server", || {
            self.wget(&format!("http://{OUTSIDE_IP}:{port}/"))
                .status
                .success()
                .then_some(())
        });
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for child in self
            .servers
            .iter_mut()
            .chain(std::iter::once(&mut self.holder))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn sh(script: &str) -> Output {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The agent's table as Debian's nft prints it.
pub fn ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "husk"])
        .output()
        .unwrap();
    assert!(out.status.success(), "nft list table inet husk: {out:?}");
    stdout(&out)
}

pub fn wget(url: &str) -> Output {
    // Not wget's own -T: Debian's busybox 1.35 crashes with it.
    Command::new("timeout")
        .args(["5", "busybox", "wget", "-q", "-O", "-", url])
        .output()
        .unwrap()
}

/// The commands of the first ```sh block after `marker` in README.md, as
/// a user types them (comments after ` #` left out), split into words.
pub fn readme_commands(marker: &str) -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("README has no {marker:?}"));
    let block = section
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
