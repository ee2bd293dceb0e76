//! Docker's own CLI (Debian's `docker` 20.10, `/usr/bin/docker`) pointed
//! at an agent started by the test with its Docker socket on temporary
//! paths: shared by the Docker test files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use husk_testkit::{busybox_layer, oci_archive};
use serde_json::Value;

use super::{Agent, agent_args, kill_containers};

/// Debian's client: /usr/local/bin/docker is another, newer one.
pub const DOCKER: &str = "/usr/bin/docker";

/// How long one CLI command may take before the test fails (a hang is
/// a failure, not a stuck test).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// An agent with its Docker socket on temporary paths, busybox:latest
/// imported, and the CLI pointed at it with a configuration of its own.
pub struct Machine {
    dir: tempfile::TempDir,
    pub agent: Option<Agent>,
}

impl Machine {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let config = dir.path().join("agent.toml");
        // No default pids limit: this host's cgroup2 has no pids
        // controller (containers.rs says why).
        std::fs::write(&config, "[limits.containers]\ndefault_pids = -1\n").unwrap();
        let mut args = agent_args(dir.path(), &config);
        args.push("--docker-socket".into());
        args.push(dir.path().join("docker.sock"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let agent = Agent::start(dir.path(), &args);
        let archive = dir.path().join("busybox.tar");
        std::fs::write(&archive, oci_archive("busybox:latest", &[busybox_layer()])).unwrap();
        agent.huskctl_ok(&["image", "import", archive.to_str().unwrap()]);
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        Self {
            dir,
            agent: Some(agent),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `docker -H unix://… ARGS` in `cwd`, within [`COMMAND_LIMIT`].
    pub fn docker_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let socket = format!("unix://{}", self.path("docker.sock").display());
        let mut command = Command::new(DOCKER);
        command
            .arg("-H")
            .arg(&socket)
            .args(args)
            .current_dir(cwd)
            // Nothing of this host's Docker setup: no context, no
            // credentials helper, no BuildKit switch.
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_BUILDKIT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stdout.read_to_end(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker {args:?} did not finish in {COMMAND_LIMIT:?}: {}{}",
                    String::from_utf8_lossy(&out.join().unwrap()),
                    String::from_utf8_lossy(&err.join().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_in(self.dir.path(), args)
    }

    /// stdout, asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        let (stdout, stderr) = super::text(&out);
        assert!(
            out.status.success(),
            "docker {args:?}: {:?}\n{stdout}{stderr}",
            out.status
        );
        stdout
    }

    /// stdout of `docker ARGS` in `cwd`, asserting success.
    pub fn ok_in(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.docker_in(cwd, args);
        let (stdout, stderr) = super::text(&out);
        assert!(
            out.status.success(),
            "docker {args:?} in {}: {:?}\n{stdout}{stderr}",
            cwd.display(),
            out.status
        );
        stdout
    }

    /// stderr, asserting failure.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        let (stdout, stderr) = super::text(&out);
        assert!(
            !out.status.success(),
            "docker {args:?} succeeded: {stdout}{stderr}"
        );
        stderr
    }

    /// curl over the Docker socket: what it printed (headers with -I).
    pub fn curl(&self, args: &[&str]) -> String {
        let out = Command::new("curl")
            .arg("-sS")
            .arg("--unix-socket")
            .arg(self.path("docker.sock"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn inspect(&self, name: &str) -> Value {
        let json: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        json[0].clone()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        kill_containers(&self.path("root"), &self.path("run"));
        drop(self.agent.take());
    }
}
