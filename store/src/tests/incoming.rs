//! Images received layer by layer (a pull): verified before they are
//! used, all or nothing, kept apart from gc while they arrive.

use std::fs;
use std::sync::Arc;

use super::*;
use crate::{Digest, IncomingImage, Store, StoreError, StoreOptions};

fn image(name: &str, contents: &[&[u8]]) -> TestImage {
    let layers = contents
        .iter()
        .enumerate()
        .map(|(i, data)| {
            Layer::default()
                .dir("etc", 0o755)
                .file(&format!("etc/layer{i}"), data, 0o644)
                .tar()
        })
        .collect();
    TestImage::new(Some(name), layers, Compress::Gzip)
}

fn incoming_image(img: &TestImage) -> IncomingImage {
    IncomingImage {
        name: img.name.clone(),
        manifest_digest: Digest::of(&img.manifest),
        manifest_bytes: img.manifest.clone(),
        config_bytes: img.config.clone(),
    }
}

/// Streams every layer of `img` into a new Incoming.
fn receive(store: &Store, img: &TestImage) -> crate::Result<crate::Incoming> {
    let incoming = store.begin_incoming()?;
    for ((_, blob), diff_id) in img.layer_blobs.iter().zip(img.diff_ids()) {
        incoming.unpack_layer(&Digest::of(blob), blob.len() as u64, &diff_id, &blob[..])?;
    }
    Ok(incoming)
}

fn empty(dir: &std::path::Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn a_received_image_is_committed_and_named() {
    require_root("a_received_image_is_committed_and_named");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let img = image("docker.io/library/app:1", &[b"one", b"two"]);
    let incoming = receive(&store, &img).unwrap();
    let summary = store
        .commit_incoming(incoming, incoming_image(&img))
        .unwrap();
    assert_eq!(
        summary.names,
        vec!["app:1".to_string()],
        "Docker's familiar name"
    );
    assert_eq!(store.get("docker.io/library/app:1").unwrap().id, summary.id);
    let paths = store.layer_paths(&summary.id).unwrap();
    assert_eq!(fs::read(paths[1].join("etc/layer1")).unwrap(), b"two");
    assert!(empty(&dir.path().join("tmp")), "staging is gone");
}

#[test]
fn a_layer_that_is_not_what_it_claims_is_refused_and_leaves_nothing() {
    require_root("a_layer_that_is_not_what_it_claims_is_refused_and_leaves_nothing");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = image("app:1", &[b"one"]);
    let (_, blob) = &img.layer_blobs[0];
    let digest = Digest::of(blob);
    let diff_id = img.diff_ids()[0];
    let incoming = store.begin_incoming().unwrap();
    // Another blob's digest claimed.
    let err = incoming
        .unpack_layer(
            &Digest::of(b"other"),
            blob.len() as u64,
            &diff_id,
            &blob[..],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::BlobMismatch { .. }), "{err}");
    // Longer and shorter than the descriptor says.
    for size in [blob.len() as u64 - 1, blob.len() as u64 + 1] {
        let err = incoming
            .unpack_layer(&digest, size, &diff_id, &blob[..])
            .unwrap_err();
        assert!(matches!(err, StoreError::BlobSize { .. }), "{size}: {err}");
    }
    // Content that is not the config's diff_id.
    let err = incoming
        .unpack_layer(&digest, blob.len() as u64, &Digest::of(b"x"), &blob[..])
        .unwrap_err();
    assert!(matches!(err, StoreError::DiffIdMismatch { .. }), "{err}");
    drop(incoming);
    assert!(empty(&dir.path().join("tmp")));
    assert!(empty(&dir.path().join("layers")));
    assert!(store.list().is_empty());
}

#[test]
fn a_commit_without_every_layer_is_refused() {
    require_root("a_commit_without_every_layer_is_refused");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let img = image("app:1", &[b"one", b"two"]);
    let incoming = store.begin_incoming().unwrap();
    let (_, blob) = &img.layer_blobs[0];
    incoming
        .unpack_layer(
            &Digest::of(blob),
            blob.len() as u64,
            &img.diff_ids()[0],
            &blob[..],
        )
        .unwrap();
    let err = store
        .commit_incoming(incoming, incoming_image(&img))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("neither in the store nor received"),
        "{err}"
    );
    assert!(store.list().is_empty());
    assert!(
        empty(&dir.path().join("layers")),
        "the received layer is not kept"
    );
    // A manifest whose bytes are not its digest.
    let incoming = receive(&store, &img).unwrap();
    let mut forged = incoming_image(&img);
    forged.manifest_digest = Digest::of(b"{}");
    let err = store.commit_incoming(incoming, forged).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::BlobMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn layers_the_store_has_are_shared_and_gc_spares_what_is_arriving() {
    require_root("layers_the_store_has_are_shared_and_gc_spares_what_is_arriving");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let first = image("app:1", &[b"base"]);
    let incoming = receive(&store, &first).unwrap();
    store
        .commit_incoming(incoming, incoming_image(&first))
        .unwrap();
    assert!(store.has_layer(&first.diff_ids()[0]));

    let second = image("app:2", &[b"base", b"top"]);
    let incoming = Arc::new(store.begin_incoming().unwrap());
    let (_, top) = &second.layer_blobs[1];
    incoming
        .unpack_layer(
            &Digest::of(top),
            top.len() as u64,
            &second.diff_ids()[1],
            &top[..],
        )
        .unwrap();
    // gc runs while the image is arriving: its staging stays.
    store.gc().unwrap();
    assert!(!empty(&dir.path().join("tmp")));
    let incoming = Arc::try_unwrap(incoming).unwrap();
    let summary = store
        .commit_incoming(incoming, incoming_image(&second))
        .unwrap();
    assert_eq!(store.layer_paths(&summary.id).unwrap().len(), 2);
    assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 2);
}

#[test]
fn a_deferred_store_keeps_verified_blobs_for_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let img = image("app:1", &[b"preloaded"]);
    {
        let mut store = Store::open_with(
            &root,
            StoreOptions {
                defer_unpack: true,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let incoming = receive(&store, &img).unwrap();
        store
            .commit_incoming(incoming, incoming_image(&img))
            .unwrap();
        assert!(empty(&root.join("layers")), "nothing unpacked unprivileged");
        let (_, blob) = &img.layer_blobs[0];
        assert_eq!(
            fs::read(root.join("blobs/sha256").join(Digest::of(blob).hex())).unwrap(),
            *blob
        );
    }
    // The machine's store unpacks it when it opens (as root).
    require_root("a_deferred_store_keeps_verified_blobs_for_the_machine");
    let store = Store::open(&root).unwrap();
    let id = store.get("app:1").unwrap().id;
    let paths = store.layer_paths(&id).unwrap();
    assert_eq!(fs::read(paths[0].join("etc/layer0")).unwrap(), b"preloaded");
}
