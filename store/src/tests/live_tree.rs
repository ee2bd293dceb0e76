//! Archives extracted into a live tree (`docker cp` into a container):
//! merged into what is there, whiteout names refused, nothing written on
//! a kernel interface, owners fixed or shifted into a user namespace.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::*;
use crate::unpack::{IdShift, Owner, UnpackError, UnpackOptions, unpack_into};

fn open_dir(path: &Path) -> std::os::fd::OwnedFd {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

fn live(owner: Owner, id_shift: Option<IdShift>) -> UnpackOptions {
    UnpackOptions {
        live_tree: true,
        owner,
        id_shift,
        ..UnpackOptions::default()
    }
}

#[test]
fn merges_into_a_tree_that_has_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("kept"), "kept").unwrap();
    fs::write(dir.path().join("replaced"), "old").unwrap();
    let tar = Layer::default()
        .file("replaced", b"new", 0o644)
        .file("added/inside", b"added", 0o600)
        .tar();
    unpack_into(
        &tar[..],
        open_dir(dir.path()),
        live(Owner::AsArchived, None),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("kept")).unwrap(), "kept");
    assert_eq!(
        fs::read_to_string(dir.path().join("replaced")).unwrap(),
        "new"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("added/inside")).unwrap(),
        "added"
    );
}

#[test]
fn refuses_whiteout_names() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("passwd"), "root").unwrap();
    let tar = Layer::default().file(".wh.passwd", b"", 0o644).tar();
    let err = unpack_into(
        &tar[..],
        open_dir(dir.path()),
        live(Owner::AsArchived, None),
    )
    .unwrap_err();
    assert!(matches!(err.error, UnpackError::Whiteout(_)), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("passwd")).unwrap(),
        "root"
    );
}

#[test]
fn writes_nothing_on_a_kernel_interface() {
    let tar = Layer::default()
        .file("core_pattern", b"|/tmp/pwn", 0o644)
        .tar();
    let err = unpack_into(
        &tar[..],
        open_dir(Path::new("/proc/sys/kernel")),
        live(Owner::AsArchived, None),
    )
    .unwrap_err();
    assert!(
        matches!(err.error, UnpackError::NotDataFilesystem(_)),
        "{err}"
    );
    // (one mounted inside the tree is refused as it is entered: the
    // agent's docker_cp test writes to a container's /proc that way)
}

#[test]
fn owners_are_fixed_and_shifted_into_the_namespace() {
    require_root("owners_are_fixed_and_shifted_into_the_namespace");
    let shift = IdShift {
        uid: 100_000,
        gid: 200_000,
        size: 65_536,
    };
    let dir = tempfile::tempdir().unwrap();
    let tar = Layer::default()
        .file_owned("as-archived", b"x", 0o644, 1000, 1001)
        .tar();
    unpack_into(
        &tar[..],
        open_dir(dir.path()),
        live(Owner::AsArchived, Some(shift)),
    )
    .unwrap();
    let meta = fs::metadata(dir.path().join("as-archived")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (101_000, 201_001));

    let tar = Layer::default()
        .file_owned("fixed", b"x", 0o644, 1000, 1001)
        .tar();
    let root = Owner::Fixed { uid: 0, gid: 0 };
    unpack_into(&tar[..], open_dir(dir.path()), live(root, Some(shift))).unwrap();
    let meta = fs::metadata(dir.path().join("fixed")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 200_000));

    // An id the namespace does not map is refused, not wrapped.
    let tar = Layer::default()
        .file_owned("outside", b"x", 0o644, 70_000, 0)
        .tar();
    let err = unpack_into(
        &tar[..],
        open_dir(dir.path()),
        live(Owner::AsArchived, Some(shift)),
    )
    .unwrap_err();
    assert!(
        matches!(err.error, UnpackError::IdOutsideNamespace { .. }),
        "{err}"
    );
}

#[test]
fn refuses_xattrs_but_users() {
    let dir = tempfile::tempdir().unwrap();
    let tar = Layer::default()
        .file_with_xattr(
            "ping",
            b"\x7fELF",
            ("security.capability", b"\x01\x00\x00\x02"),
        )
        .tar();
    let err = unpack_into(
        &tar[..],
        open_dir(dir.path()),
        live(Owner::AsArchived, None),
    )
    .unwrap_err();
    assert!(matches!(err.error, UnpackError::XattrRefused(_)), "{err}");
    assert!(!dir.path().join("ping").exists());
}
