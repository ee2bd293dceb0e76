//! `husk-image build --preload`: the data partition's image store, made
//! at build time with the agent's own store code, so a machine runs these
//! images offline from its first boot.
//!
//! The build is unprivileged: it cannot write what unpacked layers hold
//! (whiteouts as device nodes, trusted.* xattrs, other owners). So the
//! store imports with [`StoreOptions::defer_unpack`]: every blob is
//! verified against its digest and every layer against its diff_id now,
//! the layer blobs are kept, and the agent's store unpacks them when it
//! opens the partition at first boot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use husk_store::{Store, StoreOptions};

/// Room the filesystem needs besides the files (journal, inode tables,
/// directories), and for the first boot's unpacking of the layers.
const HEADROOM: f64 = 2.5;

/// Imports `archives` into a store at `tree` (a new directory), the data
/// partition's root, checking it fits `data_size` bytes.
pub fn store_tree(archives: &[PathBuf], tree: &Path, data_size: u64) -> Result<()> {
    std::fs::create_dir_all(tree).with_context(|| format!("creating {}", tree.display()))?;
    {
        let mut store = Store::open_with(
            tree,
            StoreOptions {
                defer_unpack: true,
                ..StoreOptions::default()
            },
        )
        .context("creating the image store")?;
        for archive in archives {
            let images = store
                .import(archive)
                .with_context(|| format!("preloading {}", archive.display()))?;
            for image in images {
                log::info!("preloaded {} ({})", image.names.join(", "), image.id);
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
