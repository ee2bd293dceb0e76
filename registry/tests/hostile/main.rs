//! Pulls from a hostile registry (testkit's scripted `FakeRegistry`):
//! connections that drop and stall, wrong bytes, 5xx answers, manifests
//! and descriptors that lie, authentication, mirrors that are down, and
//! skopeo as a peer to compare with. Each failure must name what is at
//! fault and leave the store as it was.

mod auth;
mod lies;
mod mirrors;
mod peer;
mod reuse;
mod transfer;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use husk_registry::http::{HttpClient, tls_config};
use husk_registry::{
    Progress, PullOptions, Pulled, Reference, Registries, RegistryConfig, RegistryError,
};
use husk_store::Store;
use husk_testkit::fake_registry::{
    Content, FakeRegistry, Image, Layer, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use husk_testkit::{busybox_layer, sha256};
use serde_json::json;

/// The repository every test pulls from.
pub const REPO: &str = "library/busybox";
/// The deadlines of the client: short, so that stalls are noticed soon.
pub const HEAD: Duration = Duration::from_secs(2);
pub const STALL: Duration = Duration::from_secs(2);

/// The busybox layer gzipped, as registries serve layers.
pub fn busybox_gzip() -> Layer {
    let tar = busybox_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Layer::compressed(OCI_LAYER_GZIP, gz.finish().unwrap(), &tar)
}

/// An uncompressed layer of one file, `name`, of `size` bytes that do not
/// compress (distinct per name).
pub fn file_layer(name: &str, size: usize) -> Layer {
    let mut state = sha256(name.as_bytes())
        .bytes()
        .fold(0x9e37_79b9_7f4a_7c15_u64, |s, b| {
            s.rotate_left(5) ^ u64::from(b)
        });
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size as u64);
    header.set_mtime(1_700_000_000);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, name, &data[..]).unwrap();
    Layer::tar(tar.into_inner().unwrap())
}

/// `library/busybox:latest`, one gzipped busybox layer.
pub fn busybox_content() -> (Content, Image) {
    let mut content = Content::new();
    let image = content.image(REPO, "latest", &[busybox_gzip()]);
    (content, image)
}

/// An image whose manifest and config say what the caller wants, true or
/// not: each layer is served as `blob` (stored under its own digest),
/// described with `size`, and listed in the config with `diff_id`.
pub struct Described<'a> {
    pub blob: &'a [u8],
    pub size: usize,
    pub diff_id: String,
}

/// Stores a lying image (see [`Described`]) tagged `tag` in [`REPO`].
pub fn described_image(content: &mut Content, tag: &str, layers: &[Described<'_>]) -> Image {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(l.blob),
            "size": l.size,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_size = manifest.len();
    Image {
        config: content.blob(config),
        layers: layers
            .iter()
            .map(|l| content.blob(l.blob.to_vec()))
            .collect(),
        manifest: content.manifest(REPO, tag, OCI_MANIFEST, manifest),
        manifest_size,
        architecture: "amd64".into(),
    }
}

/// The configuration a test pulls from `fake` with: plain HTTP allowed.
pub fn config_for(fake: &FakeRegistry) -> RegistryConfig {
    RegistryConfig {
        insecure: vec![fake.host()],
        ..Default::default()
    }
}

pub fn registries(config: RegistryConfig) -> Arc<Registries> {
    registries_with(config, STALL)
}

pub fn registries_with(config: RegistryConfig, stall: Duration) -> Arc<Registries> {
    config.validate().unwrap();
    let http = HttpClient::with_timeouts(tls_config(&[], &[]).unwrap(), HEAD, stall);
    Arc::new(Registries::with_http(config, http))
}

/// `<fake>/library/busybox:<tag>`, or `@<digest>` when `by` is one.
pub fn reference(fake: &FakeRegistry, by: &str) -> Reference {
    let separator = if by.starts_with("sha256:") { '@' } else { ':' };
    Reference::parse(&format!("{}/{REPO}{separator}{by}", fake.host())).unwrap()
}

/// An image store in a directory of its own.
pub struct TestStore {
    _dir: tempfile::TempDir,
    pub store: Arc<Mutex<Store>>,
}

/// What is on disk of a store, to compare before and after a pull.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub images: Vec<String>,
    pub layers: BTreeSet<String>,
    pub blobs: BTreeSet<String>,
    pub tmp: BTreeSet<String>,
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

impl TestStore {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        Self {
            _dir: dir,
            store: Arc::new(Mutex::new(store)),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let root = store.root();
        Snapshot {
            images: store.list().iter().map(|i| i.id.to_string()).collect(),
            layers: names(&root.join("layers")),
            blobs: names(&root.join("blobs/sha256")),
            tmp: names(&root.join("tmp")),
        }
    }

    /// After a failed pull: nothing added, nothing staged left behind.
    pub fn assert_as(&self, before: &Snapshot) {
        let after = self.snapshot();
        assert!(
            after.tmp.is_empty(),
            "staging left in tmp/: {:?}",
            after.tmp
        );
        assert_eq!(&after, before, "the failed pull changed the store");
    }

    /// A fresh store after a failed pull: no image, no layer, nothing
    /// staged, no blob.
    pub fn assert_empty(&self) {
        self.assert_as(&Snapshot {
            images: Vec::new(),
            layers: BTreeSet::new(),
            blobs: BTreeSet::new(),
            tmp: BTreeSet::new(),
        });
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.has_layer(&diff_id.parse().unwrap())
    }
}

pub async fn pull(
    registries: &Arc<Registries>,
    store: &TestStore,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    husk_registry::pull(
        Arc::clone(registries),
        Arc::clone(&store.store),
        reference,
        options,
    )
    .await
}

/// Pulls `<fake>/library/busybox:latest` into `store` with `fake`'s
/// plain configuration.
pub async fn pull_latest(fake: &FakeRegistry, store: &TestStore) -> Result<Pulled, RegistryError> {
    pull_latest_with(fake, store, &PullOptions::default()).await
}

/// `pull_latest` with these options (a progress recorder, a platform).
pub async fn pull_latest_with(
    fake: &FakeRegistry,
    store: &TestStore,
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    pull(
        &registries(config_for(fake)),
        store,
        &reference(fake, "latest"),
        options,
    )
    .await
}

/// The error's message; a pull that succeeded fails the test.
pub fn message(result: Result<Pulled, RegistryError>) -> String {
    match result {
        Ok(pulled) => panic!("the pull succeeded: {pulled:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts `text` has each of `parts`.
#[track_caller]
pub fn assert_says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` is not in: {text}");
    }
}

/// The progress a pull reported, kept.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Progress>>>);

impl Events {
    pub fn options(&self) -> PullOptions {
        let events = Arc::clone(&self.0);
        PullOptions {
            progress: Some(Arc::new(move |p| {
                events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(p);
            })),
            ..Default::default()
        }
    }

    pub fn all(&self) -> Vec<Progress> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The LayerRetry events of `digest`: their reasons.
    pub fn retries(&self, digest: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|p| match p {
                Progress::LayerRetry {
                    digest: d, reason, ..
                } if d == digest => Some(reason),
                _ => None,
            })
            .collect()
    }
}

/// The `Range` headers of the GETs of blob `digest`, in order.
pub fn blob_ranges(fake: &FakeRegistry, digest: &str) -> Vec<Option<String>> {
    let suffix = format!("/blobs/{digest}");
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&suffix))
        .map(|r| r.range)
        .collect()
}
