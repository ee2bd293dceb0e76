//! The manager's side of containers' networks: the spec's network
//! namespace path and file mounts at create, the bridge attached before
//! each start and detached after each exit (`crate::bridge` does the
//! work).

use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};

use super::error::{ManagerError, Result};
use super::manager::{Manager, Slot};
use super::paths::ContainerPaths;
use husk_api::containers::{NetworkInfo, NetworkMode, RunOptions};

/// The files bound over the container's own: resolv.conf, hosts,
/// hostname (by where they go, and their names in its directory).
const FILES: [(&str, &str); 3] = [
    ("/etc/resolv.conf", "resolv.conf"),
    ("/etc/hosts", "hosts"),
    ("/etc/hostname", "hostname"),
];

impl Manager {
    /// Joins the namespace the bridge makes, and binds the network files.
    pub(super) fn add_network_to_spec(
        &self,
        spec: &mut Spec,
        opts: &RunOptions,
        paths: &ContainerPaths,
    ) {
        if opts.network == NetworkMode::Bridge
            && let Ok(networks) = &self.0.networks
            && let Some(namespaces) = spec
                .linux_mut()
                .as_mut()
                .and_then(|l| l.namespaces_mut().as_mut())
        {
            for ns in namespaces.iter_mut() {
                if ns.typ() == LinuxNamespaceType::Network {
                    ns.set_path(Some(networks.netns_path(&opts.name)));
                }
            }
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for (target, file) in FILES {
            if !wants(opts.network, target) {
                continue;
            }
            let mount = MountBuilder::default()
                .destination(target)
                .typ("bind")
                .source(paths.dir.join(file))
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build();
            if let Ok(mount) = mount {
                mounts.push(mount);
            }
        }
        spec.set_mounts(Some(mounts));
    }

    /// Before a start: on the bridge (if bridged), and the files written.
    pub(super) async fn attach_network(&self, slot: &Slot) -> Result<Option<NetworkInfo>> {
        let opts = slot.snapshot().record.options;
        let networks = match &self.0.networks {
            Ok(networks) => networks,
            Err(reason) if opts.network == NetworkMode::Bridge => {
                return Err(ManagerError::StartFailed {
                    name: slot.name.clone(),
                    reason: format!("the bridge network is unavailable: {reason}"),
                });
            }
            Err(_) => return Ok(None),
        };
        let info = if opts.network == NetworkMode::Bridge {
            Some(
                networks
                    .attach(&opts)
                    .await
                    .map_err(|e| ManagerError::StartFailed {
                        name: slot.name.clone(),
                        reason: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let address = info.as_ref().map(|i| i.ip_address);
        let address_v6 = info.as_ref().and_then(|i| i.ipv6_address);
        if let Err(e) = networks.write_files(&opts, &slot.paths.dir, address, address_v6) {
            if info.is_some() {
                networks.detach(&slot.name).await;
            }
            return Err(ManagerError::StartFailed {
                name: slot.name.clone(),
                reason: e.to_string(),
            });
        }
        Ok(info)
    }

    /// After an exit (or a failed start): off the bridge. Awaited under
    /// the container's lock, so a start that follows finds it detached.
    pub(super) async fn detach_network(&self, slot: &Slot) {
        slot.state.send_modify(|s| s.network = None);
        if slot.snapshot().record.options.network != NetworkMode::Bridge {
            return;
        }
        if let Ok(networks) = &self.0.networks {
            networks.detach(&slot.name).await;
        }
    }

    /// A removed container's address is free again.
    pub(super) async fn release_network(&self, name: &str) {
        if let Ok(networks) = &self.0.networks {
            networks.release(name).await;
        }
    }

    /// After the containers are restored: the bridge takes back the
    /// running ones' attachments and removes what is left of the others.
    pub(super) async fn restore_networks(&self) {
        let Ok(networks) = &self.0.networks else {
            return;
        };
        let table = self.table().clone();
        let running: Vec<String> = table
            .iter()
            .filter(|(_, slot)| slot.snapshot().status == super::info::Status::Running)
            .map(|(name, _)| name.clone())
            .collect();
        networks
            .restore(&running, |name| table.contains_key(name))
            .await;
        for name in &running {
            if let (Some(info), Some(slot)) = (networks.info(name).await, table.get(name)) {
                slot.state.send_modify(|s| s.network = Some(info));
            }
        }
    }
}

/// Which files a network mode gets: the host network keeps the host's
/// hosts and hostname (Docker's), but gets the host's name servers.
fn wants(mode: NetworkMode, target: &str) -> bool {
    match mode {
        NetworkMode::Bridge => true,
        NetworkMode::None => target != "/etc/resolv.conf",
        NetworkMode::Host => target == "/etc/resolv.conf",
    }
}
