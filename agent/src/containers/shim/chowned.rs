//! The fallback when a kernel or filesystem cannot idmap a layer's mount:
//! a copy of the layer whose files are owned by the container's host ids
//! (each id shifted into the range, as the idmapped mount would show it),
//! made once per container and kept with it (`<container>/layers-userns/`),
//! so later starts reuse it. It costs the layer's size on disk and a copy
//! at the first start, which is why idmapped mounts come first.
//!
//! Everything overlayfs and the image need survives the copy: modes,
//! times, symlinks, hardlinks (by inode), device nodes and FIFOs (a
//! whiteout is a 0:0 character device), and extended attributes (the
//! opaque-directory marker, file capabilities).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};
use rustix::process::{Gid, Uid};

use husk_api::containers::UserNamespace;

/// What an id of the layer is in the container's range: outside the range
/// it is nobody (65534), as an idmapped mount would show it.
fn shift(id: u32, base: u32, size: u32) -> u32 {
    let inside = if id < size { id } else { 65534.min(size - 1) };
    base + inside
}

/// `dst` (absent) becomes a copy of `src` owned through `map`. Made in a
/// sibling directory and renamed into place, so a copy cut short is never
/// taken for a finished one.
pub fn copy_layer(src: &Path, dst: &Path, map: &UserNamespace) -> io::Result<()> {
    let tmp = dst.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    let mut links = HashMap::new();
    copy_tree(src, &tmp, map, &mut links)?;
    fs::rename(&tmp, dst)
}

fn copy_tree(
    src: &Path,
    dst: &Path,
    map: &UserNamespace,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst)?;
        let mut entries: Vec<_> = fs::read_dir(src)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy_tree(&entry.path(), &dst.join(entry.file_name()), map, links)?;
        }
    } else if meta.nlink() > 1
        && let Some(first) = links.get(&(meta.dev(), meta.ino()))
    {
        // A hardlink to an entry already copied: the same file again.
        return fs::hard_link(first, dst);
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if kind.is_file() {
        fs::copy(src, dst)?;
    } else {
        let file_type = FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            file_type,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )?;
    }
    if !kind.is_dir() && meta.nlink() > 1 {
        links.insert((meta.dev(), meta.ino()), dst.to_path_buf());
    }
    copy_xattrs(src, dst)?;
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(Uid::from_raw(shift(meta.uid(), map.host_uid, map.size))),
        Some(Gid::from_raw(shift(meta.gid(), map.host_gid, map.size))),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !kind.is_symlink() {
        // After chown, which clears set-id bits.
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let mut names = vec![0u8; 64 * 1024];
    let len = match rustix::fs::llistxattr(src, &mut names) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let mut value = vec![0u8; 64 * 1024];
        let n = rustix::fs::lgetxattr(src, name, &mut value)?;
        rustix::fs::lsetxattr(dst, name, &value[..n], XattrFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_copy_keeps_everything_but_shifts_the_ids() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test chowns and sets trusted.* xattrs: run it as root (cargo xtask test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("layer");
        fs::create_dir_all(src.join("etc/opaque")).unwrap();
        fs::write(src.join("etc/root-file"), b"r").unwrap();
        fs::write(src.join("etc/user-file"), b"u").unwrap();
        fs::write(src.join("etc/far-file"), b"f").unwrap();
        let chown = |p: &str, id: u32| {
            rustix::fs::chown(
                src.join(p),
                Some(Uid::from_raw(id)),
                Some(Gid::from_raw(id)),
            )
            .unwrap()
        };
        chown("etc/user-file", 1000);
        chown("etc/far-file", 70_000);
        fs::set_permissions(
            src.join("etc/root-file"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::hard_link(src.join("etc/root-file"), src.join("etc/hardlink")).unwrap();
        symlink("root-file", src.join("etc/link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("etc/whiteout"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::lsetxattr(
            src.join("etc/opaque"),
            "trusted.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        let old = Timestamps {
            last_access: Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 5,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            src.join("etc/user-file"),
            &old,
            AtFlags::empty(),
        )
        .unwrap();

        let map = UserNamespace {
            host_uid: 1 << 20,
            host_gid: 1 << 20,
            size: 65536,
        };
        let dst = dir.path().join("copy");
        copy_layer(&src, &dst, &map).unwrap();
        let meta = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        let base = 1u32 << 20;
        assert_eq!(meta("etc").uid(), base);
        assert_eq!(
            (meta("etc/root-file").uid(), meta("etc/root-file").gid()),
            (base, base)
        );
        assert_eq!(meta("etc/user-file").uid(), base + 1000);
        assert_eq!(
            meta("etc/far-file").uid(),
            base + 65534,
            "outside the range: nobody"
        );
        assert_eq!(
            meta("etc/root-file").mode() & 0o7777,
            0o4755,
            "set-uid kept"
        );
        assert_eq!(meta("etc/hardlink").ino(), meta("etc/root-file").ino());
        assert_eq!(
            fs::read_link(dst.join("etc/link")).unwrap(),
            Path::new("root-file")
        );
        assert_eq!(meta("etc/link").uid(), base);
        assert_eq!(meta("etc/whiteout").rdev(), 0);
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &meta("etc/whiteout").file_type()
        ));
        let mut value = [0u8; 4];
        let n = rustix::fs::lgetxattr(dst.join("etc/opaque"), "trusted.overlay.opaque", &mut value)
            .unwrap();
        assert_eq!(&value[..n], b"y");
        assert_eq!(meta("etc/user-file").mtime(), 1_000_000);
        assert_eq!(fs::read(dst.join("etc/far-file")).unwrap(), b"f");
        assert!(!dir.path().join("copy.partial").exists());
    }
}
