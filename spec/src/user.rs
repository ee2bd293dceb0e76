//! The process's user: `uid[:gid]` or `name[:group]` resolved against the
//! image's /etc/passwd and /etc/group, with runc's rules (a numeric id
//! need not exist; a name must).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user `{0}`: no matching entry in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("unable to find group `{0}`: no matching entry in the image's /etc/group")]
    UnknownGroup(String),
    #[error("invalid user `{0}`: expected uid[:gid] or name[:group]")]
    Invalid(String),
}

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of /etc/group listing the user.
    pub additional_gids: Vec<u32>,
    /// The passwd entry's home, `/` without one (runc's default $HOME).
    pub home: String,
    pub username: Option<String>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines of a colon-separated database, skipping comments, blank lines
/// and lines that do not parse (as glibc does).
fn fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    fields(text).filter_map(|f| {
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    fields(text).filter_map(|f| {
        Some(GroupEntry {
            name: f.first()?,
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|m| !m.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// A numeric id: digits only (no sign, no spaces).
fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves `spec` (empty: root) given the image's passwd and group files
/// (`None` when the image has none).
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let invalid = || UserError::Invalid(spec.to_owned());
    let (user_part, group_part) = match spec.split_once(':') {
        Some((_, g)) if g.is_empty() || g.contains(':') => return Err(invalid()),
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    let uid_arg = match user_part {
        "" => Some(0),
        u => numeric(u),
    };
    // A number is always a uid (runc's rule), even when a user is named so.
    let entry = passwd_entries(passwd.unwrap_or("")).find(|e| match uid_arg {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let mut user = match (entry, uid_arg) {
        (Some(e), _) => ResolvedUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            home: if e.home.is_empty() { "/" } else { e.home }.to_owned(),
            username: Some(e.name.to_owned()),
        },
        (None, Some(uid)) => ResolvedUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".into(),
            username: None,
        },
        (None, None) => return Err(UserError::UnknownUser(user_part.to_owned())),
    };
    let groups = group.unwrap_or("");
    match group_part {
        Some(g) => {
            // An explicit group replaces the primary group and, as with
            // `su -g`, leaves out the supplementary ones.
            user.gid = match numeric(g) {
                Some(gid) => gid,
                None => {
                    group_entries(groups)
                        .find(|e| e.name == g)
                        .ok_or_else(|| UserError::UnknownGroup(g.to_owned()))?
                        .gid
                }
            };
        }
        None => {
            if let Some(name) = &user.username {
                let mut gids: Vec<u32> = group_entries(groups)
                    .filter(|e| e.members.contains(&name.as_str()) && e.gid != user.gid)
                    .map(|e| e.gid)
                    .collect();
                gids.sort_unstable();
                gids.dedup();
                user.additional_gids = gids;
            }
        }
    }
    Ok(user)
}

/// `found` (an `O_PATH` descriptor) opened for reading if it is a
/// regular file, else None. A container's tree may hold anything at a
/// path: a device node (opened by the host's root, a watchdog reboots
/// the machine, a tty becomes its controlling terminal), a FIFO, a
/// socket. Found as a path first, nothing is opened until its type is
/// known; the reopen through `/proc/self/fd` reaches that same inode.
pub fn reopen_if_regular(found: &std::os::fd::OwnedFd) -> io::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    let st = rustix::fs::fstat(found)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(None);
    }
    let fd = rustix::fs::open(
        format!("/proc/self/fd/{}", found.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    Ok(Some(File::from(fd)))
}

/// The image databases are small; anything bigger is not one.
const MAX_DB_SIZE: u64 = 4 << 20;

/// Reads `relative` (e.g. `etc/passwd`) inside `rootfs`, resolving
/// symlinks as if `rootfs` were `/` (`RESOLVE_IN_ROOT`): the rootfs is the
/// image's, and an `/etc/passwd -> /etc/shadow` link must not reach the
/// host's. `None` when it does not exist or is not a regular file.
pub fn read_rootfs_file(rootfs: &Path, relative: &str) -> io::Result<Option<String>> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // O_PATH first: nothing is opened until it is known to be a file.
    let found = match rustix::fs::openat2(
        &root,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(file) = reopen_if_regular(&found)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_DB_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DB_SIZE {
        return Err(io::Error::other(format!(
            "/{relative} is larger than {MAX_DB_SIZE} bytes"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
broken line
1000:x:1001:1001::/home/numeric:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
tty:x:5:www-data
www-data:x:33:
staff:x:50:www-data,nobody
nogroup:x:65534:
";

    fn resolve(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_user(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn names_resolve_with_home_and_supplementary_groups() {
        let u = resolve("www-data").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.home, "/var/www");
        assert_eq!(u.additional_gids, vec![5, 50]);
        assert_eq!(u.username.as_deref(), Some("www-data"));

        let u = resolve("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));

        let u = resolve("www-data:staff").unwrap();
        assert_eq!((u.uid, u.gid), (33, 50));
        assert!(u.additional_gids.is_empty());
        let u = resolve("nobody:0").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 0));
    }

    #[test]
    fn numbers_are_ids_found_or_not() {
        let u = resolve("1").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1, 1, "/usr/sbin"));
        // A number is a uid, not the user named "1000".
        let u = resolve("1000").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 0, "/"));
        assert_eq!(u.username, None);
        let u = resolve("1234:5678").unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
        // No passwd at all: numbers still work.
        let u = resolve_user("42:43", None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (42, 43, "/"));
        let u = resolve_user("", None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/"));
    }

    #[test]
    fn unknown_names_and_bad_specs_are_errors_naming_them() {
        assert_eq!(
            resolve("postgres"),
            Err(UserError::UnknownUser("postgres".into()))
        );
        let err = resolve("www-data:wheel").unwrap_err();
        assert_eq!(err, UserError::UnknownGroup("wheel".into()));
        assert!(err.to_string().contains("`wheel`"), "{err}");
        assert_eq!(
            resolve_user("postgres", None, None),
            Err(UserError::UnknownUser("postgres".into()))
        );
        for bad in ["1:", "1:2:3", "a b", "4294967296x"] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
        // Beyond u32: not numeric, so a name, and unknown.
        assert_eq!(
            resolve("4294967296"),
            Err(UserError::UnknownUser("4294967296".into()))
        );
    }

    #[test]
    fn rootfs_files_are_read_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "host secret").unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        assert_eq!(read_rootfs_file(&rootfs, "etc/passwd").unwrap(), None);
        std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
        assert_eq!(
            read_rootfs_file(&rootfs, "etc/passwd").unwrap().as_deref(),
            Some(PASSWD)
        );
        // An absolute symlink resolves inside the rootfs, not to the host.
        std::os::unix::fs::symlink(&outside, rootfs.join("etc/group")).unwrap();
        assert_eq!(read_rootfs_file(&rootfs, "etc/group").unwrap(), None);
        std::os::unix::fs::symlink("../../secret", rootfs.join("etc/shadow")).unwrap();
        assert_eq!(read_rootfs_file(&rootfs, "etc/shadow").unwrap(), None);
        // A directory is not a database.
        std::fs::create_dir(rootfs.join("etc/hosts")).unwrap();
        assert_eq!(read_rootfs_file(&rootfs, "etc/hosts").unwrap(), None);
    }
}
