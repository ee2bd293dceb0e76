//! Builds the data partition: an ext4 filesystem in a regular file, made
//! by e2fsprogs' `mke2fs` and filled by `debugfs` (no root, no mounts).
//!
//! Determinism:
//! - mke2fs reads its defaults from a config this module writes
//!   (`MKE2FS_CONFIG`), not the host's /etc/mke2fs.conf;
//! - the filesystem UUID (`-U`) and the directory hash seed
//!   (`-E hash_seed`) come from the caller's seed;
//! - `E2FSPROGS_FAKE_TIME` makes every timestamp mke2fs and debugfs write
//!   the caller's `SOURCE_DATE_EPOCH` (0 would mean "use the clock" to
//!   e2fsprogs, so epoch 0 is written as 1);
//! - the source tree is copied in sorted order by debugfs rather than by
//!   `mke2fs -d`, which would follow the host's readdir order (inode
//!   numbers and directory layouts would vary) and copy the builder's
//!   uid/gid; every entry is set to uid/gid 0 and keeps its permission
//!   bits.
//!
//! Project quotas (`quota,project`, the project quota inode) are switched
//! on by `tune2fs -O quota,project -Q prjquota` once the tree is in:
//! debugfs writes files without accounting them, and tune2fs counts what
//! is there when it makes the quota inode, so e2fsck finds the usage
//! right. The agent caps containers' writable layers with them (ext4
//! project quotas, as Docker's `--storage-opt size=` on overlay2/xfs).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use husk_gpt::Guid;

/// The Debian package with mke2fs and debugfs.
pub const PACKAGE: &str = "e2fsprogs";
pub const DEFAULT_LABEL: &str = "husk-data";
pub const DEFAULT_DATA_SIZE: u64 = 1 << 30;
pub const MIN_SIZE: u64 = 8 << 20;

/// mke2fs's configuration: Debian 12's ext4 defaults, pinned so the host's
/// /etc/mke2fs.conf cannot change the output.
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
\tdefault = {
\t}
";

/// An ext4 filesystem to build.
#[derive(Debug, Clone)]
pub struct Ext4Spec {
    /// Size in bytes (a multiple of 4096).
    pub size: u64,
    pub label: String,
    /// Seed of the filesystem UUID and the directory hash seed.
    pub seed: String,
    /// Every timestamp in the filesystem.
    pub source_date_epoch: u64,
    /// A tree to copy in: directories, regular files and symlinks.
    pub source: Option<PathBuf>,
}

impl Ext4Spec {
    pub fn new(size: u64, seed: &str, source_date_epoch: u64) -> Self {
        Self {
            size,
            label: DEFAULT_LABEL.to_owned(),
            seed: seed.to_owned(),
            source_date_epoch,
            source: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("{tool} not found: apt-get install {PACKAGE}")]
    Missing { tool: &'static str },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: only directories, regular files and symlinks can go in the data partition")]
    Unsupported { path: PathBuf },
    #[error("{path}: names may use only letters, digits and . _ - + @ = , :")]
    BadName { path: PathBuf },
    #[error("size {0} bytes: must be a multiple of 4096 and at least {MIN_SIZE}")]
    BadSize(u64),
    #[error("label {0:?}: at most 16 bytes, no spaces or quotes")]
    BadLabel(String),
}

/// The filesystem UUID for a seed.
pub fn uuid(seed: &str) -> Guid {
    Guid::from_seed("ext4-uuid", seed, "")
}

/// The directory hash seed for a seed.
pub fn hash_seed(seed: &str) -> Guid {
    Guid::from_seed("ext4-hash-seed", seed, "")
}

fn run(tool: &'static str, mut command: Command, stdin: Option<&str>) -> Result<(), Ext4Error> {
    command
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|_| Ext4Error::Missing { tool })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Ext4Error::Write {
                path: PathBuf::from(tool),
                source: e,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|_| Ext4Error::Missing { tool })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // debugfs reports failed commands on stderr and still exits 0; its
    // only expected stderr line is its banner.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    if !out.status.success() || (tool == "debugfs" && !complaints.is_empty()) {
        return Err(Ext4Error::Failed {
            tool,
            status: out.status,
            stderr: stderr.trim().to_owned(),
        });
    }
    Ok(())
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '=' | ',' | ':')
        })
}

/// debugfs commands that recreate `dir` under `guest` (sorted, depth
/// first), appended to `script`.
fn script_tree(dir: &Path, guest: &str, script: &mut String) -> Result<(), Ext4Error> {
    let read_err = |source: io::Error| Ext4Error::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !safe_name(name) {
            return Err(Ext4Error::BadName { path });
        }
        let target = format!("{guest}/{name}");
        let meta = fs::symlink_metadata(&path).map_err(|e| Ext4Error::Read {
            path: path.clone(),
            source: e,
        })?;
        let kind = meta.file_type();
        let perm = meta.permissions().mode() & 0o7777;
        let type_bits = if kind.is_dir() {
            writeln!(script, "mkdir {target}").unwrap();
            0o040000
        } else if kind.is_file() {
            let host = path
                .to_str()
                .filter(|p| !p.contains(['"', '\n']))
                .ok_or(Ext4Error::BadName { path: path.clone() })?;
            writeln!(script, "write \"{host}\" {target}").unwrap();
            0o100000
        } else if kind.is_symlink() {
            let link = fs::read_link(&path).map_err(|e| Ext4Error::Read {
                path: path.clone(),
                source: e,
            })?;
            let link = link.to_str().filter(|l| {
                !l.is_empty()
                    && l.split('/')
                        .all(|c| c.is_empty() || safe_name(c) || c == "." || c == "..")
            });
            let link = link.ok_or(Ext4Error::BadName { path: path.clone() })?;
            writeln!(script, "symlink {target} {link}").unwrap();
            0o120000
        } else {
            return Err(Ext4Error::Unsupported { path });
        };
        let mode = if kind.is_symlink() { 0o777 } else { perm };
        writeln!(
            script,
            "sif {target} uid 0\nsif {target} gid 0\nsif {target} mode 0{:o}",
            type_bits | mode
        )
        .unwrap();
        if kind.is_dir() {
            script_tree(&path, &target, script)?;
        }
    }
    Ok(())
}

/// Builds the filesystem into `out` (through `out.tmp`).
pub fn build(spec: &Ext4Spec, out: &Path) -> Result<(), Ext4Error> {
    if spec.size & 4095 != 0 || spec.size < MIN_SIZE {
        return Err(Ext4Error::BadSize(spec.size));
    }
    if spec.label.len() > 16 || spec.label.contains([' ', '"', '\'', ',']) {
        return Err(Ext4Error::BadLabel(spec.label.clone()));
    }
    let mut script = String::new();
    if let Some(source) = &spec.source {
        script_tree(source, "", &mut script)?;
    }
    let mke2fs = crate::tools::find("mke2fs").ok_or(Ext4Error::Missing { tool: "mke2fs" })?;
    let debugfs = crate::tools::find("debugfs").ok_or(Ext4Error::Missing { tool: "debugfs" })?;
    let tune2fs = crate::tools::find("tune2fs").ok_or(Ext4Error::Missing { tool: "tune2fs" })?;

    let with_suffix = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let tmp = with_suffix(".tmp");
    let conf = with_suffix(".mke2fs.conf");
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| Ext4Error::Write { path, source }
    };
    let fake_time = spec.source_date_epoch.max(1).to_string();
    let result = (|| {
        fs::write(&conf, MKE2FS_CONF).map_err(write_err(&conf))?;
        let file = fs::File::create(&tmp).map_err(write_err(out))?;
        file.set_len(spec.size).map_err(write_err(out))?;
        drop(file);

        let mut command = Command::new(&mke2fs);
        command
            .env("MKE2FS_CONFIG", &conf)
            .env("E2FSPROGS_FAKE_TIME", &fake_time)
            .args(["-q", "-F", "-t", "ext4", "-T", "default", "-L", &spec.label])
            .arg("-U")
            .arg(uuid(&spec.seed).to_string())
            .arg("-E")
            .arg(format!(
                "root_owner=0:0,hash_seed={},nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                hash_seed(&spec.seed)
            ))
            .arg(&tmp);
        run("mke2fs", command, None)?;

        if !script.is_empty() {
            let mut command = Command::new(&debugfs);
            command
                .env("E2FSPROGS_FAKE_TIME", &fake_time)
                .args(["-w", "-f", "-"])
                .arg(&tmp);
            run("debugfs", command, Some(&script))?;
        }
        let mut command = Command::new(&tune2fs);
        command
            .env("E2FSPROGS_FAKE_TIME", &fake_time)
            .args(["-O", "quota,project", "-Q", "prjquota"])
            .arg(&tmp);
        run("tune2fs", command, None)?;
        fs::rename(&tmp, out).map_err(write_err(out))
    })();
    let _ = fs::remove_file(&conf);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tool(name: &str, args: &[&str], image: &Path) -> (bool, String) {
        let path = crate::tools::find(name)
            .unwrap_or_else(|| panic!("{name} not found: apt-get install e2fsprogs"));
        let out = Command::new(path)
            .args(args)
            .arg(image)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn sample_tree(root: &Path) {
        fs::create_dir_all(root.join("lib/husk/containers")).unwrap();
        fs::write(root.join("lib/husk/state.json"), b"{\"generation\":1}\n").unwrap();
        fs::write(
            root.join("lib/husk/big.bin"),
            (0..300_000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        fs::set_permissions(
            root.join("lib/husk/containers"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        symlink("husk/state.json", root.join("lib/state")).unwrap();
    }

    #[test]
    fn e2fsck_is_clean_and_the_tree_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        sample_tree(&src);
        let image = dir.path().join("data.ext4");
        let mut spec = Ext4Spec::new(64 << 20, "seed", 1_700_000_000);
        spec.source = Some(src.clone());
        let started = std::time::Instant::now();
        build(&spec, &image).unwrap();
        eprintln!("ext4 64 MiB with a tree: {:?}", started.elapsed());
        assert_eq!(fs::metadata(&image).unwrap().len(), 64 << 20);
        assert!(!dir.path().join("data.ext4.mke2fs.conf").exists());

        let (ok, fsck) = tool("e2fsck", &["-fn"], &image);
        assert!(ok, "{fsck}");
        let (ok, header) = tool("dumpe2fs", &["-h"], &image);
        assert!(ok, "{header}");
        // Project quotas, for the writable layers' caps.
        assert!(header.contains(" quota "), "{header}");
        assert!(header.contains(" project"), "{header}");
        assert!(header.contains("Project quota inode:"), "{header}");
        assert!(
            header.contains("Filesystem volume name:   husk-data"),
            "{header}"
        );
        assert!(
            header.contains(&format!(
                "Filesystem UUID:          {}",
                uuid("seed").to_string().to_lowercase()
            )),
            "{header}"
        );
        assert!(
            header.contains("Last write time:          Tue Nov 14 22:13:20 2023"),
            "{header}"
        );
        let (_, label) = tool("e2label", &[], &image);
        assert_eq!(label.trim(), "husk-data");

        let (ok, dump) = tool("debugfs", &["-R", "cat /lib/husk/big.bin"], &image);
        assert!(ok);
        assert!(dump.contains("debugfs"));
        let got = Command::new(crate::tools::find("debugfs").unwrap())
            .args(["-R", "cat /lib/husk/big.bin"])
            .arg(&image)
            .output()
            .unwrap()
            .stdout;
        assert_eq!(got, fs::read(src.join("lib/husk/big.bin")).unwrap());
        let (_, listing) = tool("debugfs", &["-R", "ls -l /lib/husk"], &image);
        let line = listing
            .lines()
            .find(|l| l.ends_with(" containers"))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(
            line.contains("40700") && line.contains(" 0      0 "),
            "owner root, mode kept: {line}"
        );
        let (_, stat) = tool("debugfs", &["-R", "stat /lib/state"], &image);
        assert!(
            stat.contains("Type: symlink") && stat.contains("husk/state.json"),
            "{stat}"
        );
        assert!(stat.contains("mtime: 0x6553f100"), "{stat}");
    }

    #[test]
    fn two_builds_are_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        sample_tree(&src);
        let mut spec = Ext4Spec::new(32 << 20, "seed", 0);
        spec.source = Some(src);
        let (a, b) = (dir.path().join("a.ext4"), dir.path().join("b.ext4"));
        build(&spec, &a).unwrap();
        // Clock seconds must not reach the image.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        build(&spec, &b).unwrap();
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "two builds differ"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Ext4Spec::new(1 << 20, "s", 0);
        assert!(matches!(
            build(&spec, &dir.path().join("x")),
            Err(Ext4Error::BadSize(_))
        ));
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("with space"), b"").unwrap();
        let mut spec = Ext4Spec::new(16 << 20, "s", 0);
        spec.source = Some(src);
        assert!(matches!(
            build(&spec, &dir.path().join("x")),
            Err(Ext4Error::BadName { .. })
        ));
        assert!(!dir.path().join("x").exists());
    }
}
