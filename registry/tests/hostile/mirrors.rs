//! Mirrors: tried first, passed over when down or failing, used when
//! they work.

use husk_testkit::fake_registry::{FakeRegistry, Fault};

use super::*;

/// `origin`'s configuration with `mirrors` in front of it.
fn mirrored(origin: &FakeRegistry, mirrors: &[String]) -> RegistryConfig {
    let mut config = config_for(origin);
    config.mirrors.insert(origin.host(), mirrors.to_vec());
    config
}

async fn pull_from(origin: &FakeRegistry, store: &TestStore, config: RegistryConfig) -> Pulled {
    let registries = registries(config);
    pull(
        &registries,
        store,
        &reference(origin, "latest"),
        &PullOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_are_the_mirrors_then_the_registry() {
    let (content, _) = busybox_content();
    let origin = FakeRegistry::start(content);
    let registries = registries(mirrored(&origin, &["http://127.0.0.1:1".into()]));
    let endpoints = registries.endpoints(&reference(&origin, "latest"));
    assert_eq!(endpoints.len(), 2);
    assert!(endpoints[0].mirror && endpoints[0].plain_http);
    assert_eq!(endpoints[0].base.as_str(), "http://127.0.0.1:1/");
    assert!(!endpoints[1].mirror && endpoints[1].plain_http);
    assert_eq!(endpoints[1].base.as_str(), format!("{}/", origin.url()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_is_down_is_passed_over() {
    let (content, image) = busybox_content();
    let origin = FakeRegistry::start(content);
    let store = TestStore::new();
    pull_from(
        &origin,
        &store,
        mirrored(&origin, &["http://127.0.0.1:1".into()]),
    )
    .await;
    assert_eq!(origin.blob_gets(&image.layers[0]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_answers_500_is_passed_over() {
    let (content, image) = busybox_content();
    let origin = FakeRegistry::start(content.clone());
    let mirror = FakeRegistry::start(content);
    mirror.fault(
        &image.manifest,
        Fault::Status {
            code: 500,
            times: 100,
        },
    );
    let store = TestStore::new();
    pull_from(&origin, &store, mirrored(&origin, &[mirror.url()])).await;
    assert_eq!(origin.blob_gets(&image.layers[0]), 1);
    assert_eq!(mirror.blob_gets(&image.layers[0]), 0);
    assert!(!mirror.requests().is_empty(), "the mirror was asked first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_mirror_is_used_instead_of_the_registry() {
    let (content, image) = busybox_content();
    let origin = FakeRegistry::start(content.clone());
    let mirror = FakeRegistry::start(content);
    let store = TestStore::new();
    let pulled = pull_from(&origin, &store, mirrored(&origin, &[mirror.url()])).await;
    assert_eq!(pulled.digest, image.manifest);
    assert_eq!(mirror.blob_gets(&image.layers[0]), 1);
    assert_eq!(origin.blob_gets(&image.layers[0]), 0);
    assert_eq!(origin.blob_gets(&image.config), 0);
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_the_mirror_fails_on_comes_from_the_registry() {
    let (content, image) = busybox_content();
    let origin = FakeRegistry::start(content.clone());
    let mirror = FakeRegistry::start(content);
    let layer = &image.layers[0];
    mirror.fault(
        layer,
        Fault::Status {
            code: 502,
            times: 100,
        },
    );
    let store = TestStore::new();
    pull_from(&origin, &store, mirrored(&origin, &[mirror.url()])).await;
    assert_eq!(mirror.blob_gets(layer), 4);
    assert_eq!(origin.blob_gets(layer), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_mirror_that_speaks_plain_http_is_passed_over() {
    let (content, image) = busybox_content();
    let origin = FakeRegistry::start(content.clone());
    let mirror = FakeRegistry::start(content);
    let store = TestStore::new();
    let https = format!("https://{}", mirror.host());
    pull_from(&origin, &store, mirrored(&origin, &[https])).await;
    assert_eq!(origin.blob_gets(&image.layers[0]), 1);
    assert_eq!(mirror.blob_gets(&image.layers[0]), 0);
}
