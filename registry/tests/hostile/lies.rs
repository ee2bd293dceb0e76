//! Manifests, indexes and descriptors that lie or are not what can run.

use husk_registry::PullOptions;
use husk_testkit::fake_registry::{FakeRegistry, Fault};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_unlike_its_docker_content_digest_is_refused() {
    // Asked by tag, the body has other bytes than the digest the
    // registry's header names (WrongBytes keeps the real one's headers).
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    fake.fault(&image.manifest, Fault::WrongBytes);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(
        &err,
        &["Docker-Content-Digest", &image.manifest, "does not match"],
    );
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_4_mib_is_refused() {
    let mut content = Content::new();
    let padding = "x".repeat(4 << 20);
    let manifest =
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"pad": padding}});
    content.manifest(
        REPO,
        "latest",
        OCI_MANIFEST,
        manifest.to_string().into_bytes(),
    );
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &["larger than", &(4u64 << 20).to_string()]);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_manifest_is_refused() {
    // As registries served them: pretty-printed JWS, with its own type,
    // and the same text under a generic type.
    let schema1 = serde_json::to_string_pretty(&json!({
        "schemaVersion": 1,
        "name": REPO,
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256(b"layer")}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": [],
    }))
    .unwrap();
    for media_type in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/json",
    ] {
        let mut content = Content::new();
        content.manifest(REPO, "latest", media_type, schema1.clone().into_bytes());
        let fake = FakeRegistry::start(content);
        let store = TestStore::new();
        let err = message(pull_latest(&fake, &store).await);
        assert_says(&err, &["schema 1"]);
        store.assert_empty();
    }
}

/// An index of an arm64 (and, when `amd64`, an amd64) busybox image, as
/// `library/busybox:latest`.
fn index_content(amd64: bool) -> Content {
    let mut content = Content::new();
    let arm = content.platform_image(REPO, "arm64", "arm64", &[busybox_gzip()]);
    let mut images = vec![arm];
    if amd64 {
        images.push(content.platform_image(REPO, "amd64", "amd64", &[file_layer("amd", 100)]));
    }
    content.index(REPO, "latest", &images.iter().collect::<Vec<_>>());
    content
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_without_the_platform_names_those_it_has() {
    let fake = FakeRegistry::start(index_content(false));
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &["linux/amd64", "linux/arm64"]);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_asked_for_is_chosen_from_an_index() {
    let fake = FakeRegistry::start(index_content(true));
    let store = TestStore::new();
    let options = PullOptions {
        platform: Some("linux/arm64".parse().unwrap()),
        ..Default::default()
    };
    let pulled = pull_latest_with(&fake, &store, &options).await.unwrap();
    assert_eq!(pulled.image.architecture, "arm64");
    let store_images = store.store.lock().unwrap().list();
    assert_eq!(store_images.len(), 1);
    assert_eq!(store_images[0].architecture, "arm64");
    // And by default, the amd64 one.
    let pulled = pull_latest(&fake, &store).await.unwrap();
    assert_eq!(pulled.image.architecture, "amd64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_smaller_than_its_descriptor_says_is_refused() {
    let layer = file_layer("f", 10_000);
    let mut content = Content::new();
    let image = described_image(
        &mut content,
        "latest",
        &[Described {
            blob: &layer.blob,
            size: layer.blob.len() + 512,
            diff_id: layer.diff_id.clone(),
        }],
    );
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(
        &err,
        &[
            &image.layers[0],
            &layer.blob.len().to_string(),
            &(layer.blob.len() + 512).to_string(),
        ],
    );
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_larger_than_its_descriptor_says_is_refused() {
    let layer = file_layer("f", 10_000);
    let mut content = Content::new();
    let image = described_image(
        &mut content,
        "latest",
        &[Described {
            blob: &layer.blob,
            size: layer.blob.len() - 512,
            diff_id: layer.diff_id.clone(),
        }],
    );
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(
        &err,
        &[&image.layers[0], &(layer.blob.len() - 512).to_string()],
    );
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_is_not_its_diff_id_is_refused() {
    let layer = file_layer("f", 10_000);
    let mut content = Content::new();
    let lie = sha256(b"another tar");
    let image = described_image(
        &mut content,
        "latest",
        &[Described {
            blob: &layer.blob,
            size: layer.blob.len(),
            diff_id: lie.clone(),
        }],
    );
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &[&image.layers[0], "diff_id", &lie, &layer.diff_id]);
    store.assert_empty();
}
