//! Helpers shared by the agent's integration tests: a tiny OCI layout
//! archive builder (the store's own builders are `cfg(test)` inside the
//! library, out of reach here) and an agent started on temporary paths.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest as _, Sha256};

pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A header owned by root (a fresh ustar header has empty id fields,
/// which the store rightly refuses).
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn append(tar: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, data: &[u8]) {
    let mode = if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    };
    let mut h = header(kind, mode, data.len() as u64);
    tar.append_data(&mut h, name, data).unwrap();
}

/// A busybox root filesystem layer: /bin/busybox (the host's, static),
/// /bin/sh linking to it, and /etc/passwd.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("tests need a static /bin/busybox");
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, tar::EntryType::Directory, "bin", b"");
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    tar.append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(&mut h, "bin/sh", "busybox").unwrap();
    append(&mut tar, tar::EntryType::Directory, "etc", b"");
    append(
        &mut tar,
        tar::EntryType::Regular,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n",
    );
    tar.into_inner().unwrap()
}

/// What `skopeo copy … oci-archive:FILE:NAME` writes, for one image of
/// uncompressed layers.
pub fn oci_archive(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let descriptor = |media_type: &str, data: &[u8]| json!({"mediaType": media_type, "digest": sha256(data), "size": data.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter()
            .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l))
            .collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut index = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    index["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [index]})).unwrap();

    let mut tar = tar::Builder::new(Vec::new());
    append(
        &mut tar,
        tar::EntryType::Regular,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    append(&mut tar, tar::EntryType::Regular, "index.json", &index);
    append(&mut tar, tar::EntryType::Directory, "blobs", b"");
    append(&mut tar, tar::EntryType::Directory, "blobs/sha256", b"");
    for blob in layers.iter().chain([&config, &manifest]) {
        let name = format!("blobs/sha256/{}", &sha256(blob)["sha256:".len()..]);
        append(&mut tar, tar::EntryType::Regular, &name, blob);
    }
    tar.into_inner().unwrap()
}

/// An agent on a temporary socket and image store, killed on drop.
pub struct Agent {
    pub child: Option<Child>,
    pub socket: PathBuf,
}

impl Agent {
    /// Starts the agent with `extra` arguments and waits for READY=1.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let socket = dir.join("agent.sock");
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_husk-agent"))
            .arg("--socket")
            .arg(&socket)
            .arg("--data-status")
            .arg(dir.join("data.json"))
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 64];
        notify.recv(&mut buf).expect("the agent never sent READY=1");
        Self {
            child: Some(child),
            socket,
        }
    }

    pub fn huskctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_huskctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// huskctl's stdout, asserting success.
    pub fn huskctl_ok(&self, args: &[&str]) -> String {
        let out = self.huskctl(args);
        assert!(out.status.success(), "huskctl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// huskctl's stderr, asserting exit status 1.
    pub fn huskctl_err(&self, args: &[&str]) -> String {
        let out = self.huskctl(args);
        assert_eq!(out.status.code(), Some(1), "huskctl {args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Stops the agent (SIGTERM) and returns what it logged.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
