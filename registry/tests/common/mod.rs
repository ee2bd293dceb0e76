//! What the peer suites share: a store pulls go into, and what it
//! must look like after a pull that failed.

#![allow(dead_code)] // each suite uses its own subset

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use husk_registry::Pulled;
use husk_store::Store;

pub struct TestStore {
    dir: tempfile::TempDir,
    pub store: Arc<Mutex<Store>>,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).expect("open the store");
        Self {
            dir,
            store: Arc::new(Mutex::new(store)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    /// `path`'s bytes in the top-most layer of the pulled image that has it.
    pub fn file(&self, pulled: &Pulled, path: &str) -> Option<Vec<u8>> {
        let layers = self
            .lock()
            .layer_paths(&pulled.image.id)
            .expect("layers unpacked");
        layers
            .iter()
            .rev()
            .find_map(|dir| std::fs::read(dir.join(path)).ok())
    }

    /// No image, no layer, nothing staged.
    pub fn assert_untouched(&self) {
        let images = self.lock().list();
        assert!(images.is_empty(), "{images:?}");
        let root = self.dir.path().join("store");
        for sub in ["tmp", "layers"] {
            let left = entries(&root.join(sub));
            assert!(left.is_empty(), "{sub}/ has {left:?}");
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
