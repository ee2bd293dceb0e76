//! Builds the initramfs: a zstd-compressed cpio holding husk-init as
//! `/init`, the agent, e2fsck, the kernel modules the image needs and
//! init's configuration — no more executables than that (huskctl is the
//! operator's, in the release bundle: no shell in the image runs it). The tree is assembled in memory, sorted, and written
//! with fixed ownership and timestamps, so equal inputs give equal bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cpio::{CpioWriter, EntryKind};
use crate::kmod::{self, ModulesError};

/// The init.toml an image gets when the caller gives none.
pub const DEFAULT_INIT_CONFIG: &str = include_str!("default-init.toml");

/// zstd level: 19 is what distributions use for initramfs images; the
/// kernel decompresses it as fast as a lower level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 19;

/// Everything an initramfs is made of.
#[derive(Debug, Clone)]
pub struct InitramfsSpec {
    /// husk-init, installed as `/init`.
    pub init: PathBuf,
    /// husk-agent, installed as `/usr/bin/husk-agent`.
    pub agent: PathBuf,
    /// The kernel's `/lib/modules/<release>` tree.
    pub modules_dir: PathBuf,
    /// Modules to ship besides [`kmod::DEFAULT_MODULES`]; each must exist.
    pub modules: Vec<String>,
    /// Contents of `/etc/husk/init.toml` (`None`: [`DEFAULT_INIT_CONFIG`]).
    pub init_config: Option<String>,
    /// A static e2fsck, installed as `/usr/sbin/e2fsck`: init checks the
    /// data partition with it before mounting.
    pub e2fsck: Option<PathBuf>,
    /// Contents of `/etc/os-release`: the OS version the agent reports
    /// and updates from, and the build time its clock check uses.
    pub os_release: Option<String>,
    /// More files: host source, absolute guest path, mode.
    pub extra_files: Vec<(PathBuf, String, u32)>,
    /// Timestamp of every entry (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// zstd compression level.
    pub zstd_level: i32,
}

impl InitramfsSpec {
    /// A spec with the defaults for everything but the binaries.
    pub fn new(init: PathBuf, agent: PathBuf, modules_dir: PathBuf) -> Self {
        Self {
            init,
            agent,
            modules_dir,
            modules: Vec::new(),
            init_config: None,
            e2fsck: None,
            os_release: None,
            extra_files: Vec::new(),
            source_date_epoch: 0,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Modules(#[from] ModulesError),
    #[error("guest path {0:?} must be absolute and must not contain '..'")]
    BadGuestPath(String),
    #[error("guest path {0:?} is in the image twice")]
    Duplicate(String),
    #[error("guest path {path:?}: {parent:?} is not a directory")]
    ParentNotDirectory { path: String, parent: String },
    #[error("SOURCE_DATE_EPOCH {0} does not fit the cpio format (32-bit seconds)")]
    BadEpoch(u64),
}

/// What went into an initramfs, for build logs and release notes.
#[derive(Debug, Clone, Default)]
pub struct InitramfsReport {
    pub kernel_release: String,
    pub modules: usize,
    pub modules_bytes: u64,
    pub binaries_bytes: u64,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

/// The file tree, keyed by path relative to `/`, in the order written.
#[derive(Default)]
struct Tree {
    entries: BTreeMap<String, (u32, EntryKind)>,
}

impl Tree {
    fn add(&mut self, path: &str, mode: u32, kind: EntryKind) -> Result<(), InitramfsError> {
        let relative = path
            .strip_prefix('/')
            .filter(|p| {
                !p.is_empty() && !p.split('/').any(|c| c == ".." || c == "." || c.is_empty())
            })
            .ok_or_else(|| InitramfsError::BadGuestPath(path.to_owned()))?;
        // Parents first, as directories, unless the caller made them.
        for (slash, _) in relative.match_indices('/') {
            let parent = self
                .entries
                .entry(relative[..slash].to_owned())
                .or_insert((0o755, EntryKind::Directory));
            if !matches!(parent.1, EntryKind::Directory) {
                return Err(InitramfsError::ParentNotDirectory {
                    path: path.to_owned(),
                    parent: format!("/{}", &relative[..slash]),
                });
            }
        }
        // A second file at one path would silently replace the first
        // (the agent, init.toml): only directories may be named again.
        match self.entries.get(relative) {
            Some((_, EntryKind::Directory)) if matches!(kind, EntryKind::Directory) => {}
            Some(_) => return Err(InitramfsError::Duplicate(path.to_owned())),
            None => {}
        }
        self.entries.insert(relative.to_owned(), (mode, kind));
        Ok(())
    }

    fn add_host_file(
        &mut self,
        source: &Path,
        guest: &str,
        mode: u32,
    ) -> Result<u64, InitramfsError> {
        let data = fs::read(source).map_err(|e| InitramfsError::Read {
            path: source.to_owned(),
            source: e,
        })?;
        let len = data.len() as u64;
        self.add(guest, mode, EntryKind::File(data))?;
        Ok(len)
    }
}

/// Builds the initramfs described by `spec` into `out` (written to a
/// temporary file and renamed, so `out` is never half-written).
pub fn build(spec: &InitramfsSpec, out: &Path) -> Result<InitramfsReport, InitramfsError> {
    let mtime = u32::try_from(spec.source_date_epoch)
        .map_err(|_| InitramfsError::BadEpoch(spec.source_date_epoch))?;
    let mut tree = Tree::default();
    let mut report = InitramfsReport::default();

    // The skeleton: mount points init needs before anything is mounted,
    // and the console the kernel opens for init's stdio.
    for dir in [
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/var/lib/husk",
        "/etc/husk",
        "/usr/bin",
    ] {
        tree.add(dir, 0o755, EntryKind::Directory)?;
    }
    tree.add("/tmp", 0o1777, EntryKind::Directory)?;
    tree.add(
        "/dev/console",
        0o600,
        EntryKind::CharDevice { major: 5, minor: 1 },
    )?;
    tree.add("/bin", 0o777, EntryKind::Symlink("usr/bin".into()))?;
    tree.add("/sbin", 0o777, EntryKind::Symlink("usr/bin".into()))?;
    tree.add("/lib", 0o777, EntryKind::Symlink("usr/lib".into()))?;
    // The root is read-only: the agent writes the name servers (DHCP,
    // user-data) under /run.
    tree.add(
        "/etc/resolv.conf",
        0o777,
        EntryKind::Symlink("/run/husk/resolv.conf".into()),
    )?;

    report.binaries_bytes += tree.add_host_file(&spec.init, "/init", 0o755)?;
    report.binaries_bytes +=
        tree.add_host_file(&spec.agent, husk_common::paths::AGENT_BIN, 0o755)?;
    if let Some(e2fsck) = &spec.e2fsck {
        report.binaries_bytes += tree.add_host_file(e2fsck, husk_common::paths::E2FSCK, 0o755)?;
    }
    let config = spec.init_config.as_deref().unwrap_or(DEFAULT_INIT_CONFIG);
    tree.add(
        husk_common::paths::INIT_CONFIG,
        0o644,
        EntryKind::File(config.as_bytes().to_vec()),
    )?;

    if let Some(os_release) = &spec.os_release {
        tree.add(
            "/etc/os-release",
            0o644,
            EntryKind::File(os_release.as_bytes().to_vec()),
        )?;
    }

    let selection = kmod::select(&spec.modules_dir, &spec.modules, kmod::DEFAULT_MODULES)?;
    let modules_root = format!("{}/{}", husk_common::paths::MODULES_DIR, selection.release);
    report.kernel_release = selection.release.clone();
    report.modules = selection.modules.len();
    for module in selection.modules {
        report.modules_bytes += module.contents.len() as u64;
        let guest = format!("{modules_root}/{}", module.relative_path);
        tree.add(&guest, 0o644, EntryKind::File(module.contents))?;
    }
    for (name, contents) in selection.index_files {
        tree.add(
            &format!("{modules_root}/{name}"),
            0o644,
            EntryKind::File(contents),
        )?;
    }

    for (source, guest, mode) in &spec.extra_files {
        tree.add_host_file(source, guest, *mode)?;
    }

    let mut archive = CpioWriter::new(Vec::new(), mtime);
    for (path, (mode, kind)) in &tree.entries {
        archive
            .append(path, *mode, kind)
            .map_err(|e| write_error(out, e))?;
    }
    let archive = archive.finish().map_err(|e| write_error(out, e))?;
    report.uncompressed_bytes = archive.len() as u64;

    let compressed =
        zstd::bulk::compress(&archive, spec.zstd_level).map_err(|e| write_error(out, e))?;
    report.compressed_bytes = compressed.len() as u64;
    write_atomically(out, &compressed)?;
    Ok(report)
}

fn write_error(path: &Path, source: std::io::Error) -> InitramfsError {
    InitramfsError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, so a reader never sees a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), InitramfsError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        write_error(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn spec(dir: &Path) -> InitramfsSpec {
        let modules_dir = crate::kernel::default_modules_dir()
            .expect("no Debian cloud kernel: apt-get install linux-image-cloud-amd64");
        let fake_bin = dir.join("bin");
        fs::write(&fake_bin, b"\x7fELF fake").unwrap();
        let mut spec = InitramfsSpec::new(fake_bin.clone(), fake_bin.clone(), modules_dir);
        spec.e2fsck = Some(fake_bin);
        spec.source_date_epoch = 1_700_000_000;
        spec.zstd_level = 3;
        spec
    }

    fn listing(image: &Path) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("zstd -dc {} | cpio -itv --quiet", image.display()))
            .output()
            .expect("zstd and cpio: apt-get install zstd cpio");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn contains_init_agent_config_and_module_closure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("initramfs.img");
        let report = build(&spec(dir.path()), &out).unwrap();
        assert!(report.modules > 10, "{report:?}");
        let list = listing(&out);
        for needed in [
            " init\n",
            " usr/bin/husk-agent\n",
            " usr/sbin/e2fsck\n",
            " etc/husk/init.toml\n",
            " etc/resolv.conf -> /run/husk/resolv.conf\n",
            "/modules.dep\n",
            "/modules.alias\n",
            "/virtio_net.ko\n",
            "/net_failover.ko\n",
            "/overlay.ko\n",
            " dev/console\n",
        ] {
            assert!(list.contains(needed), "{needed:?} missing:\n{list}");
        }
        // Only what the image needs: the cloud kernel ships ~2000 modules.
        assert!(report.modules < 80, "{report:?}");
        assert!(!list.contains("/sound/"), "{list}");
    }

    #[test]
    fn same_inputs_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        build(&spec(dir.path()), &a).unwrap();
        build(&spec(dir.path()), &b).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    }

    #[test]
    fn guest_paths_cannot_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.extra_files
            .push((dir.path().join("bin"), "/usr/../../etc/x".into(), 0o644));
        let err = build(&spec, &dir.path().join("out")).unwrap_err();
        assert!(matches!(err, InitramfsError::BadGuestPath(_)), "{err}");
    }

    #[test]
    fn only_init_the_agent_and_e2fsck_are_executables() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("initramfs.img");
        build(&spec(dir.path()), &out).unwrap();
        let list = listing(&out);
        let executables: Vec<&str> = list
            .lines()
            .filter(|l| l.starts_with("-rwx"))
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(
            executables,
            ["init", "usr/bin/husk-agent", "usr/sbin/e2fsck"],
            "huskctl is the operator's, not the image's"
        );
    }

    #[test]
    fn a_path_is_given_once_and_parents_are_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut twice = spec(dir.path());
        twice
            .extra_files
            .push((dir.path().join("bin"), "/usr/bin/husk-agent".into(), 0o755));
        let err = build(&twice, &dir.path().join("out")).unwrap_err();
        assert!(matches!(err, InitramfsError::Duplicate(_)), "{err}");
        let mut under_a_file = spec(dir.path());
        under_a_file
            .extra_files
            .push((dir.path().join("bin"), "/init/x".into(), 0o644));
        let err = build(&under_a_file, &dir.path().join("out")).unwrap_err();
        assert!(
            err.to_string().contains("\"/init\" is not a directory"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.agent = dir.path().join("no-such-agent");
        let err = build(&spec, &dir.path().join("out")).unwrap_err();
        assert!(err.to_string().contains("no-such-agent"), "{err}");
    }
}
