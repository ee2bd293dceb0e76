//! Only the layers the store lacks are fetched, several at once.

use std::sync::{Arc, Mutex};

use husk_registry::Progress;
use husk_testkit::fake_registry::{FakeRegistry, Fault};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_in_the_store_are_not_fetched_again() {
    let (l1, l2, l3) = (
        file_layer("one", 5000),
        file_layer("two", 5000),
        file_layer("three", 5000),
    );
    let mut content = Content::new();
    let a = content.image(REPO, "a", &[l1.clone(), l2]);
    let b = content.image(REPO, "b", &[l1.clone(), l3]);
    assert_eq!(a.layers[0], b.layers[0]);
    let fake = FakeRegistry::start(content);
    let registries = registries(config_for(&fake));
    let store = TestStore::new();
    let options = PullOptions::default();

    let pulled = pull(&registries, &store, &reference(&fake, "a"), &options)
        .await
        .unwrap();
    assert_eq!(pulled.layers_fetched, 2);
    assert!(store.has_layer(&l1.diff_id));

    let events = Events::default();
    let pulled = pull(
        &registries,
        &store,
        &reference(&fake, "b"),
        &events.options(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.layers_fetched, 1);
    assert_eq!(fake.blob_gets(&b.layers[0]), 1, "L1 fetched once");
    assert_eq!(fake.blob_gets(&b.layers[1]), 1);
    assert!(events.all().contains(&Progress::LayerExists {
        digest: b.layers[0].clone(),
        size: l1.blob.len() as u64,
    }));

    // Again: no layer. (The config is fetched again: the store has it,
    // but gives no way to read a config blob by its digest.)
    fake.clear_requests();
    let pulled = pull(&registries, &store, &reference(&fake, "a"), &options)
        .await
        .unwrap();
    assert_eq!((pulled.layers_fetched, pulled.bytes_fetched), (0, 0));
    for layer in &a.layers {
        assert_eq!(fake.blob_gets(layer), 0, "{layer}");
    }
    assert_eq!(store.snapshot().images.len(), 2);
}

/// The number of GETs of each of `layers` when the first layer was done.
fn gets_at_first_done(
    fake: &Arc<FakeRegistry>,
    layers: &[String],
) -> (PullOptions, Arc<Mutex<Option<Vec<usize>>>>) {
    let seen = Arc::new(Mutex::new(None));
    let (fake, layers, record) = (Arc::clone(fake), layers.to_vec(), Arc::clone(&seen));
    let options = PullOptions {
        progress: Some(Arc::new(move |p| {
            if let Progress::LayerDone { .. } = p {
                let mut seen = record.lock().unwrap();
                if seen.is_none() {
                    *seen = Some(layers.iter().map(|l| fake.blob_gets(l)).collect());
                }
            }
        })),
        ..Default::default()
    };
    (options, seen)
}

/// Four slow layers (about a second each).
fn slow_image() -> (Arc<FakeRegistry>, Image) {
    let mut content = Content::new();
    let layers: Vec<Layer> = (0..4)
        .map(|i| file_layer(&format!("layer{i}"), 20_000))
        .collect();
    let image = content.image(REPO, "latest", &layers);
    let fake = Arc::new(FakeRegistry::start(content));
    for layer in &image.layers {
        fake.fault(
            layer,
            Fault::Slow {
                bytes_per_sec: 20_000,
            },
        );
    }
    (fake, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_download_in_parallel() {
    // When the first layer is done, every layer's GET has been sent: they
    // were all in flight together (with one at a time, the first done
    // would have seen one GET).
    let (fake, image) = slow_image();
    let (options, seen) = gets_at_first_done(&fake, &image.layers);
    let mut config = config_for(&fake);
    config.max_concurrent_downloads = Some(4);
    let store = TestStore::new();
    pull(
        &registries(config),
        &store,
        &reference(&fake, "latest"),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().as_deref(), Some(&[1, 1, 1, 1][..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_configured_number_of_layers_at_once() {
    // Docker's default, 3: the fourth layer waits for one of the others.
    let (fake, image) = slow_image();
    let (options, seen) = gets_at_first_done(&fake, &image.layers);
    let store = TestStore::new();
    pull_latest_with(&fake, &store, &options).await.unwrap();
    let gets = seen.lock().unwrap().clone().unwrap();
    assert_eq!(gets.iter().sum::<usize>(), 3, "{gets:?}");
    assert!(gets.iter().all(|&n| n <= 1), "{gets:?}");
}
