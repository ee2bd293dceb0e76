//! Docker's copy-up: a new, empty volume mounted where the image has a
//! directory starts with that directory's contents (`-v conf:/etc/nginx`,
//! compose's `- /app/node_modules`, an image's `VOLUME`). The image's
//! directory is read from its layers merged as overlayfs merges them —
//! the topmost layer's entry wins, a whiteout (a 0/0 character device)
//! hides what is below, an opaque directory (`trusted.overlay.opaque`)
//! cuts the layers under it — so no overlay is mounted for it.
//!
//! The layers are the store's (unpacked and checked by it); the volume is
//! new and empty. Nothing is followed: symlinks are copied as links,
//! device nodes and FIFOs are left out (a volume is data), owners and
//! modes are kept, shifted into the container's user namespace when it
//! has one. A target that is a symlink in the image (or under one), or no
//! directory at all, is not copied up, as dockerd copies only what it
//! finds there as a directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use husk_api::containers::UserNamespace;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a layer holds at a path, as overlayfs reads it.
enum Seen {
    Missing,
    Whiteout,
    Dir { opaque: bool },
    Other,
}

fn seen(path: &Path) -> io::Result<Seen> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Seen::Missing),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    Ok(if kind.is_char_device() && meta.rdev() == 0 {
        Seen::Whiteout
    } else if kind.is_dir() {
        let opaque = rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut [0u8; 1]).is_ok_and(|n| n == 1);
        Seen::Dir { opaque }
    } else {
        Seen::Other
    })
}

/// The layer directories (topmost first) that make up `name` under the
/// merged directories `dirs`, when the merged entry is a directory.
fn merged_dirs(dirs: &[PathBuf], name: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in dirs {
        let path = dir.join(name);
        match seen(&path)? {
            Seen::Missing => continue,
            Seen::Whiteout | Seen::Other => break,
            Seen::Dir { opaque } => {
                found.push(path);
                if opaque {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// Copies the image's directory `target` (absolute, in the container)
/// from `layers` (topmost first) into the empty directory `dest`, which
/// takes the directory's owner and mode. False when the image has no
/// directory there (nothing is copied).
pub fn copy_up(
    layers: &[PathBuf],
    target: &str,
    dest: &Path,
    userns: Option<&UserNamespace>,
) -> io::Result<bool> {
    let mut dirs: Vec<PathBuf> = layers.to_vec();
    for component in Path::new(target).components() {
        match component {
            std::path::Component::RootDir => continue,
            std::path::Component::Normal(name) => {
                dirs = merged_dirs(&dirs, Path::new(name))?;
                if dirs.is_empty() {
                    return Ok(false);
                }
            }
            // `..` or `.` never reach here (targets are checked), but
            // nothing is copied for one that did.
            _ => return Ok(false),
        }
    }
    let ids = Ids(userns.copied());
    copy_dir(&dirs, dest, &ids)?;
    let top = fs::symlink_metadata(&dirs[0])?;
    own(dest, &top, &ids)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(top.mode() & 0o7777))?;
    Ok(true)
}

/// The image's ids as the container's user namespace shows them on the
/// host (ids outside its range stay as they are: overflow on its side).
struct Ids(Option<UserNamespace>);

impl Ids {
    fn map(&self, meta: &fs::Metadata) -> (u32, u32) {
        match &self.0 {
            Some(ns) => {
                let shift = |base: u32, id: u32| {
                    if id < ns.size {
                        base.saturating_add(id)
                    } else {
                        id
                    }
                };
                (
                    shift(ns.host_uid, meta.uid()),
                    shift(ns.host_gid, meta.gid()),
                )
            }
            None => (meta.uid(), meta.gid()),
        }
    }
}

fn own(path: &Path, meta: &fs::Metadata, ids: &Ids) -> io::Result<()> {
    let (uid, gid) = ids.map(meta);
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// The merged contents of `dirs` (one directory in each layer, topmost
/// first) into `dest`.
fn copy_dir(dirs: &[PathBuf], dest: &Path, ids: &Ids) -> io::Result<()> {
    let mut done: HashSet<OsString> = HashSet::new();
    for (i, dir) in dirs.iter().enumerate() {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            // The topmost layer's entry (or its whiteout) wins.
            if !done.insert(name.clone()) {
                continue;
            }
            let source = entry.path();
            let to = dest.join(&name);
            let meta = fs::symlink_metadata(&source)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                let below = merged_dirs(&dirs[i..], Path::new(&name))?;
                fs::DirBuilder::new().mode(0o700).create(&to)?;
                copy_dir(&below, &to, ids)?;
                own(&to, &meta, ids)?;
                fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&source)?, &to)?;
                own(&to, &meta, ids)?;
            } else if kind.is_file() {
                let mut from = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&source)?;
                let mut into = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&to)?;
                io::copy(&mut from, &mut into)?;
                let (uid, gid) = ids.map(&meta);
                std::os::unix::fs::fchown(&into, Some(uid), Some(gid))?;
                into.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            }
            // Whiteouts hide; devices, FIFOs and sockets are not data.
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut all = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let meta = fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    pending.push(e.path());
                    all.push(format!("{rel}/"));
                } else if meta.file_type().is_symlink() {
                    all.push(format!(
                        "{rel} -> {}",
                        fs::read_link(e.path()).unwrap().display()
                    ));
                } else {
                    all.push(format!("{rel} = {}", fs::read_to_string(e.path()).unwrap()));
                }
            }
        }
        all.sort();
        all
    }

    /// Layers as the store leaves them (whiteouts need root: mknod).
    #[test]
    fn the_image_directory_is_copied_as_overlayfs_merges_it() {
        if !rustix::process::geteuid().is_root() {
            panic!("copy-up's test makes whiteouts (mknod) and chowns: run it as root, as CI does");
        }
        let tmp = tempfile::tempdir().unwrap();
        let (base, top) = (tmp.path().join("base"), tmp.path().join("top"));
        write(&base.join("etc/app/a.conf"), "base a");
        write(&base.join("etc/app/gone.conf"), "hidden");
        write(&base.join("etc/app/sub/deep"), "deep");
        write(&base.join("etc/app/cut/old"), "cut away");
        write(&top.join("etc/app/a.conf"), "top a");
        write(&top.join("etc/app/cut/new"), "kept");
        rustix::fs::lsetxattr(
            top.join("etc/app/cut"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("etc/app/gone.conf"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("etc/app/link")).unwrap();
        std::os::unix::fs::lchown(base.join("etc/app/sub/deep"), Some(7), Some(8)).unwrap();
        let layers = vec![top.clone(), base.clone()];

        let dest = tmp.path().join("volume");
        fs::create_dir(&dest).unwrap();
        let ns = UserNamespace {
            host_uid: 100_000,
            host_gid: 200_000,
            size: 65536,
        };
        assert!(copy_up(&layers, "/etc/app", &dest, Some(&ns)).unwrap());
        assert_eq!(
            listing(&dest),
            [
                "a.conf = top a",
                "cut/",
                "cut/new = kept",
                "link -> /etc/passwd",
                "sub/",
                "sub/deep = deep",
            ]
        );
        let deep = fs::symlink_metadata(dest.join("sub/deep")).unwrap();
        assert_eq!((deep.uid(), deep.gid()), (100_007, 200_008));
        let root = fs::symlink_metadata(&dest).unwrap();
        assert_eq!((root.uid(), root.gid()), (100_000, 200_000));

        // No directory there: nothing copied.
        for target in [
            "/etc/app/a.conf",
            "/nowhere",
            "/etc/app/gone.conf",
            "/etc/app/link",
        ] {
            let empty = tmp
                .path()
                .join(format!("empty{}", target.replace('/', "_")));
            fs::create_dir(&empty).unwrap();
            assert!(!copy_up(&layers, target, &empty, None).unwrap(), "{target}");
            assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "{target}");
        }
    }
}
