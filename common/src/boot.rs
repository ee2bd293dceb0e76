//! What husk-init learnt about this boot, published once in
//! `/run/husk/boot.json` ([`crate::paths::BOOT_FACTS`]) after the data
//! partition is set up and before any service starts, so that no service
//! has to find it again: whether systemd-boot started this entry on trial
//! (and which entry), the boot disk, its EFI system partition, and what
//! became of the data partition.
//!
//! ```json
//! {"trial":{"efi":true,"on_trial":true,"entry":"\\EFI\\Linux\\husk-2.0+2-1.efi"},
//!  "disk":"/dev/vda","esp":"/dev/vda1",
//!  "data":{"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":false,"size_bytes":1073741824}}
//! ```
//!
//! (one line in the file). Every key is always present; `null` says "none"
//! or "not known". `data` is also written on its own to
//! `/run/husk/data.json` ([`crate::paths::DATA_STATUS`]), the file
//! `GET /v1/system` serves. Readers ignore keys they do not know, so keys
//! can be added.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The facts, as init writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFacts {
    pub trial: Trial,
    /// The disk holding the data partition (`/dev/vda`): the boot disk.
    /// `None` without a data partition.
    pub disk: Option<String>,
    /// The EFI system partition (GPT name `esp`) on [`Self::disk`]
    /// (`/dev/vda1`). `None` without a disk or without such a partition
    /// on it (an ESP on another disk is not ours).
    pub esp: Option<String>,
    /// What became of the data partition: what data.json holds.
    pub data: DataPartition,
}

/// Whether this boot is on trial, as systemd-boot says in the EFI
/// variable `LoaderBootCountPath`: it sets it when it starts an entry that
/// still has a boot counter (systemd's Automatic Boot Assessment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The boot loader's EFI variables could be read (a UEFI boot, with
    /// efivarfs mounted). When `false`, nobody can tell, and `on_trial`
    /// is `false`.
    pub efi: bool,
    /// systemd-boot started an entry with a boot counter: this boot must
    /// prove itself or the boot loader falls back.
    pub on_trial: bool,
    /// `LoaderBootCountPath` as systemd-boot set it, the entry's path on
    /// the ESP: `\EFI\Linux\husk-2.0+2-1.efi`. `None` when not on trial.
    pub entry: Option<String>,
}

impl Trial {
    /// `entry`: the `LoaderBootCountPath` read, if any (only on an EFI
    /// boot).
    pub fn new(efi: bool, entry: Option<String>) -> Self {
        let entry = entry.filter(|_| efi);
        Self {
            efi,
            on_trial: entry.is_some(),
            entry,
        }
    }

    /// Not on trial, and no way to know otherwise (no EFI variables).
    pub fn unknown() -> Self {
        Self::new(false, None)
    }

    /// The entry's file name (`husk-2.0+2-1.efi`), as the ESP's
    /// `EFI/Linux/` lists it.
    pub fn entry_name(&self) -> Option<&str> {
        let entry = self.entry.as_deref()?;
        entry.rsplit(['\\', '/']).next().filter(|n| !n.is_empty())
    }
}

/// What became of the data partition (`/run/husk/data.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPartition {
    pub state: DataState,
    /// The partition's device (`/dev/vda2`); `None` when absent.
    pub device: Option<String>,
    /// Why it failed (`e2fsck: exit status 4: errors left uncorrected;
    /// not mounted`); `None` unless failed.
    pub error: Option<String>,
    /// The check's verdict; `None` when no check ran.
    pub fsck: Option<Fsck>,
    /// The partition or its filesystem was grown this boot.
    pub grown: bool,
    /// The mounted filesystem's size; 0 when not mounted.
    pub size_bytes: u64,
}

impl DataPartition {
    /// No data partition: /var/lib/husk is a tmpfs.
    pub fn absent() -> Self {
        Self {
            state: DataState::Absent,
            device: None,
            error: None,
            fsck: None,
            grown: false,
            size_bytes: 0,
        }
    }

    /// One line of JSON and a newline: data.json's content.
    pub fn to_json(&self) -> serde_json::Result<String> {
        json_line(self)
    }

    /// Writes data.json's content to `path` atomically (the directory
    /// must exist).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        write_json(path, self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataState {
    /// The partition is mounted on /var/lib/husk.
    Mounted,
    /// No data partition: /var/lib/husk is a tmpfs.
    Absent,
    /// It exists but could not be checked or mounted: /var/lib/husk is
    /// a tmpfs and the partition is left as it was.
    Failed,
}

/// What `e2fsck -p` concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsck {
    Clean,
    /// Errors were found and corrected.
    Corrected,
    /// Errors left, or e2fsck could not do its job: not mounted.
    Failed,
    /// No e2fsck in the image.
    Skipped,
}

/// The file is a few hundred bytes; anything near this is not it.
pub const MAX_BYTES: u64 = 64 * 1024;

/// Mode of the files: nothing in them is secret.
const MODE: u32 = 0o644;

/// Why [`BootFacts::read`] has no facts. Each names the file.
#[derive(Debug, Error)]
pub enum ReadError {
    /// No such file: a process not started by husk-init (tests, by
    /// hand), or an init older than boot.json.
    #[error("{}: missing (husk-init writes it at boot)", .path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: larger than {} bytes: not boot facts", .path.display(), MAX_BYTES)]
    TooLarge { path: PathBuf },
    /// Not JSON, or not the shape above (serde_json says where).
    #[error("{}: malformed boot facts: {error}", .path.display())]
    Malformed {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// Well-formed, but contradicting itself.
    #[error("{}: inconsistent boot facts: {problem}", .path.display())]
    Inconsistent {
        path: PathBuf,
        problem: &'static str,
    },
}

impl ReadError {
    /// The file read.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Missing { path }
            | ReadError::Io { path, .. }
            | ReadError::TooLarge { path }
            | ReadError::Malformed { path, .. }
            | ReadError::Inconsistent { path, .. } => path,
        }
    }

    /// The file does not exist (as opposed to being broken).
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Missing { .. })
    }
}

impl BootFacts {
    /// Reads and checks the facts in `path` (normally
    /// [`crate::paths::BOOT_FACTS`]).
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let owned = || path.to_owned();
        let file = File::open(path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => ReadError::Missing { path: owned() },
            _ => ReadError::Io {
                path: owned(),
                error,
            },
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| ReadError::Io {
                path: owned(),
                error,
            })?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(ReadError::TooLarge { path: owned() });
        }
        let facts: Self = serde_json::from_slice(&bytes).map_err(|error| ReadError::Malformed {
            path: owned(),
            error,
        })?;
        facts.check().map_err(|problem| ReadError::Inconsistent {
            path: owned(),
            problem,
        })?;
        Ok(facts)
    }

    /// What no writer produces.
    fn check(&self) -> Result<(), &'static str> {
        if self.trial.on_trial != self.trial.entry.is_some() {
            return Err("trial.on_trial and trial.entry disagree");
        }
        if self.trial.on_trial && !self.trial.efi {
            return Err("a trial boot without EFI variables");
        }
        if self.esp.is_some() && self.disk.is_none() {
            return Err("an esp without a disk");
        }
        Ok(())
    }

    /// One line of JSON and a newline: boot.json's content.
    pub fn to_json(&self) -> serde_json::Result<String> {
        json_line(self)
    }

    /// Writes boot.json's content to `path` atomically (the directory
    /// must exist).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        write_json(path, self)
    }
}

/// `value` as one line of JSON and a newline. (These types have no maps
/// and no hand-written `Serialize`: serde_json cannot fail on them.)
fn json_line<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    Ok(line)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let line = json_line(value).map_err(io::Error::other)?;
    crate::atomic::write_atomic(path, line.as_bytes(), MODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted() -> DataPartition {
        DataPartition {
            state: DataState::Mounted,
            device: Some("/dev/vda2".into()),
            error: None,
            fsck: Some(Fsck::Clean),
            grown: true,
            size_bytes: 1 << 30,
        }
    }

    fn trial_facts() -> BootFacts {
        BootFacts {
            trial: Trial::new(true, Some("\\EFI\\Linux\\husk-2.0+2-1.efi".into())),
            disk: Some("/dev/vda".into()),
            esp: Some("/dev/vda1".into()),
            data: mounted(),
        }
    }

    /// data.json keeps the shape docs/ARCHITECTURE.md gives (the agent
    /// and `GET /v1/system` read it).
    #[test]
    fn data_json_keeps_its_shape() {
        assert_eq!(
            DataPartition::absent().to_json().unwrap(),
            "{\"state\":\"absent\",\"device\":null,\"error\":null,\"fsck\":null,\"grown\":false,\"size_bytes\":0}\n"
        );
        assert_eq!(
            mounted().to_json().unwrap(),
            "{\"state\":\"mounted\",\"device\":\"/dev/vda2\",\"error\":null,\"fsck\":\"clean\",\"grown\":true,\"size_bytes\":1073741824}\n"
        );
        let failed = DataPartition {
            state: DataState::Failed,
            device: Some("/dev/vda2".into()),
            error: Some("e2fsck: \"bad\" \\ inode\n\u{1}é".into()),
            fsck: Some(Fsck::Failed),
            grown: false,
            size_bytes: 0,
        };
        let json = failed.to_json().unwrap();
        assert!(
            json.contains(r#""error":"e2fsck: \"bad\" \\ inode\n\u0001é""#),
            "{json}"
        );
        for (fsck, name) in [(Fsck::Corrected, "corrected"), (Fsck::Skipped, "skipped")] {
            let json = DataPartition {
                fsck: Some(fsck),
                ..mounted()
            }
            .to_json()
            .unwrap();
            assert!(json.contains(&format!("\"fsck\":\"{name}\"")), "{json}");
        }
    }

    #[test]
    fn boot_json_shape() {
        assert_eq!(
            trial_facts().to_json().unwrap(),
            concat!(
                r#"{"trial":{"efi":true,"on_trial":true,"entry":"\\EFI\\Linux\\husk-2.0+2-1.efi"},"#,
                r#""disk":"/dev/vda","esp":"/dev/vda1","#,
                r#""data":{"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":true,"size_bytes":1073741824}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let direct = BootFacts {
            trial: Trial::unknown(),
            disk: None,
            esp: None,
            data: DataPartition::absent(),
        };
        let blessed = BootFacts {
            trial: Trial::new(true, None),
            esp: None,
            ..trial_facts()
        };
        for facts in [trial_facts(), direct, blessed] {
            facts.write(&path).unwrap();
            assert_eq!(BootFacts::read(&path).unwrap(), facts);
        }
        // Only the file: write_atomic left no temporary.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_trial_entry() {
        let trial = trial_facts().trial;
        assert!(trial.on_trial);
        assert_eq!(trial.entry_name(), Some("husk-2.0+2-1.efi"));
        assert_eq!(
            Trial::new(true, Some("/EFI/Linux/husk-1+3.efi".into())).entry_name(),
            Some("husk-1+3.efi")
        );
        assert_eq!(Trial::new(true, Some("\\".into())).entry_name(), None);
        let blessed = Trial::new(true, None);
        assert!(blessed.efi && !blessed.on_trial && blessed.entry_name().is_none());
        // Without EFI there is no variable to believe.
        assert_eq!(Trial::new(false, Some("x".into())), Trial::unknown());
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let e = BootFacts::read(&path).unwrap_err();
        assert!(e.is_missing());
        assert_eq!(e.path(), path);
        assert_eq!(
            e.to_string(),
            format!("{}: missing (husk-init writes it at boot)", path.display())
        );
        // A directory is there but is not readable as a file.
        let e = BootFacts::read(dir.path()).unwrap_err();
        assert!(matches!(e, ReadError::Io { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot read: ", dir.path().display()))
        );
    }

    #[test]
    fn malformed_files_name_the_path_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let read = |text: &[u8]| {
            std::fs::write(&path, text).unwrap();
            let e = BootFacts::read(&path).unwrap_err();
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "{e}"
            );
            e
        };
        let e = read(b"");
        assert!(matches!(e, ReadError::Malformed { .. }), "{e}");
        let e = read(b"{not json");
        assert!(
            e.to_string()
                .contains("malformed boot facts: key must be a string at line 1"),
            "{e}"
        );
        // A data.json is not boot facts.
        let e = read(mounted().to_json().unwrap().as_bytes());
        assert!(e.to_string().contains("missing field `trial`"), "{e}");
        let wrong_state = trial_facts()
            .to_json()
            .unwrap()
            .replace("\"mounted\"", "\"sideways\"");
        let e = read(wrong_state.as_bytes());
        assert!(e.to_string().contains("unknown variant `sideways`"), "{e}");
        let e = read("x".repeat(MAX_BYTES as usize + 1).as_bytes());
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        // Not UTF-8.
        let e = read(b"{\"trial\":\"\xff\"}");
        assert!(matches!(e, ReadError::Malformed { .. }), "{e}");

        let mut contradiction = trial_facts();
        contradiction.trial.entry = None;
        let e = read(contradiction.to_json().unwrap().as_bytes());
        assert_eq!(
            e.to_string(),
            format!(
                "{}: inconsistent boot facts: trial.on_trial and trial.entry disagree",
                path.display()
            )
        );
        let mut contradiction = trial_facts();
        contradiction.trial.efi = false;
        assert!(matches!(
            read(contradiction.to_json().unwrap().as_bytes()),
            ReadError::Inconsistent { .. }
        ));
        let mut contradiction = trial_facts();
        contradiction.disk = None;
        assert!(matches!(
            read(contradiction.to_json().unwrap().as_bytes()),
            ReadError::Inconsistent { .. }
        ));
    }

    /// Keys added later do not break older readers.
    #[test]
    fn unknown_keys_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let text = trial_facts()
            .to_json()
            .unwrap()
            .replacen('{', "{\"later\":[1,2],", 1);
        std::fs::write(&path, text).unwrap();
        assert_eq!(BootFacts::read(&path).unwrap(), trial_facts());
    }
}
