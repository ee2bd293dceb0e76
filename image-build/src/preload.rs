//! `husk-image build --preload`: the data partition's image store, made
//! at build time with the agent's own store code, so a machine runs these
//! images offline from its first boot.
//!
//! The build is unprivileged: it cannot write what unpacked layers hold
//! (whiteouts as device nodes, trusted.* xattrs, other owners). So the
//! store imports with [`StoreOptions::defer_unpack`]: every blob is
//! verified against its digest and every layer against its diff_id now,
//! the layer blobs are kept, and the agent's store unpacks them when it
//! opens the partition at first boot. An image named `docker://REF` is
//! pulled from its registry the way the agent pulls (husk-registry), into
//! the same deferred store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use husk_registry::{PullOptions, Reference, Registries, RegistryConfig};
use husk_store::{Store, StoreOptions};

/// What `--preload` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preload {
    Archive(PathBuf),
    Registry(Reference),
}

impl std::str::FromStr for Preload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("docker://") {
            Some(reference) => Reference::parse(reference)
                .map(Self::Registry)
                .map_err(|e| e.to_string()),
            None => Ok(Self::Archive(PathBuf::from(text))),
        }
    }
}

/// The `[registry]` table of `path` (an agent.toml), or the defaults.
pub fn registry_config(path: Option<&Path>) -> Result<RegistryConfig> {
    #[derive(serde::Deserialize, Default)]
    struct File {
        #[serde(default)]
        registry: RegistryConfig,
    }
    let Some(path) = path else {
        return Ok(RegistryConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Only `[registry]` matters here; agent.toml's other tables are the
    // agent's to check.
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not TOML", path.display()))?;
    let registry = value
        .get("registry")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    let file = File {
        registry: registry
            .try_into()
            .with_context(|| format!("{}: [registry]", path.display()))?,
    };
    file.registry
        .validate()
        .with_context(|| format!("{}: [registry]", path.display()))?;
    Ok(file.registry)
}

/// Room the filesystem needs besides the files (journal, inode tables,
/// directories), and for the first boot's unpacking of the layers.
const HEADROOM: f64 = 2.5;

/// Imports or pulls `images` into a store at `tree` (a new directory),
/// the data partition's root, checking it fits `data_size` bytes.
pub fn store_tree(
    images: &[Preload],
    registry: &RegistryConfig,
    tree: &Path,
    data_size: u64,
) -> Result<()> {
    std::fs::create_dir_all(tree).with_context(|| format!("creating {}", tree.display()))?;
    {
        let store = Store::open_with(
            tree,
            StoreOptions {
                defer_unpack: true,
                ..StoreOptions::default()
            },
        )
        .context("creating the image store")?;
        let store = Arc::new(Mutex::new(store));
        let mut registries = None;
        for image in images {
            match image {
                Preload::Archive(archive) => {
                    let mut store = store
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let images = store
                        .import(archive)
                        .with_context(|| format!("preloading {}", archive.display()))?;
                    for image in images {
                        log::info!("preloaded {} ({})", image.names.join(", "), image.id);
                    }
                }
                Preload::Registry(reference) => {
                    if registries.is_none() {
                        registries = Some(Arc::new(Registries::new(registry.clone())?));
                    }
                    let registries = registries.clone().context("registry client")?;
                    let pulled = pull(registries, Arc::clone(&store), reference)
                        .with_context(|| format!("preloading docker://{reference}"))?;
                    log::info!(
                        "preloaded {} ({}, {})",
                        pulled.name,
                        pulled.image.id,
                        pulled.digest
                    );
                }
            }
        }
    }
    // The lock and the staging directory belong to a running store.
    let _ = std::fs::remove_file(tree.join("store.lock"));
    let bytes = tree_size(tree)?;
    let needed = (bytes as f64 * HEADROOM) as u64 + (16 << 20);
    if needed > data_size {
        bail!(
            "the preloaded images take {} MiB (about {} MiB with their unpacked layers and the \
             filesystem's own space), more than the data partition's {} MiB: raise data.size_mib",
            bytes >> 20,
            needed >> 20,
            data_size >> 20
        );
    }
    Ok(())
}

/// One pull on a runtime of its own (the build is synchronous).
fn pull(
    registries: Arc<Registries>,
    store: Arc<Mutex<Store>>,
    reference: &Reference,
) -> Result<husk_registry::Pulled> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(husk_registry::pull(
        registries,
        store,
        reference,
        &PullOptions::default(),
    ))?)
}

fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
