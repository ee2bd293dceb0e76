//! The transfer of blobs: connections that drop or stall, wrong bytes,
//! 5xx and 404 answers, redirects.

use std::time::Duration;

use husk_registry::PullOptions;
use husk_testkit::fake_registry::{FakeRegistry, Fault};

use super::*;

/// Where a `Range: bytes=N-` header asks to start.
fn range_start(range: &str) -> u64 {
    range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an open range: {range}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_from_the_byte_reached() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(
        layer,
        Fault::DropAfter {
            bytes: 100_000,
            times: 1,
        },
    );
    let store = TestStore::new();
    let events = Events::default();
    let pulled = pull_latest_with(&fake, &store, &events.options())
        .await
        .unwrap();
    assert_eq!(pulled.layers_fetched, 1);
    assert_eq!(pulled.image.layers, 1);

    let ranges = blob_ranges(&fake, layer);
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None, "the first GET is of the whole blob");
    let from = range_start(ranges[1].as_deref().expect("the second GET has a Range"));
    assert!(from > 0 && from <= 100_000, "resumed at {from}");
    let retries = events.retries(layer);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(store.snapshot().images.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_noticed_and_the_download_resumed() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault_for(
        layer,
        Fault::Stall {
            after_bytes: 50_000,
        },
        1,
    );
    let store = TestStore::new();
    let events = Events::default();
    pull_latest_with(&fake, &store, &events.options())
        .await
        .unwrap();
    let ranges = blob_ranges(&fake, layer);
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let from = range_start(ranges[1].as_deref().unwrap());
    assert!(from > 0 && from <= 50_000, "resumed at {from}");
    let retries = events.retries(layer);
    assert!(
        retries.len() == 1 && retries[0].contains("stalled"),
        "{retries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_always_stalls_fails_the_pull() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    // 1000 bytes once, then nothing at all.
    fake.fault_for(layer, Fault::Stall { after_bytes: 1000 }, 1);
    fake.fault(layer, Fault::Stall { after_bytes: 0 });
    let store = TestStore::new();
    let registries = registries_with(config_for(&fake), Duration::from_secs(1));
    let err = message(
        pull(
            &registries,
            &store,
            &reference(&fake, "latest"),
            &PullOptions::default(),
        )
        .await,
    );
    assert_says(&err, &["stalled", layer]);
    // Each try went on from the byte reached.
    let ranges = blob_ranges(&fake, layer);
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert_eq!(ranges[0], None);
    for range in &ranges[1..] {
        assert_eq!(range_start(range.as_deref().unwrap()), 1000);
    }
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_of_a_layer_are_refused() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(layer, Fault::WrongBytes);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    // Named by its digest, not by what the tar reader made of the bytes
    // (which would quote them, control characters and all).
    assert_says(&err, &[layer, "does not match its digest"]);
    assert!(!err.chars().any(char::is_control), "{err:?}");
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_of_other_bytes_that_unpack_is_refused_by_its_digest() {
    // The bytes served are a valid tar, of the same length, that is not
    // the layer: only the digest tells them apart.
    let mut content = Content::new();
    let real = file_layer("real", 10_000);
    let other = file_layer("other", 10_000);
    assert_eq!(real.blob.len(), other.blob.len());
    let image = content.image(REPO, "latest", std::slice::from_ref(&real));
    content.blob_as(&image.layers[0], other.blob.clone());
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(
        &err,
        &[&image.layers[0], &sha256(&other.blob), "does not match"],
    );
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_of_the_config_are_refused() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    fake.fault(&image.config, Fault::WrongBytes);
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &["config", &image.config, "does not match"]);
    assert_eq!(
        fake.blob_gets(&image.layers[0]),
        0,
        "no layer after a bad config"
    );
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_of_a_manifest_asked_by_digest_are_refused() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    fake.fault(&image.manifest, Fault::WrongBytes);
    let store = TestStore::new();
    let err = message(
        pull(
            &registries(config_for(&fake)),
            &store,
            &reference(&fake, &image.manifest),
            &PullOptions::default(),
        )
        .await,
    );
    assert_says(&err, &[&image.manifest, "does not match"]);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_5xx_on_a_layer_are_retried() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(
        layer,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let store = TestStore::new();
    let events = Events::default();
    pull_latest_with(&fake, &store, &events.options())
        .await
        .unwrap();
    assert_eq!(fake.blob_gets(layer), 3);
    let retries = events.retries(layer);
    assert!(
        retries.len() == 2 && retries.iter().all(|r| r.contains("503")),
        "{retries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_500_fails_the_pull_after_some_tries() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(
        layer,
        Fault::Status {
            code: 500,
            times: 100,
        },
    );
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &["500", layer, &fake.host()]);
    assert_eq!(fake.blob_gets(layer), 4);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_blob_fails_the_pull_at_once() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.edit_content(|c| c.remove_blob(layer));
    let store = TestStore::new();
    let err = message(pull_latest(&fake, &store).await);
    assert_says(&err, &["not found", layer, "BLOB_UNKNOWN"]);
    assert_eq!(fake.blob_gets(layer), 1, "a 404 is not tried again");
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_blob_is_followed() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(layer, Fault::Redirect);
    fake.fault(&image.config, Fault::Redirect);
    let store = TestStore::new();
    pull_latest(&fake, &store).await.unwrap();
    let redirected: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/_redirected/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        redirected,
        [
            format!("/_redirected/{}", image.config),
            format!("/_redirected/{layer}")
        ]
    );
    assert_eq!(store.snapshot().images.len(), 1);
}
