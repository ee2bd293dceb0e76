//! Caps on containers' writable layers, with ext4 project quotas (the
//! data partition is made with them and mounted `prjquota`), so that no
//! container — nor all of them together — can fill the partition that
//! also holds the images, the logs and the update being installed.
//!
//! - A container that asks for a size (`--storage-opt size=`, or
//!   agent.toml's `default_storage`) has a project of its own (numbered by
//!   its writable layer's inode, unique on the filesystem), limited to that
//!   size; it is refused when the partition's free space, less the
//!   reserve and what the other sized containers may still write, cannot
//!   hold it.
//! - Every other container's writable layer is in one shared project,
//!   whose limit is what the partition has left: its free space now, plus
//!   what the shared project already holds, less what the sized
//!   containers may still write, less `storage_reserve` (default: 10% of
//!   the partition, at most 1 GiB: an update's download and a few
//!   layers).
//!   It is recomputed whenever a container is created, started or
//!   removed.
//!
//! Both the writable layer and overlayfs' work directory are in the
//! project (copy-ups go through the work directory), and everything made
//! in them inherits it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::error::ManagerError;
use super::sys;

/// The project of the containers without a size of their own.
pub const SHARED_PROJECT: u32 = 1;
/// The most the default reserve is.
const MAX_DEFAULT_RESERVE: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct Storage {
    /// The containers' directory, on the data partition; None when its
    /// filesystem has no project quotas.
    dir: Option<PathBuf>,
    reserve: u64,
}

fn fs_error(what: &str, e: std::io::Error) -> ManagerError {
    ManagerError::io(what.to_string(), e)
}

impl Storage {
    /// Quotas where `dir`'s filesystem enforces project quotas; `reserve`
    /// None: 10% of the filesystem, at most 1 GiB.
    pub fn probe(dir: &Path, reserve: Option<u64>) -> Self {
        let fs = File::open(dir);
        let enabled = fs
            .as_ref()
            .is_ok_and(|f| sys::project_quota(f.as_fd(), SHARED_PROJECT).is_ok());
        let size = fs
            .ok()
            .and_then(|f| rustix::fs::fstatvfs(&f).ok())
            .map_or(0, |st| st.f_blocks * st.f_frsize);
        let reserve = reserve.unwrap_or((size / 10).min(MAX_DEFAULT_RESERVE));
        if enabled {
            log::info!(
                "writable layers: capped by project quotas on {}",
                dir.display()
            );
        } else {
            log::info!(
                "writable layers: no project quotas on {} (--storage-opt size is refused)",
                dir.display()
            );
        }
        Self {
            dir: enabled.then(|| dir.to_path_buf()),
            reserve,
        }
    }

    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn fs(&self) -> Result<Option<File>, ManagerError> {
        match &self.dir {
            Some(dir) => File::open(dir)
                .map(Some)
                .map_err(|e| ManagerError::at(dir, e)),
            None => Ok(None),
        }
    }

    /// Puts a new container's `upper` and `work` in their project: its
    /// own limited to `size`, or the shared one. `sized`: (project, size)
    /// of every other sized container.
    pub fn assign(
        &self,
        upper: &Path,
        work: &Path,
        size: Option<u64>,
        sized: &[(u32, u64)],
    ) -> Result<(), ManagerError> {
        let Some(fs) = self.fs()? else {
            return match size {
                Some(_) => Err(ManagerError::Invalid(
                    "--storage-opt size needs project quotas on the data partition \
                     (ext4 with the quota and project features, mounted prjquota)"
                        .into(),
                )),
                None => Ok(()),
            };
        };
        let upper_dir = File::open(upper).map_err(|e| ManagerError::at(upper, e))?;
        let projid = match size {
            Some(size) => {
                let room = free(&fs)?
                    .saturating_sub(self.reserve)
                    .saturating_sub(owed(&fs, sized));
                if size > room {
                    return Err(ManagerError::Invalid(format!(
                        "no room for a writable layer of {size} bytes: the data partition \
                         has {room} bytes beyond its reserve \
                         (limits.containers.storage_reserve) and what other containers' \
                         sizes promise"
                    )));
                }
                let ino = std::os::unix::fs::MetadataExt::ino(
                    &upper_dir
                        .metadata()
                        .map_err(|e| ManagerError::at(upper, e))?,
                );
                let projid = u32::try_from(ino)
                    .ok()
                    .filter(|p| *p > SHARED_PROJECT)
                    .ok_or_else(|| {
                        ManagerError::Invalid(format!("inode {ino} cannot name a project"))
                    })?;
                sys::set_project_limit(fs.as_fd(), projid, size)
                    .map_err(|e| fs_error("setting the writable layer's quota", e))?;
                projid
            }
            None => SHARED_PROJECT,
        };
        for dir in [upper, work] {
            let f = File::open(dir).map_err(|e| ManagerError::at(dir, e))?;
            sys::set_project(f.as_fd(), projid).map_err(|e| ManagerError::at(dir, e))?;
        }
        Ok(())
    }

    /// Sets the shared project's limit from the partition's state now;
    /// `sized`: (project, size) of every sized container.
    pub fn rebalance(&self, sized: &[(u32, u64)]) -> Result<(), ManagerError> {
        let Some(fs) = self.fs()? else {
            return Ok(());
        };
        let shared = sys::project_quota(fs.as_fd(), SHARED_PROJECT)
            .map_err(|e| fs_error("reading the shared quota", e))?
            .curspace;
        let limit = shared_limit(free(&fs)?, shared, owed(&fs, sized), self.reserve);
        log::debug!("writable layers: the shared quota is {limit} bytes");
        sys::set_project_limit(fs.as_fd(), SHARED_PROJECT, limit)
            .map_err(|e| fs_error("setting the shared quota", e))
    }

    /// A sized container's project: its writable layer's inode.
    pub fn project_of(upper: &Path) -> Option<u32> {
        let meta = std::fs::metadata(upper).ok()?;
        u32::try_from(std::os::unix::fs::MetadataExt::ino(&meta)).ok()
    }
}

/// The shared project's limit: what it holds and what is free, less what
/// the sized containers may still write and the reserve. Never below what
/// it holds (then it cannot grow), nor 0 (which means no limit).
fn shared_limit(free: u64, shared: u64, owed: u64, reserve: u64) -> u64 {
    (free + shared)
        .saturating_sub(owed)
        .saturating_sub(reserve)
        .max(shared)
        .max(4096)
}

/// Free space, root's reserved blocks included (containers write as root
/// through overlayfs).
fn free(fs: &File) -> Result<u64, ManagerError> {
    let st = rustix::fs::fstatvfs(fs).map_err(|e| fs_error("statvfs", e.into()))?;
    Ok(st.f_bfree * st.f_frsize)
}

/// What the sized containers may still write.
fn owed(fs: &File, sized: &[(u32, u64)]) -> u64 {
    sized
        .iter()
        .map(|(projid, size)| {
            let used = sys::project_quota(fs.as_fd(), *projid)
                .map(|q| q.curspace)
                .unwrap_or(0);
            size.saturating_sub(used)
        })
        .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_shared_limit_keeps_the_reserve_and_the_promises() {
        // 900 MiB free, 100 held by the shared layers, 200 promised to
        // sized ones, 100 reserved: the shared ones may hold 700.
        assert_eq!(
            shared_limit(900 * MIB, 100 * MIB, 200 * MIB, 100 * MIB),
            700 * MIB
        );
        // Nothing left: frozen at what they hold, never "no limit".
        assert_eq!(
            shared_limit(10 * MIB, 50 * MIB, 200 * MIB, 100 * MIB),
            50 * MIB
        );
        assert_eq!(shared_limit(0, 0, 0, 100 * MIB), 4096);
    }
}
