//! `tar_unpack`'s seeds: small layers of every entry kind the unpacker
//! handles, hostile ones among them, plain and compressed.

use std::io::Write;

use super::Seed;

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn dir(mut self, path: &str) -> Self {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = header(kind, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn node(mut self, kind: tar::EntryType, path: &str) -> Self {
        let mut h = header(kind, 0o644, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.0.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    /// A PAX header (`x`) before the next entry.
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry whose name the tar crate's setters would refuse.
    fn raw(mut self, kind: tar::EntryType, name: &[u8], data: &[u8]) -> Self {
        let mut h = header(kind, 0o644, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn done(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn basic() -> Vec<u8> {
    Layer::new()
        .dir("./")
        .dir("bin")
        .file("bin/busybox", 0o755, b"\x7fELF not really")
        .link(tar::EntryType::Symlink, "bin/sh", "busybox")
        .link(tar::EntryType::Link, "bin/ash", "bin/busybox")
        .dir("etc")
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .file("etc/shadow", 0o4640, b"root:*:19000:0:99999:7:::\n")
        .node(tar::EntryType::Fifo, "run/initctl")
        .done()
}

pub fn seeds() -> Vec<Seed> {
    let whiteouts = Layer::new()
        .dir("etc")
        .file("etc/.wh.passwd", 0o644, b"")
        .dir("var/cache")
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("var/.wh..wh.plnk", 0o644, b"")
        .done();
    let pax = Layer::new()
        .pax(&[
            ("path", b"usr/share/a-very-long-name-given-by-pax.txt"),
            ("uid", b"1000"),
            ("gid", b"1000"),
            ("mtime", b"1700000000.123456789"),
            ("SCHILY.xattr.user.comment", b"hello"),
        ])
        .file("placeholder", 0o644, b"pax\n")
        .file(
            &format!("usr/lib/{}/file", "deep/".repeat(40)),
            0o644,
            b"gnu long name\n",
        )
        .done();
    let hostile = Layer::new()
        .raw(tar::EntryType::Regular, b"../escape", b"out\n")
        .raw(tar::EntryType::Regular, b"/etc/absolute", b"in the layer\n")
        .link(tar::EntryType::Symlink, "up", "/")
        .raw(
            tar::EntryType::Regular,
            b"up/tmp/through-a-symlink",
            b"refused\n",
        )
        .link(tar::EntryType::Link, "hard", "../../etc/passwd")
        .raw(tar::EntryType::Regular, b"a/.wh...", b"")
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("opaque")
        .node(tar::EntryType::Char, "dev/mem")
        .done();
    let replaced = Layer::new()
        .dir("a")
        .file("a", 0o644, b"a directory replaced by a file\n")
        .file("b", 0o644, b"first\n")
        .link(tar::EntryType::Symlink, "b", "a")
        .dir("b/c")
        .done();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&basic()).unwrap();
    vec![
        ("basic", basic()),
        ("whiteouts", whiteouts),
        ("pax-and-long-names", pax),
        ("hostile", hostile),
        ("replaced", replaced),
        ("basic.gz", gzip.finish().unwrap()),
        (
            "basic.zst",
            zstd::stream::encode_all(&basic()[..], 3).unwrap(),
        ),
    ]
}
