//! The root of a container that is not running (`docker create` then
//! `docker cp`, or an exited build's outputs): its image's layers under
//! its writable layer, overlaid as its shim overlays them, on a detached
//! mount (`fsopen`/`fsmount`): in no mount table, reachable only through
//! the descriptor, gone when that closes. Read-only for copying out (the
//! writable layer is then one more lower layer, and its work directory
//! is never touched); a copy in writes the writable layer as the running
//! container would. The container's lock is held meanwhile, so it cannot
//! start on the same writable layer.
//!
//! What lives outside the rootfs is not there: a path on one of the
//! container's volumes, binds or tmpfs mounts is refused rather than
//! answered from the empty directory under it (dockerd mounts them; Husk
//! copies them only while the container runs). A container in a user
//! namespace needs its layers idmapped, which only its shim's mount
//! namespace does: refused too.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

use super::super::error::{ManagerError, Result};
use super::super::manager::Manager;
use super::ContainerRoot;

impl Manager {
    /// The root of the stopped container `name` (see the module), held
    /// until the [`ContainerRoot`] is dropped; `path` is what will be
    /// copied, `write` whether into it.
    pub(super) async fn stopped_root(
        &self,
        name: &str,
        path: &str,
        write: bool,
    ) -> Result<ContainerRoot> {
        let slot = self.slot(name)?;
        let held = std::sync::Arc::clone(&slot.op).lock_owned().await;
        let snapshot = slot.snapshot();
        if snapshot.removed {
            return Err(ManagerError::NotFound(name.to_owned()));
        }
        if snapshot.init_pid.is_some() {
            return Err(ManagerError::Conflict(format!(
                "container {name} started meanwhile: copy again"
            )));
        }
        let options = &snapshot.record.options;
        if options.userns.is_some() {
            return Err(ManagerError::Conflict(format!(
                "container {name} is stopped and runs in a user namespace: Husk copies its files \
                 while it runs only (start it first)"
            )));
        }
        if write && options.read_only {
            // (as dockerd: its root filesystem is not to be written)
            return Err(ManagerError::Conflict(format!(
                "container {name}'s root filesystem is read-only"
            )));
        }
        if let Some(mount) = options.mounts.iter().find(|m| is_under(path, &m.target)) {
            return Err(ManagerError::Conflict(format!(
                "{path} is on container {name}'s mount {} (a volume, bind or tmpfs), which Husk \
                 copies while the container runs only",
                mount.target
            )));
        }
        let layers_dir = self.config().layout.layers();
        let lower: Vec<PathBuf> = self
            .lower_layers(&slot)
            .await?
            .into_iter()
            .map(|l| layers_dir.join(l))
            .collect();
        let (upper, work) = (slot.paths.upper(), slot.paths.work());
        let root = tokio::task::spawn_blocking(move || overlay(&lower, &upper, &work, write))
            .await
            .map_err(|e| ManagerError::io("mounting for a copy", std::io::Error::other(e)))?
            .map_err(|e| ManagerError::io(format!("mounting container {name}'s files"), e))?;
        Ok(ContainerRoot {
            name: name.to_owned(),
            root,
            userns: None,
            _held: Some(held),
        })
    }
}

/// Whether the container path `path` is `target` or below it, compared
/// as paths (`/data/../data/x` is below `/data`).
fn is_under(path: &str, target: &str) -> bool {
    let normal = |p: &str| {
        let mut parts: Vec<String> = Vec::new();
        for c in Path::new(p).components() {
            match c {
                Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (path, target) = (normal(path), normal(target));
    path.starts_with(&target)
}

/// A detached overlay: `lower` (top-most first) under `upper`, which is
/// written only when `write` (else it is the top lower layer).
fn overlay(lower: &[PathBuf], upper: &Path, work: &Path, write: bool) -> std::io::Result<OwnedFd> {
    let text = |p: &Path| {
        p.to_str()
            .filter(|s| !s.contains([',', ':', '\\']))
            .map(str::to_owned)
            .ok_or_else(|| {
                std::io::Error::other(format!("{} cannot be named to overlayfs", p.display()))
            })
    };
    let mut lowers = Vec::with_capacity(lower.len() + 1);
    if !write {
        lowers.push(text(upper)?);
    }
    for l in lower {
        lowers.push(text(l)?);
    }
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "lowerdir", lowers.join(":"))?;
    if write {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", text(upper)?)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", text(work)?)?;
    }
    // As the shim mounts it (see `shim::overlay`).
    rustix::mount::fsconfig_set_string(&fs, "index", "off")?;
    rustix::mount::fsconfig_set_string(&fs, "redirect_dir", "off")?;
    rustix::mount::fsconfig_create(&fs)?;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID;
    if !write {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        attrs,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_on_a_mount_are_found_as_paths() {
        assert!(is_under("/data", "/data"));
        assert!(is_under("/data/x/y", "/data/"));
        assert!(is_under("/srv/../data/x", "/data"));
        assert!(is_under("data/x", "/data"));
        assert!(!is_under("/database", "/data"));
        assert!(!is_under("/", "/data"));
        assert!(!is_under("/etc/passwd", "/data"));
    }
}
