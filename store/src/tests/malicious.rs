//! Hostile layers: each is refused with a clear error, nothing lands
//! outside the layer, and the store is left as it was.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::{Store, StoreError};

/// A name no test run on this machine has used, for files that must not
/// appear on the host.
fn marker(what: &str) -> String {
    format!("husk-store-test-{}-{what}", std::process::id())
}

struct Attempt {
    dir: tempfile::TempDir,
    result: Result<(), StoreError>,
}

impl Attempt {
    fn store(&self) -> PathBuf {
        self.dir.path().join("deep/er/store")
    }

    /// The import failed, saying `expected`; the store and its parent
    /// directories hold nothing the import wrote.
    fn refused(&self, expected: &str) {
        let err = self.result.as_ref().expect_err("the layer must be refused");
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "error `{message}` should say `{expected}`"
        );
        assert!(
            message.contains("entry `"),
            "error `{message}` names the entry"
        );
        let fresh = tempfile::tempdir().unwrap();
        drop(Store::open(fresh.path()).unwrap());
        assert_eq!(
            listing(&self.store()),
            listing(fresh.path()),
            "store untouched"
        );
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["a.tar", "deep", "outside"]);
    }
}

/// Imports a one-layer image into a fresh store at `deep/er/store`; the
/// tempdir also holds `outside/` (with `outside/f`, mode 0644) for
/// symlinks to point at.
fn attempt(layer: impl FnOnce(&Path) -> Vec<u8>) -> Attempt {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("f"), b"host file").unwrap();
    fs::set_permissions(outside.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    let image = TestImage::new(Some("evil"), vec![layer(&outside)], Compress::Gzip);
    let archive = write_archive(dir.path(), "a.tar", &oci_archive(&[&image]));
    let mut store = Store::open(dir.path().join("deep/er/store")).unwrap();
    let result = store.import(&archive).map(|_| ());
    Attempt { dir, result }
}

#[test]
fn dotdot_names_are_refused() {
    let name = marker("dotdot");
    let a = attempt(|_| {
        Layer::default()
            .file(&format!("../../../../../../../../etc/{name}"), b"x", 0o644)
            .tar()
    });
    a.refused("climbs out of the layer with `..`");
    assert!(!Path::new("/etc").join(&name).exists());
    let a = attempt(|_| Layer::default().file("a/../../x", b"x", 0o644).tar());
    a.refused("climbs out");
}

#[test]
fn absolute_names_land_inside_the_layer() {
    let name = marker("abs");
    let a = attempt(|_| {
        Layer::default()
            .file(&format!("/etc/{name}"), b"x", 0o644)
            .tar()
    });
    a.result.as_ref().unwrap();
    assert!(!Path::new("/etc").join(&name).exists());
    let layers = a.store().join("layers");
    let layer = fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(fs::read(layer.join("etc").join(&name)).unwrap(), b"x");
}

#[test]
fn writes_through_an_absolute_symlink_are_refused() {
    let name = marker("symlink");
    let a = attempt(|_| {
        Layer::default()
            .symlink("a", "/etc")
            .file(&format!("a/{name}"), b"x", 0o644)
            .tar()
    });
    a.refused("`a` is a symlink: refusing to write through it");
    assert!(!Path::new("/etc").join(&name).exists());
}

#[test]
fn writes_through_a_symlink_to_dotdot_are_refused() {
    let a = attempt(|_| {
        Layer::default()
            .symlink("up", "..")
            .file("up/escaped", b"x", 0o644)
            .tar()
    });
    a.refused("`up` is a symlink");
    let a = attempt(|_| {
        Layer::default()
            .dir("d/", 0o755)
            .symlink("d/up", "../../..")
            .dir("d/up/escaped/", 0o755)
            .tar()
    });
    a.refused("`d/up` is a symlink");
}

#[test]
fn chmod_through_a_symlink_is_refused() {
    // an entry for the symlink's target itself, and one for a path below it
    let a = attempt(|outside| {
        Layer::default()
            .symlink("l", outside.to_str().unwrap())
            .dir("l/", 0o777)
            .tar()
    });
    a.refused("`l` is a symlink");
    let outside = a.dir.path().join("outside");
    assert_eq!(fs::metadata(&outside).unwrap().mode() & 0o777, 0o755);

    let a = attempt(|outside| {
        Layer::default()
            .symlink("l", outside.to_str().unwrap())
            .file("l/f", b"replaced", 0o777)
            .tar()
    });
    a.refused("`l` is a symlink");
    let f = a.dir.path().join("outside/f");
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o644);
    assert_eq!(fs::read(&f).unwrap(), b"host file");
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let passwd_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    let a = attempt(|_| Layer::default().hardlink("p", "/etc/passwd").tar());
    a.refused("hardlink target `/etc/passwd` is not in the layer");
    assert_eq!(
        fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        passwd_links
    );

    let a = attempt(|_| Layer::default().hardlink("x", "../x").tar());
    a.refused("hardlink target `../x` is outside the layer");

    let a = attempt(|outside| {
        Layer::default()
            .symlink("s", outside.to_str().unwrap())
            .hardlink("p", "s/f")
            .tar()
    });
    a.refused("`s` is a symlink");
    assert_eq!(
        fs::metadata(a.dir.path().join("outside/f"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn device_nodes_are_refused_unless_allowed() {
    let a = attempt(|_| Layer::default().char_device("dev/mem", 1, 1).tar());
    a.refused("device node refused");
}

#[test]
fn overlay_xattrs_from_the_image_are_refused() {
    let a = attempt(|_| {
        Layer::default()
            .dir("d/", 0o755)
            .file_with_xattr("d/f", b"", ("trusted.overlay.redirect", b"/etc"))
            .tar()
    });
    a.refused("trusted.overlay.redirect");
}

#[test]
fn a_symlink_entry_is_replaced_not_followed() {
    // a later file entry with the symlink's name replaces the symlink
    let a = attempt(|outside| {
        Layer::default()
            .symlink("f", outside.join("f").to_str().unwrap())
            .file("f", b"inside", 0o600)
            .tar()
    });
    a.result.as_ref().unwrap();
    assert_eq!(
        fs::read(a.dir.path().join("outside/f")).unwrap(),
        b"host file"
    );
}
