//! What a container's writable layer takes on the data partition (the
//! prune's `SpaceReclaimed`): its files' allocated blocks, as `du`
//! counts them, hard links once. Walked without following a symlink
//! it finds; only asked of a stopped container under its lock
//! (`Manager::remove_if_stopped`), so no process of it can swap a
//! directory for a link meanwhile.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes allocated under `dir` (0 if it cannot be read).
pub fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_once_per_inode_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/file"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(root.join("a/b/file"), root.join("a/link")).unwrap();
        // A link out must not count what it points at.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("big"), vec![1u8; 1024 * 1024]).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        let bytes = tree_bytes(&root);
        assert!(bytes >= 64 * 1024, "{bytes}");
        // Twice 64 KiB if the hard link counted twice; far more if the
        // link out was followed.
        assert!(
            bytes < 128 * 1024,
            "{bytes}: the link or the hard link counted twice"
        );
    }
}
