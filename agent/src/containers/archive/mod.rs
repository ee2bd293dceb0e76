//! Files into and out of a running container (`docker cp`): a path's
//! metadata, a tar of a path, and a tar extracted into a directory.
//!
//! The container's root is its init's `/proc/PID/root`, so what is seen
//! is what the container sees (its overlay, volumes, tmpfs mounts), and
//! every path is resolved by the kernel inside that root ([`resolve`]).
//! The agent is the host's root there, and the container's own mounts
//! include kernel interfaces (its /proc, /sys, cgroupfs) where the host's
//! root could read what the container may not, or write the host's
//! kernel settings: nothing on such a filesystem is read or written
//! ([`husk_store::unpack::is_data_filesystem`]). Ids are shown and
//! written as the container's user namespace sees them. A container that
//! is not running is reached through its layers ([`stopped`]).

mod pack;
mod resolve;
mod stopped;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use husk_api::containers::{Status, UserNamespace};
use husk_store::unpack::{IdShift, Owner, UnpackError, UnpackOptions};

use super::error::{ManagerError, Result};
use super::manager::Manager;

pub use self::resolve::PathStat;

/// Where the container's files are, as the agent reaches them.
pub struct ContainerRoot {
    name: String,
    root: OwnedFd,
    userns: Option<UserNamespace>,
    /// A stopped container's lock, held while its files are reached.
    _held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Manager {
    /// The root of the running container `name`.
    fn container_root(&self, name: &str) -> Result<ContainerRoot> {
        let slot = self.slot(name)?;
        let snapshot = slot.snapshot();
        let (Status::Running, Some(pid)) = (snapshot.status, snapshot.init_pid) else {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running: Husk copies files into and out of running containers only"
            )));
        };
        let root = resolve::open_root(pid, &format!("/husk/{name}")).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ManagerError::Conflict(format!("container {name} is not running: {e}"))
            } else {
                ManagerError::io(format!("opening container {name}'s root"), e)
            }
        })?;
        Ok(ContainerRoot {
            name: name.to_owned(),
            root,
            userns: snapshot.record.options.userns,
            _held: None,
        })
    }

    /// The root to copy `path` into (`write`) or out of: the running
    /// container's, or a stopped one's layers ([`stopped`]).
    pub async fn root_for_copy(
        &self,
        name: &str,
        path: &str,
        write: bool,
    ) -> Result<ContainerRoot> {
        match self.container_root(name) {
            Err(ManagerError::Conflict(_)) => self.stopped_root(name, path, write).await,
            found => found,
        }
    }
}

impl ContainerRoot {
    /// Names the container in a path-not-found error.
    fn named<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| match e {
            ManagerError::NoSuchPath { path, .. } => ManagerError::NoSuchPath {
                container: self.name.clone(),
                path,
            },
            e => e,
        })
    }

    /// What `path` is (a symlink itself, not its target).
    pub fn stat(&self, path: &str) -> Result<PathStat> {
        let found = self.named(resolve::find(&self.root, path))?;
        Ok(found.stat)
    }

    /// What `path` is, once it is known to be copyable out: not on a
    /// kernel interface.
    pub fn readable(&self, path: &str) -> Result<PathStat> {
        let found = self.named(resolve::find(&self.root, path))?;
        if !found.on_data_filesystem {
            return Err(ManagerError::Invalid(format!(
                "{path} is on a kernel interface (such as /proc or /sys), which is not copied"
            )));
        }
        Ok(found.stat)
    }

    /// Writes a tar of `path` (named by its last component, a directory
    /// with everything under it) to `out`.
    pub fn pack(&self, path: &str, out: impl Write) -> Result<()> {
        let found = self.named(resolve::find(&self.root, path))?;
        pack::pack(&found, self.userns.as_ref(), out)
            .map_err(|e| ManagerError::io(format!("archiving {path}"), e))
    }

    /// Extracts the tar `archive` into the directory `path`. The entries
    /// are owned by the container's root unless `keep_ids` (`docker cp
    /// -a`).
    pub fn unpack(&self, path: &str, archive: impl Read, keep_ids: bool) -> Result<()> {
        let dir = self.named(resolve::directory(&self.root, path))?;
        let options = UnpackOptions {
            live_tree: true,
            owner: if keep_ids {
                Owner::AsArchived
            } else {
                Owner::Fixed { uid: 0, gid: 0 }
            },
            id_shift: self.userns.as_ref().map(|ns| IdShift {
                uid: ns.host_uid,
                gid: ns.host_gid,
                size: ns.size,
            }),
            ..UnpackOptions::default()
        };
        husk_store::unpack::unpack_into(archive, dir, options)
            .map(drop)
            .map_err(|e| match e.error {
                // Reading the archive itself is the client's error.
                UnpackError::Io { op, .. }
                    if !matches!(op, "read header" | "read tar" | "read entry" | "decompress") =>
                {
                    ManagerError::io(
                        format!("extracting into {path}"),
                        std::io::Error::other(e.to_string()),
                    )
                }
                _ => ManagerError::Invalid(format!("extracting into {path}: {e}")),
            })
    }
}
