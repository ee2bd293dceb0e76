//! Pulls from a real peer: Debian's docker-registry 2.8 on loopback (TLS
//! with a CA the test makes, htpasswd), images pushed into it with
//! skopeo in the formats and compressions users push. Needs the packages
//! docker-registry and skopeo (the fixture fails without them) and root
//! (the store unpacks with ownership).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::TestStore;
use husk_registry::config::AuthEntry;
use husk_registry::progress::Progress;
use husk_registry::{ProgressFn, PullOptions, Pulled, Reference, Registries, RegistryConfig};
use husk_testkit::registry::{
    Compression, ManifestFormat, PushOptions, Registry, RegistryOptions, TestCa, image_layout,
    multi_arch_layout, random_layers, skopeo_copy, skopeo_inspect_raw,
};
use husk_testkit::{busybox_layer, sha256};
use serde_json::Value;

const BUSYBOX: &str = "team/busybox:1";
const DEFAULTS: (Option<ManifestFormat>, Option<Compression>) = (None, None);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_oci_zstd_image_is_pulled_and_unpacked() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    let format = (Some(ManifestFormat::Oci), Some(Compression::Zstd));
    let pushed = push(&reg, BUSYBOX, &[busybox_layer()], format);
    let layer_type = &pushed.manifest["layers"][0]["mediaType"];
    assert_eq!(layer_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    let store = TestStore::new();
    let pulled = must_pull(trusting(&ca), &store, &image(&reg, BUSYBOX)).await;
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.name, image(&reg, BUSYBOX));
    assert_eq!((pulled.layers_fetched, pulled.image.layers), (1, 1));
    let busybox = store.file(&pulled, "bin/busybox").expect("bin/busybox");
    assert!(busybox == std::fs::read("/bin/busybox").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_is_refused_naming_the_registry() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    push(&reg, BUSYBOX, &[busybox_layer()], DEFAULTS);
    let store = TestStore::new();
    let err = must_fail(RegistryConfig::default(), &store, &image(&reg, BUSYBOX)).await;
    eprintln!("untrusted: {err}");
    let url = format!("{}/v2/team/busybox/manifests/1", reg.url());
    assert!(err.starts_with(&url), "{err}");
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    store.assert_untouched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_gzip_image_is_pulled() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    let format = (Some(ManifestFormat::DockerV2S2), Some(Compression::Gzip));
    let pushed = push(&reg, BUSYBOX, &[busybox_layer()], format);
    let media_type = &pushed.manifest["mediaType"];
    assert_eq!(
        media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let store = TestStore::new();
    let pulled = must_pull(trusting(&ca), &store, &image(&reg, BUSYBOX)).await;
    let record = store.lock().get(&pulled.name).expect("the pulled name");
    assert_eq!(record.manifest.to_string(), pushed.digest);
    assert_eq!(record.id, pulled.image.id);
    assert!(store.file(&pulled, "bin/busybox").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_resolves_the_platform_and_pulls_by_digest() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    let layout = tempfile::tempdir().unwrap();
    let images = [
        ("amd64", vec![busybox_layer()]),
        ("arm64", random_layers(1, 64 << 10, 3)),
    ];
    multi_arch_layout(layout.path(), "multi", &images).unwrap();
    let opts = PushOptions {
        all: true,
        format: Some(ManifestFormat::Oci),
        ..reg.push_options()
    };
    let src = format!("oci:{}:multi", layout.path().display());
    skopeo_copy(&src, &reg.docker_ref("team/multi:latest"), &opts).expect("push --all");
    let index = inspect(&reg, "team/multi:latest");
    let child = |arch: &str| {
        let entries = index.manifest["manifests"].as_array().expect("an index");
        let entry = entries
            .iter()
            .find(|m| m["platform"]["architecture"] == arch);
        entry.expect("the architecture")["digest"].clone()
    };
    let (config, store) = (trusting(&ca), TestStore::new());
    let name = image(&reg, "team/multi:latest");

    let amd64 = must_pull(config.clone(), &store, &name).await;
    assert_eq!(amd64.image.architecture, "amd64");
    assert_eq!(child("amd64"), amd64.digest.as_str());

    let arm = PullOptions {
        platform: Some("linux/arm64".parse().unwrap()),
        ..PullOptions::default()
    };
    let arm64 = must_pull_with(config.clone(), &store, &name, &arm).await;
    assert_eq!(arm64.image.architecture, "arm64");
    assert_eq!(child("arm64"), arm64.digest.as_str());
    assert_ne!(arm64.image.id, amd64.image.id);

    let by_digest = format!("{}/team/multi@{}", reg.host(), index.digest);
    let pinned = must_pull(config, &store, &by_digest).await;
    assert_eq!(pinned.name, by_digest);
    assert_eq!((&pinned.digest, pinned.layers_fetched), (&amd64.digest, 0));
    let record = store.lock().get(&by_digest).expect("the name@digest");
    assert_eq!(record.id, amd64.image.id);
    assert!(record.names.contains(&by_digest), "{:?}", record.names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls() {
    let ca = TestCa::new();
    let auth = ("puller".to_string(), "correct horse".to_string());
    let reg = start(Some(&ca), Some(auth.clone()));
    push(&reg, BUSYBOX, &[busybox_layer()], DEFAULTS);
    let with = |password: Option<&str>| RegistryConfig {
        auths: password
            .map(|p| (reg.host(), credentials(&auth.0, p)))
            .into_iter()
            .collect(),
        ..trusting(&ca)
    };
    let (store, name) = (TestStore::new(), image(&reg, BUSYBOX));

    let err = must_fail(with(Some("wrong")), &store, &name).await;
    eprintln!("wrong password: {err}");
    assert!(
        err.starts_with(&format!(
            "{}: the registry refused the credentials of `",
            reg.host()
        )),
        "{err}"
    );

    let err = must_fail(with(None), &store, &name).await;
    eprintln!("no credentials: {err}");
    assert!(err.starts_with(&format!("{}: ", reg.host())), "{err}");
    assert!(err.contains("give them in registry.auths"), "{err}");
    store.assert_untouched();

    let pulled = must_pull(with(Some(&auth.1)), &store, &name).await;
    assert!(store.file(&pulled, "bin/busybox").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_for_insecure_registries() {
    let reg = start(None, None);
    let pushed = push(&reg, BUSYBOX, &[busybox_layer()], DEFAULTS);
    let (store, name) = (TestStore::new(), image(&reg, BUSYBOX));
    let err = must_fail(RegistryConfig::default(), &store, &name).await;
    eprintln!("plain HTTP, not insecure: {err}");
    // rustls read an HTTP answer as a TLS record: named, with the fix.
    assert!(
        err.starts_with(&format!("https://{}/v2/", reg.host())),
        "{err}"
    );
    assert!(
        err.contains("it does not speak TLS (plain HTTP?): list the registry as insecure"),
        "{err}"
    );
    store.assert_untouched();

    let insecure = RegistryConfig {
        insecure: vec![reg.host()],
        ..RegistryConfig::default()
    };
    let pulled = must_pull(insecure, &store, &name).await;
    assert_eq!(pulled.digest, pushed.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pull_fetches_only_missing_layers() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    push(&reg, BUSYBOX, &[busybox_layer()], DEFAULTS);
    let extra = random_layers(1, 1 << 20, 7).remove(0);
    let app = push(&reg, "team/app:1", &[busybox_layer(), extra], DEFAULTS);
    let store = TestStore::new();

    let first = must_pull(trusting(&ca), &store, &image(&reg, BUSYBOX)).await;
    assert_eq!(first.layers_fetched, 1);
    let again = must_pull(trusting(&ca), &store, &image(&reg, BUSYBOX)).await;
    assert_eq!((again.layers_fetched, again.bytes_fetched), (0, 0));
    assert_eq!(again.image.id, first.image.id);

    let (events, options) = recorder();
    let pulled = must_pull_with(trusting(&ca), &store, &image(&reg, "team/app:1"), &options).await;
    assert_eq!(pulled.layers_fetched, 1);
    assert_eq!(pulled.bytes_fetched, app.manifest["layers"][1]["size"]);
    let events = events.lock().unwrap();
    let existing: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Progress::LayerExists { .. }))
        .collect();
    assert_eq!(existing.len(), 1, "{events:?}");
    assert_eq!(store.lock().list().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bigger_image_is_verified_layer_by_layer() {
    const SIZE: usize = 4 << 20;
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    let layers = random_layers(5, SIZE, 11);
    let pushed = push(&reg, "team/big:1", &layers, DEFAULTS);
    let (events, options) = recorder();
    let store = TestStore::new();
    let pulled = must_pull_with(trusting(&ca), &store, &image(&reg, "team/big:1"), &options).await;
    assert_eq!((pulled.layers_fetched, pulled.image.layers), (5, 5));
    let descriptors = pushed.manifest["layers"].as_array().unwrap();
    let sizes: u64 = descriptors
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert_eq!(pulled.bytes_fetched, sizes);
    let digests = descriptors
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned());
    assert_eq!(layers_done(&events), digests.collect());
    // random_layers' tars: one 512-byte header, then the file's bytes.
    let unpacked = store.file(&pulled, "random-3").expect("random-3");
    assert!(
        unpacked == layers[3][512..512 + SIZE],
        "random-3 differs from its source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_failing_midway_leaves_the_store_as_it_was() {
    let ca = TestCa::new();
    let reg = start(Some(&ca), None);
    let mut layers = vec![busybox_layer()];
    layers.extend(random_layers(3, 1 << 20, 5));
    let pushed = push(&reg, "team/broken:1", &layers, DEFAULTS);
    let digests: Vec<String> = pushed.manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    // One download at a time; once the first layer is staged, the
    // registry loses the blob of another: the pull fails on it later.
    let (events, mut options) = recorder();
    let (record, storage) = (options.progress.take().unwrap(), reg.storage());
    let lost = Arc::new(Mutex::new(None::<String>));
    let lost_by_callback = Arc::clone(&lost);
    options.progress = Some(Arc::new(move |event: Progress| {
        if let Progress::LayerDone { digest, .. } = &event {
            let mut lost = lost_by_callback.lock().unwrap();
            if lost.is_none() {
                let victim = digests.iter().find(|d| *d != digest).unwrap();
                std::fs::remove_file(blob_data(&storage, victim)).expect("remove a blob");
                *lost = Some(victim.clone());
            }
        }
        record(event);
    }));
    let config = RegistryConfig {
        max_concurrent_downloads: Some(1),
        ..trusting(&ca)
    };
    let store = TestStore::new();
    let err = pull_with(config, &store, &image(&reg, "team/broken:1"), &options)
        .await
        .expect_err("a blob the registry lost");
    eprintln!("lost blob: {err}");
    let lost = lost
        .lock()
        .unwrap()
        .clone()
        .expect("a layer was staged first");
    let url = format!("{}/v2/team/broken/blobs/{lost}", reg.url());
    assert!(err.contains(&format!("blob {lost}: {url}: ")), "{err}");
    // distribution answers 404 BLOB_UNKNOWN: not transient, not retried.
    let answer =
        "not found in the registry (BLOB_UNKNOWN blob unknown to registry) (after 1 tries)";
    assert!(err.ends_with(answer), "{err}");
    let done = layers_done(&events);
    assert!(!done.is_empty() && !done.contains(&lost), "{done:?}");
    store.assert_untouched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_tried_first_and_fallen_through() {
    let ca = TestCa::new();
    let origin = start(Some(&ca), None);
    let pushed = push(&origin, BUSYBOX, &[busybox_layer()], DEFAULTS);
    let (origin_host, name) = (origin.host(), image(&origin, BUSYBOX));
    let mirrored = |mirrors: Vec<String>| RegistryConfig {
        mirrors: BTreeMap::from([(origin_host.clone(), mirrors)]),
        ..trusting(&ca)
    };
    let closed = "https://127.0.0.1:1".to_string();
    let store = TestStore::new();
    let pulled = must_pull(mirrored(vec![closed.clone()]), &store, &name).await;
    assert_eq!(pulled.digest, pushed.digest);

    let mirror = start(Some(&ca), None);
    let copy = push(&mirror, BUSYBOX, &[busybox_layer()], DEFAULTS);
    assert_eq!(copy.digest, pushed.digest, "the same image in the mirror");
    // With the origin gone, only the mirror can serve the pull.
    drop(origin);
    let store = TestStore::new();
    let pulled = must_pull(mirrored(vec![closed, mirror.url()]), &store, &name).await;
    assert_eq!((&pulled.digest, &pulled.name), (&pushed.digest, &name));
    assert!(store.file(&pulled, "bin/busybox").is_some());
}

// --- helpers ---

fn start(tls: Option<&TestCa>, basic_auth: Option<(String, String)>) -> Registry {
    Registry::start(RegistryOptions { tls, basic_auth }).expect("start docker-registry")
}

/// `127.0.0.1:PORT/repository:tag`.
fn image(reg: &Registry, repository: &str) -> String {
    format!("{}/{repository}", reg.host())
}

fn trusting(ca: &TestCa) -> RegistryConfig {
    RegistryConfig {
        ca_pems: vec![ca.ca_pem()],
        ..RegistryConfig::default()
    }
}

fn credentials(username: &str, password: &str) -> AuthEntry {
    AuthEntry {
        username: Some(username.into()),
        password: Some(password.into()),
        ..AuthEntry::default()
    }
}

/// A pull that must succeed, with the default options.
async fn must_pull(config: RegistryConfig, store: &TestStore, reference: &str) -> Pulled {
    must_pull_with(config, store, reference, &PullOptions::default()).await
}

async fn must_pull_with(
    config: RegistryConfig,
    store: &TestStore,
    reference: &str,
    options: &PullOptions,
) -> Pulled {
    let pulled = pull_with(config, store, reference, options).await;
    pulled.unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

/// A pull that must fail, with the default options: its error message.
async fn must_fail(config: RegistryConfig, store: &TestStore, reference: &str) -> String {
    let pulled = pull_with(config, store, reference, &PullOptions::default()).await;
    pulled.expect_err("the pull is refused")
}

async fn pull_with(
    config: RegistryConfig,
    store: &TestStore,
    reference: &str,
    options: &PullOptions,
) -> Result<Pulled, String> {
    let registries = Arc::new(Registries::new(config).expect("a valid registry config"));
    let reference = Reference::parse(reference).expect("a reference");
    husk_registry::pull(registries, Arc::clone(&store.store), &reference, options)
        .await
        .map_err(|e| e.to_string())
}

type Events = Arc<Mutex<Vec<Progress>>>;

/// Options whose progress callback records the events.
fn recorder() -> (Events, PullOptions) {
    let events = Events::default();
    let sink = Arc::clone(&events);
    let progress: ProgressFn = Arc::new(move |e| sink.lock().unwrap().push(e));
    let options = PullOptions {
        progress: Some(progress),
        ..PullOptions::default()
    };
    (events, options)
}

/// The blob digests of the layers reported done.
fn layers_done(events: &Events) -> BTreeSet<String> {
    let events = events.lock().unwrap();
    let done = events.iter().filter_map(|e| match e {
        Progress::LayerDone { digest, .. } => Some(digest.clone()),
        _ => None,
    });
    done.collect()
}

/// Where docker-registry's filesystem storage keeps a blob's bytes.
fn blob_data(storage: &Path, digest: &str) -> PathBuf {
    let hex = &digest["sha256:".len()..];
    storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
}

/// A pushed manifest (or index): its digest and JSON.
struct Pushed {
    digest: String,
    manifest: Value,
}

/// Pushes an amd64 image of uncompressed `layers` to `repository:tag`
/// with skopeo, in `(format, compression)` (skopeo's defaults for
/// `None`: OCI, gzip).
fn push(
    reg: &Registry,
    repository: &str,
    layers: &[Vec<u8>],
    (format, compression): (Option<ManifestFormat>, Option<Compression>),
) -> Pushed {
    let layout = tempfile::tempdir().unwrap();
    image_layout(layout.path(), "img", layers).unwrap();
    let opts = PushOptions {
        format,
        compression,
        ..reg.push_options()
    };
    let src = format!("oci:{}:img", layout.path().display());
    skopeo_copy(&src, &reg.docker_ref(repository), &opts).expect("skopeo copy");
    inspect(reg, repository)
}

/// What the registry serves for `repository:tag`, by `skopeo inspect --raw`.
fn inspect(reg: &Registry, repository: &str) -> Pushed {
    let raw = skopeo_inspect_raw(&reg.docker_ref(repository), &reg.push_options())
        .expect("skopeo inspect --raw");
    Pushed {
        digest: sha256(&raw),
        manifest: serde_json::from_slice(&raw).expect("a JSON manifest"),
    }
}
