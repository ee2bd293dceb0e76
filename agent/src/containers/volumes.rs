//! Containers' mounts and the volumes they use: at create, each volume
//! is found or made (an anonymous one named), each host path resolved
//! and checked against the security policy again as the machine has it,
//! and the mounts written into the spec. A volume any container names,
//! running or not, cannot be removed; a container's anonymous volumes go
//! with it when asked (`rm -v`, `--rm`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use husk_api::containers::{Mount, MountKind};
use husk_api::volumes::{PrunedVolumes, Volume, VolumeCreate, VolumeList};
use husk_spec::RunOptions;
use oci_spec::runtime::Mount as OciMount;

use super::error::{ManagerError, Result};
use super::manager::Manager;
use super::time::now_ms;
use crate::volumes::{VolumeError, VolumesLock};

impl From<VolumeError> for ManagerError {
    fn from(error: VolumeError) -> Self {
        match error {
            VolumeError::NotFound(name) => ManagerError::NoSuchVolume(name),
            VolumeError::Invalid(reason) => ManagerError::Invalid(reason),
            other => ManagerError::Volume(other),
        }
    }
}

impl Manager {
    /// Each volume's users: the containers whose mounts name it.
    fn volume_users(&self) -> BTreeMap<String, Vec<String>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, slot) in self.table().iter() {
            for mount in slot.snapshot().record.options.mounts {
                if mount.kind == MountKind::Volume {
                    users.entry(mount.source).or_default().push(name.clone());
                }
            }
        }
        users
    }

    /// The OCI mounts of `opts.mounts`, their sources found: volumes made
    /// when missing (an anonymous one gets its name written into `opts`,
    /// so the record knows it), host paths resolved to what they are now
    /// and checked against the policy as resolved. Runs under `lock`,
    /// which the caller holds until the container is in the table.
    pub(super) fn resolve_mounts(
        &self,
        lock: &VolumesLock,
        opts: &mut RunOptions,
        layers: &[PathBuf],
    ) -> Result<Vec<OciMount>> {
        let mut oci = Vec::with_capacity(opts.mounts.len());
        let mut made = Vec::new();
        let userns = opts.userns;
        for mount in &mut opts.mounts {
            match self.mount_source(lock, mount, userns.as_ref(), &mut made, layers) {
                Ok(source) => oci.push(husk_spec::mounts::oci_mount(mount, source.as_deref())),
                Err(e) => {
                    // What this create made for itself goes with it.
                    self.remove_volumes_made(lock, &made);
                    return Err(e);
                }
            }
        }
        Ok(oci)
    }

    fn mount_source(
        &self,
        lock: &VolumesLock,
        mount: &mut Mount,
        userns: Option<&husk_api::containers::UserNamespace>,
        made: &mut Vec<String>,
        layers: &[PathBuf],
    ) -> Result<Option<PathBuf>> {
        let volumes = &self.0.volumes;
        match mount.kind {
            MountKind::Tmpfs => Ok(None),
            MountKind::Bind => Ok(Some(resolve_bind(mount, &self.0.config.policy)?)),
            MountKind::Volume => {
                let request = VolumeCreate {
                    name: mount.source.clone(),
                    labels: BTreeMap::new(),
                };
                let volume = volumes.create(lock, &request, mount.anonymous, now_ms())?;
                if mount.anonymous {
                    made.push(volume.name.clone());
                }
                mount.source = volume.name.clone();
                let data = volumes.data_dir(&volume.name);
                // Only a volume no container mounts: one that could move
                // things in it while the agent copies (as root) never is.
                let unused = !self.volume_users().contains_key(&volume.name);
                if !mount.no_copy && unused && volumes.is_untouched(&volume.name) {
                    let copied = super::copy_up::copy_up(layers, &mount.target, &data, userns)
                        .map_err(|e| {
                            ManagerError::io(
                                format!(
                                    "volume {}: copying the image's {} into it",
                                    volume.name, mount.target
                                ),
                                e,
                            )
                        })?;
                    if copied {
                        log::info!(
                            "volume {}: filled with the image's {}",
                            volume.name,
                            mount.target
                        );
                        return Ok(Some(data));
                    }
                }
                if let Some(userns) = userns {
                    volumes
                        .adopt(lock, &volume.name, userns.host_uid, userns.host_gid)
                        .map_err(|e| {
                            ManagerError::io(
                                format!(
                                    "volume {}: giving it to the container's root",
                                    volume.name
                                ),
                                e,
                            )
                        })?;
                }
                Ok(Some(volumes.data_dir(&volume.name)))
            }
        }
    }

    /// The anonymous volumes a failed create made.
    pub(super) fn remove_volumes_made(&self, lock: &VolumesLock, names: &[String]) {
        for name in names {
            if let Err(e) = self.0.volumes.remove(lock, name) {
                log::warn!("anonymous volume {name}: {e}");
            }
        }
    }

    /// Anonymous volumes of a removed container that nobody else names.
    pub(super) fn remove_anonymous_volumes(&self, mounts: &[Mount]) {
        let lock = self.0.volumes.lock();
        let users = self.volume_users();
        for mount in mounts {
            if mount.kind != MountKind::Volume || !mount.anonymous {
                continue;
            }
            if users.contains_key(&mount.source) {
                continue;
            }
            match self.0.volumes.remove(&lock, &mount.source) {
                Ok(()) => self.volume_event(&mount.source, "destroy"),
                Err(e) => log::warn!("anonymous volume {}: {e}", mount.source),
            }
        }
    }

    pub fn create_volume(&self, request: &VolumeCreate) -> Result<Volume> {
        let lock = self.0.volumes.lock();
        let volume = self.0.volumes.create(&lock, request, false, now_ms())?;
        self.volume_event(&volume.name, "create");
        let users = self.volume_users().remove(&volume.name).unwrap_or_default();
        Ok(Volume {
            used_by: users,
            ..volume
        })
    }

    pub fn list_volumes(&self) -> Result<VolumeList> {
        let (volumes, damaged) = self.0.volumes.list(&self.volume_users())?;
        Ok(VolumeList { volumes, damaged })
    }

    pub fn inspect_volume(&self, name: &str) -> Result<Volume> {
        let users = self.volume_users().remove(name).unwrap_or_default();
        Ok(self.0.volumes.inspect(name, users)?)
    }

    /// Removes a volume no container names, with its files.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let lock = self.0.volumes.lock();
        if let Some(users) = self.volume_users().get(name) {
            return Err(ManagerError::Conflict(format!(
                "volume {name} is in use by container {}: remove {} first",
                users.join(", "),
                if users.len() == 1 { "it" } else { "them" }
            )));
        }
        self.0.volumes.remove(&lock, name)?;
        self.volume_event(name, "destroy");
        Ok(())
    }

    fn volume_event(&self, name: &str, action: &str) {
        let subject = crate::events::Subject::Volume {
            name: name.to_owned(),
        };
        self.events().emit(subject, action, BTreeMap::new());
    }

    /// Removes every volume no container names (Docker 20.10's `volume
    /// prune`); a damaged one is left alone.
    pub fn prune_volumes(&self) -> Result<PrunedVolumes> {
        let lock = self.0.volumes.lock();
        let users = self.volume_users();
        let mut removed = Vec::new();
        for name in self.0.volumes.names()? {
            if users.contains_key(&name) {
                continue;
            }
            match self.0.volumes.remove(&lock, &name) {
                Ok(()) => {
                    self.volume_event(&name, "destroy");
                    removed.push(name);
                }
                Err(e) => log::warn!("volume prune: {e}"),
            }
        }
        Ok(PrunedVolumes { removed })
    }
}

/// A host path as it is now (every symlink followed), which is what the
/// policy is checked against: `/allowed/link` pointing at `/etc` is
/// `/etc`.
fn resolve_bind(mount: &Mount, policy: &husk_spec::SecurityPolicy) -> Result<PathBuf> {
    // The policy first, as written: a refused path is refused without
    // saying whether it exists.
    husk_spec::mounts::check_bind(std::path::Path::new(&mount.source), policy)?;
    let resolved = std::fs::canonicalize(&mount.source)
        .map_err(|e| ManagerError::Invalid(format!("bind source {}: {e}", mount.source)))?;
    husk_spec::mounts::check_bind(&resolved, policy)?;
    Ok(resolved)
}
