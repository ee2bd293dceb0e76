//! Named volumes: directories of the data partition that outlive the
//! containers mounting them (`<root>/volumes/<name>/`, its files in
//! `_data/`, its record in `volume.json`). This module owns the
//! directories and records only; which containers use a volume, and so
//! whether it may go, is the container manager's to say.
//!
//! A record that cannot be read is reported with the path at fault and
//! never overwritten or removed: the files beside it are someone's data.

mod record;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use husk_api::containers::check_volume_name;
use husk_api::volumes::{Volume, VolumeCreate};

use self::record::VolumeRecord;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "volume {name}: its record {path} cannot be read ({reason}); its files are left as they are"
    )]
    Damaged {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        context: path.display().to_string(),
        source,
    }
}

/// The volumes directory. Clones share one lock, which every change
/// (and the container manager's check-then-use) holds.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

/// Held while a caller checks and changes volumes together (a container's
/// create, a volume's removal), so neither sees the other half done.
pub struct VolumesLock<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

impl Volumes {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: Arc::default(),
        }
    }

    pub fn lock(&self) -> VolumesLock<'_> {
        VolumesLock(self.lock.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where a volume's files are: what containers mount.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// Makes the volume, or gives back the one of that name (Docker's
    /// `volume create` of an existing name is not an error). An empty
    /// name gets 64 random hex digits.
    pub fn create(
        &self,
        _lock: &VolumesLock,
        request: &VolumeCreate,
        anonymous: bool,
        now_ms: u64,
    ) -> Result<Volume, VolumeError> {
        let name = if request.name.is_empty() {
            random_name()?
        } else {
            request.name.clone()
        };
        check_volume_name(&name).map_err(VolumeError::Invalid)?;
        if request.labels.keys().any(String::is_empty) {
            return Err(VolumeError::Invalid("a label's key is empty".into()));
        }
        let dir = self.volume_dir(&name);
        if dir.exists() {
            return self.inspect(&name, Vec::new());
        }
        // Search only for others: a container in a user namespace (an
        // unprivileged host uid) must reach `_data`, and nobody may list
        // the volumes.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .map_err(at(&self.dir))?;
        fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(at(&dir))?;
        let data = self.data_dir(&name);
        let made = (|| {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&data)
                .map_err(at(&data))?;
            // The umask does not narrow what a volume's root is.
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).map_err(at(&data))?;
            VolumeRecord {
                name: name.clone(),
                created_ms: now_ms,
                labels: request.labels.clone(),
                anonymous,
            }
            .save(&dir.join(record::FILE))
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        log::info!("created volume {name}");
        self.inspect(&name, Vec::new())
    }

    /// One volume, with `used_by` as the caller found it.
    pub fn inspect(&self, name: &str, used_by: Vec<String>) -> Result<Volume, VolumeError> {
        check_volume_name(name).map_err(|_| VolumeError::NotFound(name.into()))?;
        let dir = self.volume_dir(name);
        if !dir.is_dir() {
            return Err(VolumeError::NotFound(name.into()));
        }
        let record = VolumeRecord::load(name, &dir.join(record::FILE))?;
        Ok(record.to_api(&self.data_dir(name), used_by))
    }

    /// Every volume's name, with those whose record is damaged apart.
    pub fn names(&self) -> Result<Vec<String>, VolumeError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(at(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(at(&self.dir))?;
            if let Some(name) = entry.file_name().to_str()
                && check_volume_name(name).is_ok()
                && entry.path().is_dir()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every volume; `used_by` gives each its users.
    pub fn list(
        &self,
        used_by: &BTreeMap<String, Vec<String>>,
    ) -> Result<(Vec<Volume>, Vec<String>), VolumeError> {
        let mut volumes = Vec::new();
        let mut damaged = Vec::new();
        for name in self.names()? {
            let users = used_by.get(&name).cloned().unwrap_or_default();
            match self.inspect(&name, users) {
                Ok(volume) => volumes.push(volume),
                Err(e) => damaged.push(e.to_string()),
            }
        }
        Ok((volumes, damaged))
    }

    /// Removes the volume and its files; the caller has checked that no
    /// container uses it, under `_lock`. A damaged record is refused:
    /// what the files are is then unknown.
    pub fn remove(&self, _lock: &VolumesLock, name: &str) -> Result<(), VolumeError> {
        self.inspect(name, Vec::new())?;
        let dir = self.volume_dir(name);
        fs::remove_dir_all(&dir).map_err(at(&dir))?;
        log::info!("removed volume {name}");
        Ok(())
    }

    /// Whether the volume is as made: empty, its root root's. The first
    /// container to mount such a volume fills it from its image, or, in a
    /// user namespace, is given its root ([`Volumes::adopt`]).
    pub fn is_untouched(&self, name: &str) -> bool {
        let data = self.data_dir(name);
        fs::symlink_metadata(&data).is_ok_and(|m| m.uid() == 0 && m.gid() == 0)
            && fs::read_dir(&data).is_ok_and(|mut d| d.next().is_none())
    }

    /// A new volume's root goes to the first container that mounts it in
    /// a user namespace, as its root (`uid`, `gid`), so that root can
    /// write to it; a volume already holding files, or already given,
    /// keeps its owner.
    pub fn adopt(&self, _lock: &VolumesLock, name: &str, uid: u32, gid: u32) -> io::Result<()> {
        let data = self.data_dir(name);
        if self.is_untouched(name) && (uid, gid) != (0, 0) {
            std::os::unix::fs::lchown(&data, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

fn random_name() -> Result<String, VolumeError> {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        filled +=
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| VolumeError::Io {
                    context: "getrandom".into(),
                    source: e.into(),
                })?;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
