//! Importing archives in every format and checking the unpacked trees.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::{ImageId, Store, StoreOptions};

/// A layer of Debian's busybox-static; its absence fails the test
/// (a check that cannot run must never pass unrun).
fn busybox_layer() -> Vec<u8> {
    let busybox = fs::read("/bin/busybox").unwrap_or_else(|e| {
        panic!("/bin/busybox: {e} (apt-get install busybox-static, as cargo xtask test does)")
    });
    Layer::default()
        .dir("bin/", 0o755)
        .file("bin/busybox", &busybox, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/ls", "/bin/busybox")
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .tar()
}

fn check_busybox_tree(layer: &Path) {
    let busybox = fs::read("/bin/busybox").unwrap();
    assert_eq!(fs::read(layer.join("bin/busybox")).unwrap(), busybox);
    let meta = fs::symlink_metadata(layer.join("bin/busybox")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), 1_700_000_000);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
    }
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // absolute symlinks are content, kept as they are
    assert_eq!(
        fs::read_link(layer.join("bin/ls")).unwrap(),
        Path::new("/bin/busybox")
    );
}

#[test]
fn oci_archive_with_busybox_runs_in_a_chroot() {
    let layer = busybox_layer();
    let image = TestImage::new(Some("busybox:1.36"), vec![layer], Compress::Gzip);
    let dir = tempfile::tempdir().unwrap();
    let archive = write_archive(dir.path(), "busybox.tar", &oci_archive(&[&image]));
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let imported = store.import(&archive).unwrap();
    assert_eq!(imported.len(), 1);
    let summary = &imported[0];
    assert_eq!(summary.names, ["busybox:1.36"]);
    assert_eq!(summary.id, ImageId(image.id()));
    assert_eq!(summary.manifest, Digest::of(&image.manifest));
    assert_eq!(summary.layers, 1);
    assert_eq!(store.list(), imported);
    assert_eq!(store.get("busybox:1.36").unwrap(), *summary);
    assert_eq!(store.get(&image.id().hex()[..12]).unwrap(), *summary);

    let paths = store.layer_paths(&summary.id).unwrap();
    assert_eq!(
        paths,
        [dir.path()
            .join("store/layers")
            .join(image.diff_ids()[0].hex())]
    );
    check_busybox_tree(&paths[0]);
    let config = store.image_config(&summary.id).unwrap();
    assert_eq!(
        config.config().as_ref().unwrap().cmd().as_ref().unwrap(),
        &["/bin/sh"]
    );
    // staging is gone
    assert_eq!(
        fs::read_dir(dir.path().join("store/tmp")).unwrap().count(),
        0
    );

    require_root("chroot into the busybox layer");
    let out = Command::new("chroot")
        .arg(&paths[0])
        .args(["/bin/sh", "-c", "echo hello from $(ls /bin/sh)"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from /bin/sh\n");
}

fn two_images() -> (TestImage, TestImage) {
    let base = Layer::default()
        .dir("etc/", 0o755)
        .file("etc/os-release", b"ID=test\n", 0o644)
        .tar();
    let top = Layer::default()
        .dir("app/", 0o755)
        .file("app/run", b"#!/bin/sh\n", 0o755)
        .tar();
    let a = TestImage::new(Some("base"), vec![base.clone()], Compress::None);
    let b = TestImage::new(Some("app:v1"), vec![base, top], Compress::None);
    (a, b)
}

fn layer_dirs(store: &Store) -> usize {
    fs::read_dir(store.root().join("layers")).unwrap().count()
}

#[test]
fn docker_save_archives_old_and_new() {
    for legacy in [true, false] {
        let (a, b) = two_images();
        let dir = tempfile::tempdir().unwrap();
        let archive = write_archive(dir.path(), "save.tar", &docker_archive(&[&a, &b], legacy));
        let mut store = Store::open(dir.path().join("store")).unwrap();
        let imported = store.import(&archive).unwrap();
        let names: Vec<_> = imported.iter().map(|s| s.names.clone()).collect();
        assert_eq!(names, [["base:latest"], ["app:v1"]], "legacy={legacy}");
        // the image id is the config digest, whatever the archive format
        assert_eq!(imported[1].id, ImageId(b.id()));
        assert_eq!(layer_dirs(&store), 2, "the shared layer is unpacked once");
        let paths = store.layer_paths(&imported[1].id).unwrap();
        assert_eq!(paths[0], store.layer_paths(&imported[0].id).unwrap()[0]);
        assert_eq!(
            fs::read(paths[0].join("etc/os-release")).unwrap(),
            b"ID=test\n"
        );
        assert_eq!(fs::read(paths[1].join("app/run")).unwrap(), b"#!/bin/sh\n");
        assert!(
            !paths[1].join("etc").exists(),
            "layers are never copied into each other"
        );
        store.image_config(&imported[1].id).unwrap();
    }
}

#[test]
fn gzipped_archive_and_zstd_layers() {
    let layer = Layer::default().file("hello", b"zstd!", 0o644).tar();
    let image = TestImage::new(Some("z"), vec![layer], Compress::Zstd);
    let dir = tempfile::tempdir().unwrap();
    let archive = write_archive(dir.path(), "z.tar.gz", &gzip(&oci_archive(&[&image])));
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = store.import(&archive).unwrap()[0].id;
    let paths = store.layer_paths(&id).unwrap();
    assert_eq!(fs::read(paths[0].join("hello")).unwrap(), b"zstd!");
}

#[test]
fn a_shared_layer_is_unpacked_once_across_imports() {
    let (a, b) = two_images();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id_a = store
        .import(write_archive(dir.path(), "a.tar", &oci_archive(&[&a])))
        .unwrap()[0]
        .id;
    let base = store.layer_paths(&id_a).unwrap().remove(0);
    let inode = fs::metadata(&base).unwrap().ino();
    let id_b = store
        .import(write_archive(dir.path(), "b.tar", &oci_archive(&[&b])))
        .unwrap()[0]
        .id;
    assert_eq!(layer_dirs(&store), 2);
    let paths_b = store.layer_paths(&id_b).unwrap();
    assert_eq!(paths_b[0], base, "lower-first: base layer first");
    assert_eq!(
        fs::metadata(&base).unwrap().ino(),
        inode,
        "not unpacked again"
    );
    // importing the same archive again changes nothing
    let before = listing(store.root());
    store
        .import(write_archive(dir.path(), "b2.tar", &oci_archive(&[&b])))
        .unwrap();
    assert_eq!(listing(store.root()), before);
    // the store is persistent
    drop(store);
    let store = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(store.list().len(), 2);
    assert_eq!(store.get("app:v1").unwrap().id, id_b);
}

#[test]
fn whiteouts_and_opaque_directories_become_overlayfs_ones() {
    require_root("whiteouts_and_opaque_directories_become_overlayfs_ones");
    let lower = Layer::default()
        .dir("etc/", 0o755)
        .file("etc/old", b"old", 0o644)
        .file("etc/kept", b"kept", 0o644)
        .dir("usr/lib/", 0o755)
        .file("usr/lib/a", b"a", 0o644)
        .tar();
    let upper = Layer::default()
        .dir("etc/", 0o755)
        .file("etc/.wh.old", b"", 0o644)
        .dir("usr/lib/", 0o755)
        .file("usr/lib/.wh..wh..opq", b"", 0o644)
        .file("usr/lib/b", b"b", 0o644)
        .tar();
    let image = TestImage::new(Some("wh"), vec![lower, upper], Compress::Gzip);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = store
        .import(write_archive(dir.path(), "wh.tar", &oci_archive(&[&image])))
        .unwrap()[0]
        .id;
    let paths = store.layer_paths(&id).unwrap();
    let top = &paths[1];
    let st = rustix::fs::lstat(top.join("etc/old")).unwrap();
    assert_eq!(
        rustix::fs::FileType::from_raw_mode(st.st_mode),
        rustix::fs::FileType::CharacterDevice
    );
    assert_eq!(
        (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
        (0, 0)
    );
    assert!(!top.join("etc/.wh.old").exists());
    assert!(!top.join("usr/lib/.wh..wh..opq").exists());
    let mut value = [0u8; 8];
    let n =
        rustix::fs::lgetxattr(top.join("usr/lib"), "trusted.overlay.opaque", &mut value).unwrap();
    assert_eq!(&value[..n], b"y");

    // And overlayfs agrees, where this machine lets us mount it.
    let target = dir.path().join("merged");
    fs::create_dir(&target).unwrap();
    let lowerdir = format!("lowerdir={}:{}", top.display(), paths[0].display());
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lowerdir])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("SKIPPED overlay mount check: cannot mount overlayfs here");
        return;
    }
    let seen = (
        target.join("etc/old").exists(),
        target.join("etc/kept").exists(),
        target.join("usr/lib/a").exists(),
        target.join("usr/lib/b").exists(),
    );
    let _ = Command::new("umount").arg(&target).status();
    assert_eq!(seen, (false, true, false, true));
}

#[test]
fn ownership_modes_times_and_xattrs_are_preserved() {
    require_root("ownership_modes_times_and_xattrs_are_preserved");
    let layer = Layer::default()
        .dir("secret/", 0o700)
        .file_owned("secret/suid", b"x", 0o4755, 1000, 1001)
        .file_with_xattr("cap", b"y", ("user.husk", b"test"))
        .hardlink("secret/link", "cap")
        .tar();
    let image = TestImage::new(None, vec![layer], Compress::None);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let summary = store
        .import(write_archive(dir.path(), "o.tar", &oci_archive(&[&image])))
        .unwrap()
        .remove(0);
    assert!(summary.names.is_empty());
    let root = &store.layer_paths(&summary.id).unwrap()[0];
    let suid = fs::metadata(root.join("secret/suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid()), (1000, 1001));
    assert_eq!(
        suid.mode() & 0o7777,
        0o4755,
        "chown must not clear the setuid bit"
    );
    let secret = fs::metadata(root.join("secret")).unwrap();
    assert_eq!(secret.mode() & 0o7777, 0o700);
    assert_eq!(
        secret.mtime(),
        1_700_000_000,
        "set after its children were written"
    );
    let mut value = [0u8; 8];
    let n = rustix::fs::lgetxattr(root.join("cap"), "user.husk", &mut value).unwrap();
    assert_eq!(&value[..n], b"test");
    let link = fs::metadata(root.join("secret/link")).unwrap();
    assert_eq!(link.ino(), fs::metadata(root.join("cap")).unwrap().ino());
}

#[test]
fn device_nodes_when_allowed() {
    require_root("device_nodes_when_allowed");
    let layer = Layer::default().char_device("dev/null", 1, 3).tar();
    let image = TestImage::new(None, vec![layer], Compress::None);
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        allow_devices: true,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(dir.path().join("store"), options).unwrap();
    let id = store
        .import(write_archive(dir.path(), "d.tar", &oci_archive(&[&image])))
        .unwrap()[0]
        .id;
    let st = rustix::fs::lstat(store.layer_paths(&id).unwrap()[0].join("dev/null")).unwrap();
    assert_eq!(
        (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
        (1, 3)
    );
    assert_eq!(st.st_mode & 0o7777, 0o666);
}
