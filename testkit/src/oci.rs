//! OCI image layout archives (what `skopeo copy … oci-archive:` writes)
//! of small busybox root filesystems.

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A header owned by root (a fresh ustar header has empty id fields,
/// which the store rightly refuses).
pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

pub(crate) fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    data: &[u8],
) {
    let mode = if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    };
    let mut h = header(kind, mode, data.len() as u64);
    tar.append_data(&mut h, name, data).unwrap();
}

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// A busybox root filesystem layer: /bin/busybox (the host's, static),
/// /bin/sh and a few applets linking to it, and /etc/passwd.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).expect("tests need a static /bin/busybox");
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, tar::EntryType::Directory, "bin", b"");
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    tar.append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    for applet in [
        "sh", "sleep", "id", "cat", "echo", "seq", "hostname", "grep", "tr", "true", "env", "tty",
    ] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    append(&mut tar, tar::EntryType::Directory, "etc", b"");
    append(
        &mut tar,
        tar::EntryType::Regular,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n",
    );
    tar.into_inner().unwrap()
}

/// A layer of regular files (path, mode, contents), with the
/// directories they need.
pub fn files_layer(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, mode, data) in files {
        let mut dir = std::path::Path::new(path).parent();
        let mut missing = Vec::new();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if dirs.insert(d.to_path_buf()) {
                missing.push(d.to_path_buf());
            }
            dir = d.parent();
        }
        for d in missing.iter().rev() {
            append(
                &mut tar,
                tar::EntryType::Directory,
                d.to_str().unwrap(),
                b"",
            );
        }
        let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
        tar.append_data(&mut h, path, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// The image of the README's and examples/user-data.toml's web server,
/// `registry.example/web:1.4`: busybox and `/web --listen :PORT`, an
/// HTTP server answering `hello from web-1` on that port.
pub fn web_image_archive() -> Vec<u8> {
    const WEB: &[u8] =
        b"#!/bin/sh\n# /web --listen :PORT\nexec busybox httpd -f -p \"${2#:}\" -h /www\n";
    let site = files_layer(&[
        ("web", 0o755, WEB),
        ("www/index.html", 0o644, b"hello from web-1\n"),
    ]);
    oci_archive(WEB_IMAGE, &[busybox_layer(), site])
}

/// [`web_image_archive`]'s name.
pub const WEB_IMAGE: &str = "registry.example/web:1.4";

/// An OCI descriptor of `data`.
pub fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256(data), "size": data.len()})
}

/// The config and the manifest (both serialised) of a linux image of
/// uncompressed `layers`, for `architecture` (and `variant`, as arm64's
/// `v8`, when given).
pub fn config_and_manifest(
    architecture: &str,
    variant: Option<&str>,
    layers: &[Vec<u8>],
) -> (Vec<u8>, Vec<u8>) {
    config_and_manifest_with(architecture, variant, layers, json!({}))
}

/// [`config_and_manifest`] with more of the image config's `config`
/// (`{"Volumes": {"/data": {}}}`).
pub fn config_and_manifest_with(
    architecture: &str,
    variant: Option<&str>,
    layers: &[Vec<u8>],
    more: serde_json::Value,
) -> (Vec<u8>, Vec<u8>) {
    let mut image_config = json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]});
    if let (Some(into), serde_json::Value::Object(more)) = (image_config.as_object_mut(), more) {
        into.extend(more);
    }
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
    });
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter()
            .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l))
            .collect::<Vec<_>>(),
    }))
    .unwrap();
    (config, manifest)
}

/// What `skopeo copy … oci-archive:FILE:NAME` writes, for one image of
/// uncompressed layers.
pub fn oci_archive(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    oci_archive_with(name, layers, json!({}))
}

/// [`oci_archive`] with more of the image config's `config`.
pub fn oci_archive_with(name: &str, layers: &[Vec<u8>], more: serde_json::Value) -> Vec<u8> {
    let (config, manifest) = config_and_manifest_with("amd64", None, layers, more);
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
