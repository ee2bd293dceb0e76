//! Reading a file of an image from its unpacked layers, as the overlay
//! would show it, without mounting anything: the spec builder needs the
//! image's /etc/passwd and /etc/group before the container exists.
//!
//! Whiteouts are 0:0 character devices and opaque directories carry the
//! `trusted.overlay.opaque` xattr: the store unpacks OCI whiteouts so.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use husk_spec::read_rootfs_file;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// `relative` (e.g. `etc/passwd`) from `layers`, top-most first.
pub fn read_file(layers: &[PathBuf], relative: &str) -> io::Result<Option<String>> {
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    'layers: for layer in layers {
        let mut dir = layer.clone();
        for (i, part) in parts.iter().enumerate() {
            let path = dir.join(part);
            let last = i + 1 == parts.len();
            match entry(&path)? {
                Entry::Missing => {
                    // Not in this layer; lower layers show through unless
                    // this directory is opaque.
                    if i > 0 && is_opaque(&dir) {
                        return Ok(None);
                    }
                    continue 'layers;
                }
                Entry::Whiteout => return Ok(None),
                Entry::Directory if !last => dir = path,
                Entry::Directory => return Ok(None),
                Entry::Other if last => return read_rootfs_file(layer, relative),
                // A file or symlink where a directory is expected hides
                // everything below it.
                Entry::Other => return Ok(None),
            }
        }
    }
    Ok(None)
}

enum Entry {
    Missing,
    Whiteout,
    Directory,
    Other,
}

fn entry(path: &Path) -> io::Result<Entry> {
    match rustix::fs::lstat(path) {
        Err(rustix::io::Errno::NOENT) => Ok(Entry::Missing),
        Err(e) => Err(e.into()),
        Ok(st) => {
            let kind = FileType::from_raw_mode(st.st_mode);
            Ok(match kind {
                FileType::CharacterDevice if st.st_rdev == 0 => Entry::Whiteout,
                FileType::Directory => Entry::Directory,
                _ => Entry::Other,
            })
        }
    }
}

fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut value[..]), Ok(1) if value[0] == b'y')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let top = dir.path().join("top");
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::write(base.join("etc/passwd"), "base\n").unwrap();
        fs::write(base.join("etc/group"), "basegroup\n").unwrap();
        let layers = vec![top.clone(), base.clone()];
        assert_eq!(read_file(&layers, "etc/passwd").unwrap().unwrap(), "base\n");
        fs::write(top.join("etc/passwd"), "top\n").unwrap();
        assert_eq!(read_file(&layers, "etc/passwd").unwrap().unwrap(), "top\n");
        assert_eq!(read_file(&layers, "etc/shadow").unwrap(), None);
        // A file where a directory is expected hides the lower directory.
        fs::remove_dir_all(top.join("etc")).unwrap();
        fs::write(top.join("etc"), "").unwrap();
        assert_eq!(read_file(&layers, "etc/group").unwrap(), None);
        fs::remove_file(top.join("etc")).unwrap();
        // (whiteouts need mknod, opaque directories trusted.* xattrs)
        assert!(
            rustix::process::geteuid().is_root(),
            "the whiteout cases need root: run the tests as root, as CI does"
        );
        {
            // A whiteout (0:0 char device) hides the lower file.
            fs::create_dir(top.join("etc")).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                top.join("etc/group"),
                FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            assert_eq!(read_file(&layers, "etc/group").unwrap(), None);
            assert_eq!(read_file(&layers, "etc/passwd").unwrap().unwrap(), "base\n");
            // An opaque directory hides everything below it.
            rustix::fs::setxattr(
                top.join("etc"),
                OPAQUE_XATTR,
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
            assert_eq!(read_file(&layers, "etc/passwd").unwrap(), None);
        }
    }
}
