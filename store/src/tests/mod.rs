//! Store tests. Archives are built here, with the `tar` crate, the way
//! skopeo (`oci-archive:`) and `docker save` (before and since Docker 25)
//! write them. Tests that need root (whiteouts, devices, ownership) say so
//! and skip when not run as root.

mod deferred;
mod export;
mod import;
mod incoming;
mod lifecycle;
mod limits;
mod live_tree;
mod malicious;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::digest::Digest;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Fails the test, naming why, when not root: a root-only test must
/// never pass unrun.
pub fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} needs root (CAP_MKNOD / trusted.* xattrs / chown): run it as root, as CI does"
    );
}

/// Builds a layer tar entry by entry. Names are written raw, so tests can
/// write names the tar crate's own helpers would refuse (`..`, `/etc/x`).
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl Layer {
    fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        let slot = &mut h.as_old_mut().name;
        assert!(name.len() < slot.len(), "test names are short");
        slot[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }

    fn push(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(self, name: &str, mode: u32) -> Self {
        let h = Self::header(tar::EntryType::Directory, name, mode, 0);
        self.push(h, b"")
    }

    pub fn file(self, name: &str, data: &[u8], mode: u32) -> Self {
        let h = Self::header(tar::EntryType::Regular, name, mode, data.len() as u64);
        self.push(h, data)
    }

    pub fn file_owned(self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, name, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, name, 0o777, 0);
        h.set_link_name_literal(target).unwrap();
        self.push(h, b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, name, 0o644, 0);
        h.set_link_name_literal(target).unwrap();
        self.push(h, b"")
    }

    pub fn char_device(self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Char, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    /// A file carrying xattrs in a PAX header, as `tar --xattrs` writes.
    pub fn file_with_xattr(mut self, name: &str, data: &[u8], xattr: (&str, &[u8])) -> Self {
        let key = format!("SCHILY.xattr.{}", xattr.0);
        self.builder
            .append_pax_extensions([(key.as_str(), xattr.1)])
            .unwrap();
        self.file(name, data, 0o644)
    }

    /// A file named in a PAX `path` header, as tar writes long names.
    pub fn file_pax_path(mut self, name: &str, data: &[u8]) -> Self {
        self.builder
            .append_pax_extensions([("path", name.as_bytes())])
            .unwrap();
        self.file("pax-named", data, 0o644)
    }

    /// An entry whose name (or link target) may be too long for the
    /// header, written as GNU tar does (`././@LongLink` entries).
    pub fn long_names(mut self, kind: tar::EntryType, name: &str, link: Option<&str>) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        match link {
            Some(target) => self.builder.append_link(&mut h, name, target),
            None => self.builder.append_data(&mut h, name, &b""[..]),
        }
        .unwrap();
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

/// A test image: layers (uncompressed tars), how they are distributed, and
/// the blobs that make it up.
#[derive(Clone)]
pub struct TestImage {
    pub name: Option<String>,
    pub layer_tars: Vec<Vec<u8>>,
    /// (media type, blob) per layer.
    pub layer_blobs: Vec<(String, Vec<u8>)>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn new(name: Option<&str>, layers: Vec<Vec<u8>>, compress: Compress) -> Self {
        Self::with_diff_ids(name, layers, compress, None)
    }

    /// `diff_ids`: what the config claims (default: the true ones).
    pub fn with_diff_ids(
        name: Option<&str>,
        layer_tars: Vec<Vec<u8>>,
        compress: Compress,
        diff_ids: Option<Vec<String>>,
    ) -> Self {
        let diff_ids = diff_ids.unwrap_or_else(|| {
            layer_tars
                .iter()
                .map(|t| Digest::of(t).to_string())
                .collect()
        });
        let layer_blobs = layer_tars
            .iter()
            .map(|t| match compress {
                Compress::None => ("application/vnd.oci.image.layer.v1.tar".into(), t.clone()),
                Compress::Gzip => (
                    "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    gzip(t),
                ),
                Compress::Zstd => (
                    "application/vnd.oci.image.layer.v1.tar+zstd".into(),
                    zstd::stream::encode_all(&t[..], 3).unwrap(),
                ),
            })
            .collect();
        Self {
            layer_tars,
            ..Self::from_blobs(name, layer_blobs, diff_ids)
        }
    }

    /// An image of ready-made layer blobs (media type, blob) whose config
    /// claims `diff_ids`: for layers never held uncompressed (bombs).
    /// `oci_archive` only (it has no `layer_tars`).
    pub fn from_blobs(
        name: Option<&str>,
        layer_blobs: Vec<(String, Vec<u8>)>,
        diff_ids: Vec<String>,
    ) -> Self {
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::of(&config).to_string(),
                "size": config.len(),
            },
            "layers": layer_blobs.iter().map(|(mt, b)| json!({
                "mediaType": mt,
                "digest": Digest::of(b).to_string(),
                "size": b.len(),
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        Self {
            name: name.map(Into::into),
            layer_tars: Vec::new(),
            layer_blobs,
            config,
            manifest,
        }
    }

    pub fn id(&self) -> Digest {
        Digest::of(&self.config)
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layer_tars.iter().map(|t| Digest::of(t)).collect()
    }
}

/// An archive being written: plain files at given names.
#[derive(Default)]
pub struct ArchiveBuilder {
    files: Vec<(String, Vec<u8>)>,
    symlinks: Vec<(String, String)>,
}

impl ArchiveBuilder {
    pub fn add(&mut self, name: &str, data: &[u8]) {
        if !self.files.iter().any(|(n, _)| n == name) {
            self.files.push((name.into(), data.to_vec()));
        }
    }

    pub fn add_blob(&mut self, data: &[u8]) {
        self.add(&format!("blobs/sha256/{}", Digest::of(data).hex()), data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.symlinks.push((name.into(), target.into()));
    }

    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dirs = BTreeSet::new();
        for (name, _) in &self.files {
            let mut p = Path::new(name).parent();
            while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert(d.to_path_buf());
                p = d.parent();
            }
        }
        for d in dirs {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, &d, &b""[..]).unwrap();
        }
        for (name, data) in &self.files {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        for (name, target) in &self.symlinks {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        b.into_inner().unwrap()
    }
}

/// What `skopeo copy … oci-archive:FILE:NAME` writes.
pub fn oci_archive(images: &[&TestImage]) -> Vec<u8> {
    let mut a = ArchiveBuilder::default();
    a.add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = json!({
        "schemaVersion": 2,
        "manifests": images.iter().map(|i| {
            let mut d = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": Digest::of(&i.manifest).to_string(),
                "size": i.manifest.len(),
            });
            if let Some(name) = &i.name {
                d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
            }
            d
        }).collect::<Vec<_>>(),
    });
    a.add("index.json", &serde_json::to_vec(&index).unwrap());
    for i in images {
        for (_, blob) in &i.layer_blobs {
            a.add_blob(blob);
        }
        a.add_blob(&i.config);
        a.add_blob(&i.manifest);
    }
    a.tar()
}

/// What `docker save` writes: before Docker 25 (`legacy`: `<id>/layer.tar`,
/// `<config hex>.json`, identical layers as symlinks to the first copy) or
/// since (an OCI layout, with `manifest.json` naming `blobs/sha256/…`).
pub fn docker_archive(images: &[&TestImage], legacy: bool) -> Vec<u8> {
    let mut a = ArchiveBuilder::default();
    let mut entries = Vec::new();
    let mut seen: Vec<(Digest, String)> = Vec::new();
    for (n, i) in images.iter().enumerate() {
        let mut layers = Vec::new();
        for (l, tar) in i.layer_tars.iter().enumerate() {
            let d = Digest::of(tar);
            if !legacy {
                a.add_blob(tar);
                layers.push(format!("blobs/sha256/{}", d.hex()));
                continue;
            }
            // docker's v1 layer ids are per image and position
            let id = Digest::of(format!("{n}-{l}").as_bytes()).hex();
            let name = format!("{id}/layer.tar");
            match seen.iter().find(|(s, _)| *s == d) {
                Some((_, first)) => a.symlink(&name, &format!("../{first}")),
                None => {
                    a.add(&name, tar);
                    a.add(&format!("{id}/VERSION"), b"1.0");
                    seen.push((d, name.clone()));
                }
            }
            layers.push(name);
        }
        let config = if legacy {
            let name = format!("{}.json", Digest::of(&i.config).hex());
            a.add(&name, &i.config);
            name
        } else {
            a.add_blob(&i.config);
            format!("blobs/sha256/{}", Digest::of(&i.config).hex())
        };
        entries.push(json!({
            "Config": config,
            "RepoTags": i.name.iter().collect::<Vec<_>>(),
            "Layers": layers,
        }));
    }
    if !legacy {
        a.add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        a.add("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    }
    a.add("manifest.json", &serde_json::to_vec(&entries).unwrap());
    a.add("repositories", b"{}");
    a.tar()
}

/// Writes an archive to a file in `dir`.
pub fn write_archive(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    path
}

/// Every path under `root` with its type, size, mode and (for symlinks)
/// target: the store's state as a test compares it.
pub fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            use std::os::unix::fs::MetadataExt;
            // (a directory's size depends on the filesystem's history)
            let size = if meta.is_dir() { 0 } else { meta.len() };
            let mut line = format!("{rel} {:o} {size}", meta.mode());
            if meta.is_symlink() {
                line += &format!(" -> {}", fs::read_link(&path).unwrap().display());
            }
            if meta.is_file() {
                line += &format!(" {}", Digest::of(&fs::read(&path).unwrap()));
            }
            out.push(line);
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}
