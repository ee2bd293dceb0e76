//! Docker's CLI (Debian's `/usr/bin/docker` 20.10) over the remote API's
//! TLS listener, as an operator points it at a machine: a CA and the
//! certificates from `huskctl pki`, the machine's certificate issued
//! for its address, `docker --tlsverify -H tcp://…`. The same roles as
//! Husk's own API: a reader looks and runs nothing; without a client
//! certificate there is no answer at all.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Machine, enter_cgroup2_namespace, huskctl_bin};
use husk_testkit::{busybox_layer, oci_archive};

const DOCKER: &str = "/usr/bin/docker";

fn pki(dir: &Path, args: &[&str]) {
    let out = Command::new(huskctl_bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "huskctl {args:?}: {out:?}");
}

/// `docker` with the certificates of `certs` (ca.pem, cert.pem, key.pem,
/// as DOCKER_CERT_PATH wants them), bounded in time.
fn docker(dir: &Path, certs: Option<&Path>, host: &str, args: &[&str]) -> Output {
    let mut command = Command::new("timeout");
    command
        .arg("60")
        .arg(DOCKER)
        .args(["-H", host])
        .args(args)
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    if let Some(certs) = certs {
        command
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", certs);
    }
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn docker_reaches_the_remote_api_with_certificates_and_roles() {
    if !enter_cgroup2_namespace("docker_reaches_the_remote_api_with_certificates_and_roles") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("docker-config")).unwrap();
    pki(dir, &["pki", "init", "--dir", "pki"]);
    pki(
        dir,
        &[
            "pki",
            "server",
            "machine",
            "--ip",
            "127.0.0.1",
            "--ca-dir",
            "pki",
            "--out",
            "server",
        ],
    );
    for (name, role) in [("alice", "operator"), ("rita", "reader")] {
        pki(
            dir,
            &[
                "pki", "issue", name, "--role", role, "--ca-dir", "pki", "--out", name,
            ],
        );
        std::fs::copy(dir.join("pki/ca.pem"), dir.join(name).join("ca.pem")).unwrap();
    }
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let port = common::free_port();
    let machine = Machine::start(&format!(
        "[api]\nlisten = [\"127.0.0.1:{port}\"]\nclient_ca = '''\n{}'''\nserver_cert = '''\n{}'''\nserver_key = '''\n{}'''\n",
        read("pki/ca.pem"),
        read("server/server-cert.pem"),
        read("server/server-key.pem"),
    ));
    let archive = dir.join("busybox.tar");
    std::fs::write(&archive, oci_archive("busybox:latest", &[busybox_layer()])).unwrap();
    machine
        .agent
        .huskctl_ok(&["image", "import", archive.to_str().unwrap()]);
    let host = format!("tcp://127.0.0.1:{port}");
    let alice = dir.join("alice");
    let rita = dir.join("rita");

    // No client certificate: the handshake fails, nothing is served.
    let out = docker(dir, None, &host, &["--tls", "version"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("Server:\n Engine"), "{}", text(&out));

    let out = docker(
        dir,
        Some(&alice),
        &host,
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.41");
    let out = docker(
        dir,
        Some(&alice),
        &host,
        &["run", "--rm", "busybox", "echo", "over tls"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls\n");

    // A reader sees, and changes nothing.
    let out = docker(
        dir,
        Some(&rita),
        &host,
        &["images", "--format", "{{.Repository}}"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("busybox"));
    let out = docker(dir, Some(&rita), &host, &["run", "--rm", "busybox", "true"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("reader"), "{}", text(&out));
    // Husk's own API on the same port, the same certificate.
    let ps = Command::new(huskctl_bin())
        .args(["-H", &host, "--tls-dir", rita.to_str().unwrap(), "ps"])
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(ps.status.success(), "{ps:?}");
}
