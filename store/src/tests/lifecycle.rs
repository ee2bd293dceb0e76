//! Failed imports leave the store as it was; rm, gc, the lock.

use std::fs;
use std::path::Path;

use super::*;
use crate::{ImageId, Removed, Store, StoreError};

fn simple(name: &str, content: &[u8]) -> TestImage {
    let layer = Layer::default().file(name, content, 0o644).tar();
    TestImage::new(Some(name), vec![layer], Compress::Gzip)
}

/// A store holding one image, and its listing.
fn store_with_one_image(dir: &Path) -> (Store, Vec<String>) {
    let mut store = Store::open(dir.join("store")).unwrap();
    let a = simple("first", b"1");
    store
        .import(write_archive(dir, "first.tar", &oci_archive(&[&a])))
        .unwrap();
    let before = listing(store.root());
    (store, before)
}

fn assert_fails_cleanly(archive: Vec<u8>, check: impl Fn(&StoreError)) {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = store_with_one_image(dir.path());
    let err = store
        .import(write_archive(dir.path(), "bad.tar", &archive))
        .unwrap_err();
    check(&err);
    assert_eq!(listing(store.root()), before, "after: {err}");
    assert_eq!(store.list().len(), 1);
}

#[test]
fn a_blob_that_does_not_match_its_digest_fails_the_import() {
    let b = simple("second", b"2");
    let mut tampered = b.clone();
    // the file keeps its name; its content changes
    tampered.layer_blobs[0].1 = gzip(&Layer::default().file("second", b"evil", 0o644).tar());
    let mut a = ArchiveBuilder::default();
    a.add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(&b.manifest).to_string(),
        "size": b.manifest.len(),
    }]});
    a.add("index.json", &serde_json::to_vec(&index).unwrap());
    let layer_name = format!("blobs/sha256/{}", Digest::of(&b.layer_blobs[0].1).hex());
    a.add(&layer_name, &tampered.layer_blobs[0].1);
    a.add_blob(&b.config);
    a.add_blob(&b.manifest);
    assert_fails_cleanly(a.tar(), |err| {
        assert!(
            matches!(err, StoreError::DigestMismatch { file, .. } if *file == layer_name),
            "{err}"
        );
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
    });
}

#[test]
fn a_missing_blob_fails_the_import() {
    let b = simple("second", b"2");
    let mut a = ArchiveBuilder::default();
    a.add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(&b.manifest).to_string(),
        "size": b.manifest.len(),
    }]});
    a.add("index.json", &serde_json::to_vec(&index).unwrap());
    a.add_blob(&b.config);
    a.add_blob(&b.manifest);
    assert_fails_cleanly(a.tar(), |err| {
        assert!(matches!(err, StoreError::MissingBlob { .. }), "{err}");
        let layer = Digest::of(&b.layer_blobs[0].1).to_string();
        assert!(err.to_string().contains(&layer), "{err} names {layer}");
    });
    // docker save without a layer file
    let mut archive = ArchiveBuilder::default();
    archive.add(
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["gone/layer.tar"]}]"#,
    );
    archive.add("c.json", &b.config);
    assert_fails_cleanly(archive.tar(), |err| {
        assert!(err.to_string().contains("`gone/layer.tar`"), "{err}");
    });
}

#[test]
fn a_wrong_diff_id_fails_the_import() {
    let layer = Layer::default().file("f", b"x", 0o644).tar();
    let wrong = Digest::of(b"something else").to_string();
    let image = TestImage::with_diff_ids(Some("w"), vec![layer], Compress::Gzip, Some(vec![wrong]));
    assert_fails_cleanly(oci_archive(&[&image]), |err| {
        assert!(matches!(err, StoreError::DiffIdMismatch { .. }), "{err}");
    });
}

#[test]
fn a_bad_layer_after_good_ones_leaves_nothing_behind() {
    let good = Layer::default().file("good", b"g", 0o644).tar();
    let bad = Layer::default().file("../bad", b"b", 0o644).tar();
    let good_image = simple("also-good", b"ok");
    let image = TestImage::new(Some("half"), vec![good, bad], Compress::Gzip);
    assert_fails_cleanly(oci_archive(&[&good_image, &image]), |err| {
        assert!(matches!(err, StoreError::Unpack { .. }), "{err}");
    });
}

#[test]
fn not_an_archive() {
    assert_fails_cleanly(b"hello".repeat(200), |err| {
        assert!(matches!(err, StoreError::NotAnArchive { .. }), "{err}");
    });
}

#[test]
fn rm_is_refused_while_in_use_and_gc_keeps_what_is_referenced() {
    let base = Layer::default().file("base", b"b", 0o644).tar();
    let top = Layer::default().file("top", b"t", 0o644).tar();
    let a = TestImage::new(Some("a"), vec![base.clone()], Compress::Gzip);
    let b = TestImage::new(Some("b"), vec![base, top], Compress::Gzip);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    store
        .import(write_archive(dir.path(), "ab.tar", &oci_archive(&[&a, &b])))
        .unwrap();
    // a second name for b
    let mut b2 = b.clone();
    b2.name = Some("b:stable".into());
    store
        .import(write_archive(dir.path(), "b2.tar", &oci_archive(&[&b2])))
        .unwrap();
    let id_a = ImageId(a.id());
    let id_b = ImageId(b.id());
    assert_eq!(
        store.get("b:stable").unwrap().names,
        ["b:latest", "b:stable"]
    );

    // a running container uses b
    let in_use = |id: &ImageId| *id == id_b;
    assert_eq!(
        store.remove("b:stable", in_use).unwrap(),
        Removed::Untagged("b:stable".into())
    );
    let err = store.remove("b", in_use).unwrap_err();
    assert!(matches!(err, StoreError::InUse(id) if id == id_b), "{err}");
    assert!(err.to_string().contains("in use"));
    assert!(matches!(
        store.remove("nope", in_use),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.gc().unwrap(),
        Default::default(),
        "everything is referenced"
    );

    // the container is gone
    assert_eq!(
        store.remove("b", |_| false).unwrap(),
        Removed::Deleted(id_b)
    );
    let report = store.gc().unwrap();
    assert_eq!(report.layers, [Digest::of(&b.layer_tars[1])]);
    let mut blobs = report.blobs.clone();
    blobs.sort();
    let mut expected = vec![b.id(), Digest::of(&b.manifest)];
    expected.sort();
    assert_eq!(blobs, expected);
    // a is whole
    for path in store.layer_paths(&id_a).unwrap() {
        assert!(path.join("base").is_file());
    }
    store.image_config(&id_a).unwrap();
    assert_eq!(store.list().len(), 1);
    // nothing more to collect; and after a restart the state is the same
    assert_eq!(store.gc().unwrap(), Default::default());
    drop(store);
    let store = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(store.list().len(), 1);
    assert!(matches!(store.get("b"), Err(StoreError::NotFound(_))));
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[test]
fn leftovers_of_an_interrupted_import_are_cleaned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    fs::create_dir_all(dir.path().join("tmp/import-crashed/layer-x")).unwrap();
    fs::write(dir.path().join("tmp/blob-123"), b"partial").unwrap();
    drop(Store::open(dir.path()).unwrap());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_descriptor_size_that_does_not_match_fails_the_import() {
    let mut image = simple("sized", b"s");
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["layers"][0]["size"] = serde_json::json!(1);
    image.manifest = serde_json::to_vec(&manifest).unwrap();
    assert_fails_cleanly(oci_archive(&[&image]), |err| {
        assert!(
            matches!(err, StoreError::SizeMismatch { expected: 1, .. }),
            "{err}"
        );
    });
}

#[test]
fn a_tag_adds_a_name_moves_it_from_another_image_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let (a, b) = (simple("a", b"1"), simple("b", b"2"));
    store
        .import(write_archive(dir.path(), "ab.tar", &oci_archive(&[&a, &b])))
        .unwrap();
    let tagged = store.tag("a", "registry.example/team/app:1").unwrap();
    assert_eq!(tagged.names, ["a:latest", "registry.example/team/app:1"]);
    // By id prefix, and a name b had moves to a; b stays, by its id.
    let short = &ImageId(a.id()).to_string()["sha256:".len()..][..12];
    store.tag(short, "b").unwrap();
    assert_eq!(store.get("b").unwrap().id, ImageId(a.id()));
    assert!(
        store
            .get(&ImageId(b.id()).to_string())
            .unwrap()
            .names
            .is_empty()
    );
    for (source, name, want) in [
        (
            "a",
            "x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "digest",
        ),
        ("a", "sha256:abcd", "image id"),
        ("a", "bad name", "whitespace"),
        ("nope", "c", "nope"),
    ] {
        let err = store.tag(source, name).unwrap_err().to_string();
        assert!(err.contains(want), "{source} -> {name}: {err}");
    }
    drop(store);
    let store = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(
        store.get("registry.example/team/app:1").unwrap().id,
        ImageId(a.id())
    );
}
