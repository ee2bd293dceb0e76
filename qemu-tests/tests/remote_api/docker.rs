//! Debian's docker CLI (`/usr/bin/docker` 20.10, the client only) driving
//! a booted machine over TCP with mutual TLS, as docs/API.md tells an
//! operator to: the product image through UEFI, user-data opening `[api]`
//! with a CA and a server certificate made by `huskctl pki`, and
//! `docker --tlsverify -H tcp://…` with DOCKER_CERT_PATH through a slirp
//! `hostfwd`: run, run -d and logs -f, exec, stop, rm; a named volume
//! that outlives its container and a reboot; a reader refused a run,
//! and a client without a certificate refused everything. Beside the
//! huskctl test: test binaries run one after another, their tests at
//! once, so the two boots overlap.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use crate::{API_PORT, IMAGE};
use qemu_tests::log_lines::{AGENT_READY, REBOOT};
use qemu_tests::{Error, Result, config_drive};

/// Debian's client: /usr/local/bin/docker is another, newer one.
const DOCKER: &str = "/usr/bin/docker";

fn huskctl(home: &Path, args: &[&str]) -> Result<String> {
    let bin = &qemu_tests::Artifacts::get()?.huskctl;
    let out = Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("HUSK_HOST")
        .output()
        .map_err(|e| Error::io("running huskctl", e))?;
    assert!(
        out.status.success(),
        "huskctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `docker --tlsverify -H tcp://127.0.0.1:PORT ARGS` with the client
/// certificate in `certs` (DOCKER_CERT_PATH), nothing of this host's
/// Docker setup.
fn docker(port: u16, certs: &Path, args: &[&str]) -> Result<Output> {
    let config = certs.join("docker-config");
    std::fs::create_dir_all(&config).map_err(|e| Error::io("the CLI's config dir", e))?;
    Command::new(DOCKER)
        .arg("--tlsverify")
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .env("DOCKER_CERT_PATH", certs)
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .map_err(|e| Error::io("running docker (apt-get install docker.io)", e))
}

fn ok(port: u16, certs: &Path, args: &[&str]) -> Result<String> {
    let out = docker(port, certs, args)?;
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn refused(port: u16, certs: &Path, args: &[&str]) -> Result<String> {
    let out = docker(port, certs, args)?;
    assert!(!out.status.success(), "docker {args:?} was not refused");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A DOCKER_CERT_PATH: the CA's `ca.pem`, and a client certificate of
/// `role` issued by `huskctl pki issue`.
fn client_certs(home: &Path, dir: &Path, name: &str, role: &str) -> Result<()> {
    let out = dir.to_str().unwrap_or("");
    huskctl(home, &["pki", "issue", name, "--role", role, "--out", out])?;
    std::fs::copy(home.join(".config/husk/pki/ca.pem"), dir.join("ca.pem"))
        .map_err(|e| Error::io("copying the CA", e))?;
    Ok(())
}

#[test]
fn the_docker_cli_drives_the_machine_over_tls_and_its_volume_outlives_a_reboot() -> Result<()> {
    let dir = qemu_tests::TestDir::new("docker_remote")?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).map_err(|e| Error::io("making the test's home", e))?;
    huskctl(&home, &["pki", "init"])?;
    let (admin, reader, nobody) = (
        dir.path().join("admin"),
        dir.path().join("reader"),
        dir.path().join("nobody"),
    );
    client_certs(&home, &admin, "alice", "operator")?;
    client_certs(&home, &reader, "rita", "reader")?;
    // The machine's certificate names the address the CLI dials.
    let server = dir.path().join("server");
    std::fs::create_dir_all(&server).map_err(|e| Error::io("the server cert dir", e))?;
    huskctl(
        &home,
        &[
            "pki",
            "server",
            "husk-vm",
            "--ip",
            "127.0.0.1",
            "--out",
            server.to_str().unwrap_or(""),
        ],
    )?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io("reading a PEM", e));
    let ca = read(&home.join(".config/husk/pki/ca.pem"))?;
    let cert = read(&server.join("server-cert.pem"))?;
    let key = read(&server.join("server-key.pem"))?;
    // Only the CA: no client certificate.
    std::fs::create_dir_all(&nobody).map_err(|e| Error::io("the bare cert dir", e))?;
    std::fs::write(nobody.join("ca.pem"), &ca).map_err(|e| Error::io("writing ca.pem", e))?;
    let drive = config_drive(
        dir.path(),
        &format!(
            "[api]\nlisten = [\"0.0.0.0:{API_PORT}\"]\nclient_ca = \"\"\"\n{ca}\"\"\"\n\
             server_cert = \"\"\"\n{cert}\"\"\"\nserver_key = \"\"\"\n{key}\"\"\"\n"
        ),
    )?;
    let (mut vm, port, _) = crate::boot_with_api(dir, &drive)?;

    let version = ok(
        port,
        &admin,
        &["version", "--format", "{{.Server.APIVersion}}"],
    )?;
    assert_eq!(version.trim(), "1.41");
    assert_eq!(
        ok(port, &admin, &["run", "--rm", IMAGE, "echo", "over tls"])?,
        "over tls\n"
    );
    ok(
        port,
        &admin,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            IMAGE,
            "sh",
            "-c",
            "echo one; sleep 2; echo two",
        ],
    )?;
    // logs -f follows until the container exits.
    assert_eq!(ok(port, &admin, &["logs", "-f", "ticker"])?, "one\ntwo\n");
    ok(
        port,
        &admin,
        &["run", "-d", "--name", "idle", IMAGE, "sleep", "600"],
    )?;
    assert_eq!(
        ok(port, &admin, &["exec", "idle", "cat", "/etc/hostname"])?.trim(),
        "idle"
    );
    ok(port, &admin, &["stop", "-t", "1", "idle"])?;
    ok(port, &admin, &["rm", "idle", "ticker"])?;

    // A named volume outlives its container, and a reboot.
    ok(port, &admin, &["volume", "create", "notes"])?;
    let with_notes = |command: &[&'static str]| {
        let mut args = vec!["run", "--rm", "-v", "notes:/notes", IMAGE];
        args.extend_from_slice(command);
        args
    };
    ok(
        port,
        &admin,
        &with_notes(&["sh", "-c", "echo kept > /notes/a"]),
    )?;
    let from = vm.serial_end()?;
    vm.qmp().send_key(&["ctrl", "alt", "delete"])?;
    vm.wait_for_line_after(from, REBOOT, TO_SHUTDOWN_LINE)?;
    vm.wait_for_line_after(from, AGENT_READY, TO_UEFI_AGENT_READY)?;
    // The API is up a moment after the agent's readiness line.
    let deadline = std::time::Instant::now() + qemu_tests::scaled(TO_CHECK);
    let kept = loop {
        let out = docker(port, &admin, &with_notes(&["cat", "/notes/a"]))?;
        if out.status.success() || std::time::Instant::now() > deadline {
            break String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(kept, "kept\n");

    // A reader looks, and runs nothing; no certificate, nothing at all.
    let listed = ok(port, &reader, &["volume", "ls", "-q"])?;
    assert_eq!(listed, "notes\n");
    let e = refused(port, &reader, &["run", "--rm", IMAGE, "true"])?;
    assert!(e.contains("reader"), "{e}");
    let e = refused(port, &nobody, &["ps"])?;
    assert!(
        e.contains("certificate") || e.contains("tls") || e.contains("remote error"),
        "{e}"
    );
    power_off(&mut vm)?;
    Ok(())
}
