//! Docker's copy-up: a new, empty volume mounted where the image has a
//! directory starts with that directory's contents (`-v conf:/etc/nginx`,
//! compose's `- /app/node_modules`, an image's `VOLUME`). The image's
//! directory is read from its layers merged as overlayfs merges them —
//! the topmost layer's entry wins, a whiteout (a 0/0 character device)
//! hides what is below, an opaque directory (`trusted.overlay.opaque`)
//! cuts the layers under it — so no overlay is mounted for it.
//!
//! The layers are the store's (unpacked and checked by it); the volume is
//! new, empty and mounted by no container (the caller checks, under the
//! volumes' lock), so nothing can move under the copy. Nothing is
//! followed: symlinks are copied as links, hard links stay links (an
//! image of one big file and a million links to it is one file here
//! too), device nodes and FIFOs are left out (a volume is data), owners
//! and modes are kept, shifted into the container's user namespace when
//! it has one (an id it cannot map becomes its `nobody`). A target that
//! is a symlink in the image (or under one), or no directory at all, is
//! not copied up. A copy that fails leaves the volume empty again, and
//! says why.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use husk_api::containers::UserNamespace;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Directories deeper than this under the target are refused (the walk
/// recurses; the store's paths are at most 4095 bytes, ~2000 levels).
const MAX_DEPTH: usize = 256;

/// The `nobody` of a user namespace (65534), where an image's id falls
/// outside the container's range.
const NOBODY: u32 = 65534;

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
        let mut value = [0u8; 1];
        let opaque = rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut value)
            .is_ok_and(|n| n == 1 && value[0] == b'y');
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
    let mut named = 0;
    for component in Path::new(target).components() {
        match component {
            std::path::Component::RootDir | std::path::Component::CurDir => continue,
            std::path::Component::Normal(name) => {
                named += 1;
                dirs = merged_dirs(&dirs, Path::new(name))?;
            }
            // `..` never reaches here (targets are checked), but nothing
            // is copied for one that did.
            _ => return Ok(false),
        }
        if dirs.is_empty() {
            return Ok(false);
        }
    }
    // The image's root is never a volume's.
    if named == 0 || dirs.is_empty() {
        return Ok(false);
    }
    let copy = Copy {
        ids: Ids(userns.copied()),
        links: RefCell::default(),
    };
    let copied = copy.dir(&dirs, dest, 0).and_then(|()| {
        let top = fs::symlink_metadata(&dirs[0])?;
        own(dest, &top, &copy.ids)?;
        fs::set_permissions(dest, fs::Permissions::from_mode(top.mode() & 0o7777))
    });
    if let Err(e) = copied {
        empty(dest);
        return Err(e);
    }
    Ok(true)
}

/// Removes what a failed copy left in `dest` (best effort: the error
/// that made it fail is the one told).
fn empty(dest: &Path) {
    let Ok(entries) = fs::read_dir(dest) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if let Err(e) = removed {
            log::warn!("copy-up: removing {}: {e}", path.display());
        }
    }
}

/// The image's ids as the container's user namespace shows them on the
/// host.
struct Ids(Option<UserNamespace>);

impl Ids {
    fn map(&self, meta: &fs::Metadata) -> (u32, u32) {
        match &self.0 {
            Some(ns) => (
                shift(ns.host_uid, ns.size, meta.uid()),
                shift(ns.host_gid, ns.size, meta.gid()),
            ),
            None => (meta.uid(), meta.gid()),
        }
    }
}

/// `id` of the container's range as the host sees it; one outside it is
/// the range's `nobody` (never a host id, never a neighbour's, never
/// `u32::MAX`, which chown reads as "leave it").
fn shift(base: u32, size: u32, id: u32) -> u32 {
    let inside = if id < size {
        id
    } else {
        NOBODY.min(size.saturating_sub(1))
    };
    base.checked_add(inside)
        .filter(|&host| host != u32::MAX)
        .unwrap_or(base)
}

fn own(path: &Path, meta: &fs::Metadata, ids: &Ids) -> io::Result<()> {
    let (uid, gid) = ids.map(meta);
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// One copy: its id mapping, and the hard links met so far (the
/// source's device and inode → where its first name was copied).
struct Copy {
    ids: Ids,
    links: RefCell<HashMap<(u64, u64), PathBuf>>,
}

impl Copy {
    /// The merged contents of `dirs` (one directory in each layer,
    /// topmost first) into `dest`, `depth` levels under the target.
    fn dir(&self, dirs: &[PathBuf], dest: &Path, depth: usize) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!(
                "the image's directory is deeper than {MAX_DEPTH} levels"
            )));
        }
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
                    self.dir(&below, &to, depth + 1)?;
                    own(&to, &meta, &self.ids)?;
                    fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                } else if kind.is_symlink() {
                    std::os::unix::fs::symlink(fs::read_link(&source)?, &to)?;
                    own(&to, &meta, &self.ids)?;
                } else if kind.is_file() {
                    self.file(&source, &meta, &to)?;
                }
                // Whiteouts hide; devices, FIFOs and sockets are not data.
            }
        }
        Ok(())
    }

    fn file(&self, source: &Path, meta: &fs::Metadata, to: &Path) -> io::Result<()> {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.borrow().get(&key) {
                return fs::hard_link(first, to);
            }
            self.links.borrow_mut().insert(key, to.to_path_buf());
        }
        let mut from = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(source)?;
        let mut into = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)?;
        io::copy(&mut from, &mut into)?;
        let (uid, gid) = self.ids.map(meta);
        std::os::unix::fs::fchown(&into, Some(uid), Some(gid))?;
        into.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
    }
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
        // A million links would be a million copies; they stay links.
        write(&top.join("etc/app/big"), "one file");
        fs::hard_link(top.join("etc/app/big"), top.join("etc/app/big-link")).unwrap();
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
                "big = one file",
                "big-link = one file",
                "cut/",
                "cut/new = kept",
                "link -> /etc/passwd",
                "sub/",
                "sub/deep = deep",
            ]
        );
        let (big, link) = (
            fs::metadata(dest.join("big")).unwrap(),
            fs::metadata(dest.join("big-link")).unwrap(),
        );
        assert_eq!((big.ino(), big.nlink()), (link.ino(), 2));
        let deep = fs::symlink_metadata(dest.join("sub/deep")).unwrap();
        assert_eq!((deep.uid(), deep.gid()), (100_007, 200_008));
        let root = fs::symlink_metadata(&dest).unwrap();
        assert_eq!((root.uid(), root.gid()), (100_000, 200_000));

        // No directory there (or the image's root): nothing copied.
        for target in [
            "/etc/app/link/x",
            "/.",
            "/",
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

    #[test]
    fn ids_outside_the_range_are_its_nobody_never_the_hosts() {
        assert_eq!(shift(100_000, 65536, 5), 100_005);
        assert_eq!(shift(100_000, 65536, 70_000), 165_534);
        assert_eq!(shift(100_000, 65536, u32::MAX), 165_534);
        assert_eq!(shift(100_000, 100, 500), 100_099);
        assert_ne!(shift(u32::MAX - 1, 65536, 1), u32::MAX);
    }

    #[test]
    fn a_directory_deeper_than_the_limit_is_refused_and_the_volume_left_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let mut deep = layer.join("data");
        for _ in 0..=MAX_DEPTH + 1 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        write(&layer.join("data/top"), "x");
        let dest = tmp.path().join("volume");
        fs::create_dir(&dest).unwrap();
        let err = copy_up(&[layer], "/data", &dest, None).unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    }
}
