//! Husk's boot entries on the ESP: `EFI/Linux/husk-<version>[+LEFT[-DONE]].efi`,
//! a Type #2 entry of the Boot Loader Specification with systemd's boot
//! counter. systemd-boot turns `+3` into `+2-1` before each try; an entry
//! at `+0-N` has no tries left and is booted only when nothing else is
//! left; an entry without a counter is blessed (known good).

use std::fmt;

/// The directory of the entries, relative to the ESP's root.
pub const ENTRY_DIR: &str = "EFI/Linux";

/// The tries a fresh entry gets, as systemd's `kernel-install` gives.
pub const DEFAULT_TRIES: u32 = 3;

/// A boot counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tries {
    pub left: u32,
    pub done: u32,
}

/// One boot entry, parsed from its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub version: String,
    /// `None`: blessed.
    pub tries: Option<Tries>,
}

impl BootEntry {
    /// A fresh entry with `tries` tries.
    pub fn fresh(version: &str, tries: u32) -> Self {
        Self {
            version: version.to_owned(),
            tries: Some(Tries {
                left: tries,
                done: 0,
            }),
        }
    }

    /// A blessed entry.
    pub fn blessed(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            tries: None,
        }
    }

    /// Parses `husk-<version>[+LEFT[-DONE]].efi`; `None` for any other
    /// name (other entries on the ESP are not Husk's to touch).
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_prefix("husk-")?.strip_suffix(".efi")?;
        let (version, tries) = match stem.rsplit_once('+') {
            None => (stem, None),
            Some((version, counter)) => {
                let (left, done) = match counter.split_once('-') {
                    Some((left, done)) => (left, done),
                    None => (counter, "0"),
                };
                let number = |s: &str| {
                    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| s.parse::<u32>().ok())
                        .flatten()
                };
                let tries = Tries {
                    left: number(left)?,
                    done: number(done)?,
                };
                (version, Some(tries))
            }
        };
        crate::check_version(version).ok()?;
        Some(Self {
            version: version.to_owned(),
            tries,
        })
    }

    /// The file name, as [`BootEntry::parse`] reads it.
    pub fn file_name(&self) -> String {
        self.to_string()
    }

    /// On trial: it has a counter, with tries left.
    pub fn on_trial(&self) -> bool {
        self.tries.is_some_and(|t| t.left > 0)
    }

    /// Its tries ran out: systemd-boot boots it only as a last resort.
    pub fn exhausted(&self) -> bool {
        self.tries.is_some_and(|t| t.left == 0)
    }
}

impl fmt::Display for BootEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "husk-{}", self.version)?;
        match self.tries {
            None => {}
            Some(Tries { left, done: 0 }) => write!(f, "+{left}")?,
            Some(Tries { left, done }) => write!(f, "+{left}-{done}")?,
        }
        write!(f, ".efi")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "husk-1.2.3.efi",
            "husk-1.2.3+3.efi",
            "husk-1.2.3+2-1.efi",
            "husk-1.0-rc1+0-3.efi",
        ] {
            let entry = BootEntry::parse(name).unwrap();
            assert_eq!(entry.file_name(), name);
        }
        let entry = BootEntry::parse("husk-2.0+1-2.efi").unwrap();
        assert_eq!(entry.version, "2.0");
        assert_eq!(entry.tries, Some(Tries { left: 1, done: 2 }));
        assert!(entry.on_trial());
        assert!(BootEntry::parse("husk-2.0+0-3.efi").unwrap().exhausted());
        assert!(!BootEntry::parse("husk-2.0.efi").unwrap().on_trial());
        assert_eq!(BootEntry::fresh("2.0", 3).file_name(), "husk-2.0+3.efi");
    }

    #[test]
    fn other_files_are_not_entries() {
        for name in [
            "linux.efi",
            "husk-.efi",
            "husk-1.0+.efi",
            "husk-1.0+x.efi",
            "husk-1.0+1-.efi",
            "husk-1.0.efi.tmp",
            "husk-1 0.efi",
        ] {
            assert_eq!(BootEntry::parse(name), None, "{name}");
        }
    }
}
