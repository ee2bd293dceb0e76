//! Docker's own CLI (Debian's `docker` 20.10, `/usr/bin/docker`) pointed
//! at an agent started by the test with its Docker socket on temporary
//! paths: shared by the Docker test files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use husk_testkit::{busybox_layer, oci_archive};
use serde_json::Value;

use super::{Agent, agent_args, kill_containers, run_with_deadline};

/// Debian's client: /usr/local/bin/docker is another, newer one.
pub const DOCKER: &str = "/usr/bin/docker";

/// Debian's docker-compose 1.29 (Python, over docker-py).
pub const COMPOSE: &str = "/usr/bin/docker-compose";

/// How long one CLI command may take before the test fails (a hang is
/// a failure, not a stuck test).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The machine's own address in a test's network namespace, on the link
/// [`add_uplink`] makes: a published port is the machine's, reached on
/// its addresses (not loopback: docs/NETWORK.md says why).
pub const MACHINE_IP: &str = "192.0.2.1";

/// A link with [`MACHINE_IP`]/24, the machine's "uplink" (one end of a
/// veth pair: this kernel has no dummy links).
pub fn add_uplink() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip link add up0 type veth peer name up1 && ip addr add {MACHINE_IP}/24 dev up0 && \
             ip link set up1 up && ip link set up0 up"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "the uplink: {out:?}");
}

/// An agent with its Docker socket on temporary paths, busybox:latest
/// imported, and the CLI pointed at it with a configuration of its own.
pub struct Machine {
    dir: tempfile::TempDir,
    pub agent: Option<Agent>,
}

impl Machine {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// [`Machine::start`] with more of agent.toml (`[registry]`…).
    pub fn start_with(agent_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let config = dir.path().join("agent.toml");
        // No default pids limit: this host's cgroup2 has no pids
        // controller (containers.rs says why).
        std::fs::write(
            &config,
            format!("{agent_toml}\n[limits.containers]\ndefault_pids = -1\n"),
        )
        .unwrap();
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

    /// The machine's temporary directory: where `docker` runs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `docker -H unix://… ARGS` in `cwd`, not run: the CLI pointed at
    /// the agent with nothing of this host's Docker setup.
    pub fn docker_command(&self, cwd: &Path, args: &[&str]) -> Command {
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
            .env_remove("DOCKER_API_VERSION");
        command
    }

    /// Debian's `docker-compose ARGS` (1.29, over docker-py) in `dir`,
    /// not run, with DOCKER_HOST naming the agent's socket as a user
    /// exports it, and nothing of this host's Docker or compose setup.
    pub fn compose_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(COMPOSE);
        command
            .args(args)
            .current_dir(dir)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.path("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE");
        command
    }

    /// `docker -H unix://… ARGS` in `cwd`, within [`COMMAND_LIMIT`].
    pub fn docker_in(&self, cwd: &Path, args: &[&str]) -> Output {
        run_with_deadline(
            &mut self.docker_command(cwd, args),
            None,
            COMMAND_LIMIT,
            &format!("docker {args:?}"),
        )
    }

    /// `docker ARGS` with `input` on its stdin, then EOF, within
    /// [`COMMAND_LIMIT`].
    pub fn docker_fed(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_deadline(
            &mut self.docker_command(self.dir.path(), args),
            Some(input),
            COMMAND_LIMIT,
            &format!("docker {args:?} (fed its stdin)"),
        )
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

    /// `docker ARGS sh -c "echo out; echo err >&2; exit 3"` (ARGS: a
    /// `run` or an `exec` up to its command): the two streams apart, and
    /// the exit code.
    pub fn assert_streams_and_exit_code(&self, args: &[&str]) {
        let mut all = args.to_vec();
        all.extend(["sh", "-c", "echo out; echo err >&2; exit 3"]);
        let out = self.docker(&all);
        let (stdout, stderr) = super::text(&out);
        assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
        assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
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
