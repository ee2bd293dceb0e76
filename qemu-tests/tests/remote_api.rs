//! The remote API of a booted machine, reached from this host as an
//! operator reaches a cloud VM: the product image through UEFI, user-data
//! opening `[api]` with a CA made by `huskctl pki`, the machine's own
//! certificate fingerprint read off the serial console and pinned, and
//! huskctl over TLS through a slirp `hostfwd` (as a cloud's load
//! balancer or public address would forward it).

mod common;
#[path = "remote_api/docker.rs"]
mod docker;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use qemu_tests::{Error, Result, config_drive};

const IMAGE: &str = "husk.test/busybox:1";
const API_PORT: u16 = 7443;

/// huskctl on this host, as the operator runs it: its config dir in
/// `home`, nothing of this host's environment.
fn huskctl(home: &Path, args: &[&str]) -> Result<Output> {
    let bin = &qemu_tests::Artifacts::get()?.huskctl;
    Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("HUSK_HOST")
        .env_remove("HUSK_CONTEXT")
        .env_remove("HUSK_CERT_PATH")
        .output()
        .map_err(|e| Error::io("running huskctl", e))
}

fn ok(home: &Path, args: &[&str]) -> Result<String> {
    let out = huskctl(home, args)?;
    assert!(
        out.status.success(),
        "huskctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn refused(home: &Path, args: &[&str]) -> Result<String> {
    let out = huskctl(home, args)?;
    assert!(!out.status.success(), "huskctl {args:?} was not refused");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The product's image (its init.toml, no agent.toml) with busybox as
/// [`IMAGE`] preloaded, booted through UEFI with the user-data `drive`
/// and the API's port forwarded: the machine, the host's port, and the
/// console's `API certificate sha256:…` line once it is printed.
pub(crate) fn boot_with_api(
    dir: qemu_tests::TestDir,
    drive: &Path,
) -> Result<(qemu_tests::Vm, u16, String)> {
    let archive = dir.path().join("busybox-oci.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci_archive(IMAGE, &[husk_testkit::busybox_layer()]),
    )
    .map_err(|e| Error::io("writing the image archive", e))?;
    let disk = qemu_tests::GuestDisk::builder()
        .preload(&archive)
        .build(dir.path())?;
    let port =
        qemu_tests::vm_builder::free_port().map_err(|e| Error::io("picking a free port", e))?;
    let mut vm = uefi_with_config(dir, &disk, drive)
        .forward_to_guest(port, API_PORT)
        .launch()?;
    let line = vm.wait_for_line("API certificate sha256:", TO_UEFI_AGENT_READY)?;
    Ok((vm, port, line))
}

#[test]
fn an_operator_reaches_the_machine_over_tls_with_the_console_fingerprint() -> Result<()> {
    let dir = qemu_tests::TestDir::new("remote_api")?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).map_err(|e| Error::io("making the test's home", e))?;
    ok(&home, &["pki", "init"])?;
    ok(&home, &["pki", "issue", "alice", "--role", "admin"])?;
    let reader = dir.path().join("reader");
    ok(
        &home,
        &[
            "pki",
            "issue",
            "rita",
            "--role",
            "reader",
            "--out",
            reader.to_str().unwrap_or(""),
        ],
    )?;
    let ca = std::fs::read_to_string(home.join(".config/husk/pki/ca.pem"))
        .map_err(|e| Error::io("reading the CA", e))?;
    let drive = config_drive(
        dir.path(),
        &format!("[api]\nlisten = [\"0.0.0.0:{API_PORT}\"]\nclient_ca = \"\"\"\n{ca}\"\"\"\n"),
    )?;
    let (mut vm, port, line) = boot_with_api(dir, &drive)?;
    let fingerprint = line
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {line:?}"))
        .to_owned();
    let host = format!("tcp://127.0.0.1:{port}");

    // A pin that is not the machine's: nothing is saved.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let e = refused(
        &home,
        &[
            "context",
            "create",
            "bad",
            "--host",
            &host,
            "--fingerprint",
            &wrong,
        ],
    )?;
    assert!(e.contains("not the pinned"), "{e}");

    ok(
        &home,
        &[
            "context",
            "create",
            "vm",
            "--host",
            &host,
            "--fingerprint",
            &fingerprint,
        ],
    )?;
    ok(&home, &["context", "use", "vm"])?;
    let status = ok(&home, &["status"])?;
    assert!(status.contains("api: serving on 0.0.0.0:7443"), "{status}");
    let out = ok(&home, &["run", "--rm", IMAGE, "echo", "over tls"])?;
    assert_eq!(out, "over tls\n");
    ok(
        &home,
        &["run", "-d", "--name", "remote", IMAGE, "sleep", "1000"],
    )?;
    let ps = ok(&home, &["ps"])?;
    assert!(ps.contains("remote"), "{ps}");

    // A reader sees, and changes nothing (its own certificate, the
    // machine pinned on first use in known_hosts).
    let reader = reader.to_str().unwrap_or("");
    let ps = ok(&home, &["-H", &host, "--tls-dir", reader, "ps"])?;
    assert!(ps.contains("remote"), "{ps}");
    let e = refused(
        &home,
        &["-H", &host, "--tls-dir", reader, "rm", "-f", "remote"],
    )?;
    assert!(e.contains("reader"), "{e}");
    ok(&home, &["rm", "-f", "remote"])?;
    power_off(&mut vm)?;
    Ok(())
}
