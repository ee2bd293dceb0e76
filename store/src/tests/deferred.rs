//! Deferred unpacking (`husk-image build --preload`): an import that only
//! verifies and keeps layer blobs, completed by the next store to open.

use std::fs;

use super::*;
use crate::{Store, StoreOptions};

fn image() -> TestImage {
    let layer = Layer::default()
        .dir("etc", 0o755)
        .file("etc/hello", b"preloaded\n", 0o644)
        .tar();
    TestImage::new(Some("preload/app:1"), vec![layer], Compress::Gzip)
}

fn deferred(dir: &std::path::Path) -> Store {
    Store::open_with(
        dir.join("store"),
        StoreOptions {
            defer_unpack: true,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn a_deferred_import_is_completed_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let archive = write_archive(dir.path(), "a.tar", &oci_archive(&[&img]));
    let id = {
        let mut store = deferred(dir.path());
        let imported = store.import(&archive).unwrap();
        let id = imported[0].id;
        // Nothing unpacked, and the image cannot run yet.
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            0
        );
        let err = store.layer_paths(&id).unwrap_err();
        assert!(err.to_string().contains("not unpacked"), "{err}");
        id
    };
    let store = Store::open(dir.path().join("store")).unwrap();
    let layers = store.layer_paths(&id).unwrap();
    assert_eq!(
        fs::read(layers[0].join("etc/hello")).unwrap(),
        b"preloaded\n"
    );
    // The compressed copy is gone once unpacked; gc has nothing to do.
    let blobs = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2, "manifest and config only");
}

#[test]
fn a_corrupted_blob_is_reported_and_leaves_the_store_usable() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let archive = write_archive(dir.path(), "a.tar", &oci_archive(&[&img]));
    let id = {
        let mut store = deferred(dir.path());
        store.import(&archive).unwrap()[0].id
    };
    // Damage the kept layer blob (the largest blob: the gzip layer).
    let blobs = dir.path().join("store/blobs/sha256");
    let layer_blob = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = fs::read(&layer_blob).unwrap();
    let last = data.len() - 9;
    data[last] ^= 0xff;
    fs::write(&layer_blob, data).unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let err = store.layer_paths(&id).unwrap_err();
    assert!(err.to_string().contains("not unpacked"), "{err}");
    // The store still works: the image is listed, another imports fine.
    assert_eq!(store.list().len(), 1);
    let other = TestImage::new(
        Some("other:1"),
        vec![Layer::default().file("x", b"x", 0o644).tar()],
        Compress::None,
    );
    store
        .import(write_archive(dir.path(), "b.tar", &oci_archive(&[&other])))
        .unwrap();
}
