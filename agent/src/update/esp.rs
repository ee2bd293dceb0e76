//! Husk's boot entries on the EFI system partition, `EFI/Linux/`: listing
//! them, installing a new UKI atomically, blessing the booted one, and
//! pruning. Every change is a rename in one directory followed by an
//! fsync of that directory, so a power cut leaves either the old name or
//! the new one. A new UKI becomes an entry only if the bytes written are
//! the signed ones, hashed as they are written.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use husk_release::entry::{DEFAULT_TRIES, ENTRY_DIR};
use husk_release::{BootEntry, Tries, compare_versions};

use super::fault;
use super::hashing::{Digest, HashingWriter, Mismatch};

/// Suffix of a UKI being written; never a boot entry (systemd-boot only
/// reads `*.efi`).
const PARTIAL_SUFFIX: &str = ".efi.partial";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The source changed since it was verified (or was never the signed
    /// UKI): nothing was installed and the partial file is gone.
    #[error("the copy written to the ESP is not the signed UKI: {0}")]
    NotSigned(#[from] Mismatch),
}

/// The entries directory of a mounted ESP.
#[derive(Debug, Clone)]
pub struct Esp {
    dir: PathBuf,
}

impl Esp {
    /// The ESP mounted at `root`.
    pub fn at(root: &Path) -> Self {
        Self {
            dir: root.join(ENTRY_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Husk's entries, newest version first (systemd-boot's order before
    /// it moves exhausted entries last).
    pub fn entries(&self) -> io::Result<Vec<BootEntry>> {
        let mut entries: Vec<BootEntry> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| BootEntry::parse(e.file_name().to_str()?))
            .collect();
        entries.sort_by(|a, b| compare_versions(&b.version, &a.version));
        Ok(entries)
    }

    /// The entry of `version`, whatever its counter.
    pub fn find(&self, version: &str) -> io::Result<Option<BootEntry>> {
        Ok(self.entries()?.into_iter().find(|e| e.version == version))
    }

    /// What systemd-boot boots next: the newest entry with tries left or
    /// blessed, else the newest exhausted one.
    pub fn next_boot(&self) -> io::Result<Option<BootEntry>> {
        let entries = self.entries()?;
        Ok(entries
            .iter()
            .find(|e| !e.exhausted())
            .or_else(|| entries.first())
            .cloned())
    }

    fn rename(&self, from: &BootEntry, to: &BootEntry) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        let to = self.dir.join(to.file_name());
        fs::rename(self.dir.join(from.file_name()), &to)?;
        sync_renamed(&to, &self.dir)
    }

    /// Blesses `version`'s entry (drops its counter). `false` when it
    /// was blessed already.
    pub fn bless(&self, version: &str) -> io::Result<bool> {
        let entry = self.find(version)?.ok_or_else(|| not_found(version))?;
        if entry.tries.is_none() {
            return Ok(false);
        }
        self.rename(&entry, &BootEntry::blessed(version))?;
        Ok(true)
    }

    /// Takes `version` out of the boot order: its tries are spent, so
    /// systemd-boot boots it only when nothing else is left.
    pub fn retire(&self, version: &str) -> io::Result<()> {
        let entry = self.find(version)?.ok_or_else(|| not_found(version))?;
        let done = entry.tries.map_or(0, |t| t.done);
        let retired = BootEntry {
            version: version.to_owned(),
            tries: Some(Tries { left: 0, done }),
        };
        self.rename(&entry, &retired)
    }

    /// Installs `uki` as `version`'s entry with a fresh counter: written
    /// as a partial file while hashed, checked against `signed`, synced,
    /// renamed into place, the directory synced. A previous entry of the
    /// same version is replaced. On a mismatch nothing changes but the
    /// entries `prune` took. Blocking (20 MB copied and fsynced on vfat):
    /// call it from a blocking thread, not the agent's async one.
    pub fn install(
        &self,
        version: &str,
        uki: &Path,
        signed: &Digest,
    ) -> Result<BootEntry, InstallError> {
        self.install_from(version, &mut File::open(uki)?, signed)
    }

    fn install_from(
        &self,
        version: &str,
        source: &mut impl Read,
        signed: &Digest,
    ) -> Result<BootEntry, InstallError> {
        let partial = self.dir.join(format!("husk-{version}{PARTIAL_SUFFIX}"));
        if let Err(e) = write_partial(&partial, source, signed) {
            // Not resumable: the next install writes it whole again.
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        let entry = BootEntry::fresh(version, DEFAULT_TRIES);
        if let Some(old) = self.find(version)? {
            fs::remove_file(self.dir.join(old.file_name()))?;
        }
        fault::point_blocking("rename");
        let path = self.dir.join(entry.file_name());
        fs::rename(&partial, &path)?;
        fault::point_blocking("renamed");
        sync_renamed(&path, &self.dir)?;
        Ok(entry)
    }

    /// Removes every entry but `keep`'s, and partial files. Returns the
    /// names removed.
    pub fn prune(&self, keep: &[&str]) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir)?.filter_map(|e| e.ok()) {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let stale = name.ends_with(PARTIAL_SUFFIX)
                || BootEntry::parse(&name).is_some_and(|e| !keep.contains(&e.version.as_str()));
            if stale {
                fs::remove_file(entry.path())?;
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// Copies `source` to `partial`, hashing the bytes as they are written
/// (not the source again after a check: it may have changed since), and
/// syncs it if they are `signed`'s.
fn write_partial(
    partial: &Path,
    source: &mut impl Read,
    signed: &Digest,
) -> Result<(), InstallError> {
    let mut out = HashingWriter::new(File::create(partial)?);
    // One byte past the signed length shows a longer source without
    // writing it.
    let mut source = source.take(signed.size + 1);
    let mut buffer = vec![0u8; 1 << 20];
    let mut halfway_passed = false;
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if out.written() + n as u64 > signed.size {
            return Err(Mismatch::TooLong {
                signed: signed.size,
            }
            .into());
        }
        out.write_all(&buffer[..n])?;
        if !halfway_passed && out.written() * 2 >= signed.size {
            halfway_passed = true;
            fault::point_blocking("esp-write");
        }
    }
    let (file, written) = out.finish();
    written.check(signed)?;
    file.sync_all()?;
    Ok(())
}

fn not_found(version: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no boot entry for version {version}"),
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes a rename durable on FAT. vfat's rename writes the new directory
/// entry with no start cluster and size 0 and leaves those to the file's
/// inode writeback: syncing only the directory leaves, after a power
/// cut, an empty file under the new name and the UKI's clusters lost
/// (the boot loader then finds no entry at all). Syncing the file writes
/// its entry; then the directory. (The ESP is also mounted `dirsync`.)
fn sync_renamed(file: &Path, dir: &Path) -> io::Result<()> {
    File::open(file)?.sync_all()?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esp() -> (tempfile::TempDir, Esp) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join(ENTRY_DIR)).unwrap();
        let esp = Esp::at(root.path());
        (root, esp)
    }

    fn digest(bytes: &[u8]) -> Digest {
        let mut writer = HashingWriter::new(io::sink());
        writer.write_all(bytes).unwrap();
        writer.finish().1
    }

    /// Every file in the entries directory.
    fn files(esp: &Esp) -> Vec<String> {
        let mut files: Vec<String> = fs::read_dir(esp.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        files
    }

    fn names(esp: &Esp) -> Vec<String> {
        esp.entries()
            .unwrap()
            .iter()
            .map(BootEntry::file_name)
            .collect()
    }

    #[test]
    fn install_bless_retire_prune() {
        let (root, esp) = esp();
        fs::write(esp.dir().join("husk-1.0.efi"), b"v1").unwrap();
        fs::write(esp.dir().join("husk-0.9+0-3.efi"), b"v0").unwrap();
        fs::write(esp.dir().join("husk-1.1.efi.partial"), b"half").unwrap();
        fs::write(esp.dir().join("other.efi"), b"not ours").unwrap();
        let uki = root.path().join("uki");
        fs::write(&uki, vec![7u8; 3 << 20]).unwrap();

        let entry = esp.install("1.1", &uki, &digest(&[7u8; 3 << 20])).unwrap();
        assert_eq!(entry.file_name(), "husk-1.1+3.efi");
        assert_eq!(
            fs::read(esp.dir().join("husk-1.1+3.efi")).unwrap(),
            vec![7u8; 3 << 20]
        );
        assert_eq!(
            names(&esp),
            ["husk-1.1+3.efi", "husk-1.0.efi", "husk-0.9+0-3.efi"]
        );
        assert_eq!(esp.next_boot().unwrap().unwrap().version, "1.1");

        // systemd-boot counts a try; the booted version blesses itself.
        fs::rename(
            esp.dir().join("husk-1.1+3.efi"),
            esp.dir().join("husk-1.1+2-1.efi"),
        )
        .unwrap();
        assert!(esp.bless("1.1").unwrap());
        assert!(!esp.bless("1.1").unwrap());
        assert!(esp.dir().join("husk-1.1.efi").is_file());

        assert_eq!(
            esp.prune(&["1.1", "1.0"]).unwrap().len(),
            1,
            "only 0.9 goes (the partial file was consumed by install)"
        );
        assert!(esp.dir().join("other.efi").is_file(), "not Husk's");

        esp.retire("1.1").unwrap();
        assert_eq!(names(&esp), ["husk-1.1+0.efi", "husk-1.0.efi"]);
        assert_eq!(esp.next_boot().unwrap().unwrap().version, "1.0");
        assert!(esp.bless("2.0").is_err());
    }

    #[test]
    fn partial_files_are_pruned() {
        let (_root, esp) = esp();
        fs::write(esp.dir().join("husk-1.0.efi"), b"v1").unwrap();
        fs::write(esp.dir().join("husk-1.1.efi.partial"), b"half").unwrap();
        assert_eq!(esp.prune(&["1.0"]).unwrap(), ["husk-1.1.efi.partial"]);
        assert_eq!(names(&esp), ["husk-1.0.efi"]);
    }

    /// Yields `good` up to `at`, `bad` after: a download rewritten while
    /// it is being copied.
    struct Changing {
        good: Vec<u8>,
        bad: Vec<u8>,
        at: usize,
        position: usize,
    }

    impl Read for Changing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let from = if self.position < self.at {
                &self.good[self.position..self.at]
            } else {
                &self.bad[self.position..]
            };
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            self.position += n;
            Ok(n)
        }
    }

    #[test]
    fn a_uki_changed_during_the_copy_is_not_installed() {
        let (_root, esp) = esp();
        fs::write(esp.dir().join("husk-1.0.efi"), b"v1").unwrap();
        let good = vec![7u8; 3 << 20];
        let mut bad = good.clone();
        bad[(2 << 20) + 5] = 8;
        let signed = digest(&good);
        let mut source = Changing {
            good,
            bad: bad.clone(),
            at: 2 << 20,
            position: 0,
        };
        let error = esp.install_from("1.1", &mut source, &signed).unwrap_err();
        match &error {
            InstallError::NotSigned(Mismatch::Digest { expected, actual }) => {
                assert_eq!(*expected, signed);
                assert_eq!(*actual, digest(&bad));
            }
            other => panic!("{other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&signed.sha256) && message.contains(&digest(&bad).sha256),
            "{message}"
        );
        assert_eq!(files(&esp), ["husk-1.0.efi"], "no entry, no partial file");
    }

    #[test]
    fn a_uki_changed_after_its_check_is_not_installed() {
        let (root, esp) = esp();
        fs::write(esp.dir().join("husk-1.0.efi"), b"v1").unwrap();
        fs::write(esp.dir().join("husk-1.1+3.efi"), b"an older 1.1").unwrap();
        let uki = root.path().join("uki");
        fs::write(&uki, b"the signed UKI").unwrap();
        let signed = digest(b"the signed UKI");
        // Swapped on the data partition between the download's check and
        // the copy.
        fs::write(&uki, b"a changed UKI!").unwrap();
        let error = esp.install("1.1", &uki, &signed).unwrap_err();
        assert!(matches!(error, InstallError::NotSigned(_)), "{error:?}");
        assert_eq!(
            files(&esp),
            ["husk-1.0.efi", "husk-1.1+3.efi"],
            "the entry of that version is left as it was"
        );
        assert_eq!(
            fs::read(esp.dir().join("husk-1.1+3.efi")).unwrap(),
            b"an older 1.1"
        );

        // Longer and shorter sources: refused the same way.
        fs::write(&uki, b"the signed UKI and more").unwrap();
        let error = esp.install("1.1", &uki, &signed).unwrap_err();
        assert!(
            matches!(
                error,
                InstallError::NotSigned(Mismatch::TooLong { signed: 14 })
            ),
            "{error:?}"
        );
        fs::write(&uki, b"the signed").unwrap();
        let error = esp.install("1.1", &uki, &signed).unwrap_err();
        assert!(
            matches!(&error, InstallError::NotSigned(Mismatch::Digest { actual, .. }) if actual.size == 10),
            "{error:?}"
        );
        assert_eq!(files(&esp), ["husk-1.0.efi", "husk-1.1+3.efi"]);

        fs::write(&uki, b"the signed UKI").unwrap();
        let entry = esp.install("1.1", &uki, &signed).unwrap();
        assert_eq!(files(&esp), ["husk-1.0.efi", entry.file_name().as_str()]);
        assert_eq!(
            fs::read(esp.dir().join(entry.file_name())).unwrap(),
            b"the signed UKI"
        );
    }
}
