//! The manager's side of containers' networks: the spec's network
//! namespace path and file mounts at create, the bridge attached before
//! each start and detached after each exit (`crate::bridge` does the
//! work).

use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};

use super::error::{ManagerError, Result};
use super::manager::{Manager, Slot};
use super::paths::ContainerPaths;
use husk_api::containers::{NetworkInfo, NetworkMode, RunOptions};
use husk_api::networks::{Network, NetworkConnect, NetworkCreate};

use super::record::ConnectedNetwork;

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
        if opts.network.is_bridged()
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
            if !wants(&opts.network, target) {
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
            Err(reason) if opts.network.is_bridged() => {
                return Err(ManagerError::StartFailed {
                    name: slot.name.clone(),
                    reason: format!("the bridge network is unavailable: {reason}"),
                });
            }
            Err(_) => return Ok(None),
        };
        let info = if opts.network.is_bridged() {
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
        if info.is_some() {
            let connected = slot.snapshot().record.connected;
            let mut infos = Vec::new();
            for c in &connected {
                match networks.connect(&slot.name, &c.network, &c.aliases).await {
                    Ok(info) => infos.push(info),
                    Err(e) => {
                        networks.detach(&slot.name).await;
                        return Err(ManagerError::StartFailed {
                            name: slot.name.clone(),
                            reason: format!("connecting network {}: {e}", c.network),
                        });
                    }
                }
            }
            slot.state.send_modify(|s| s.connected = infos);
        }
        if let Err(e) = networks
            .write_files(&opts, &slot.paths.dir, info.as_ref())
            .await
        {
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
        slot.state.send_modify(|s| {
            s.network = None;
            s.connected = Vec::new();
        });
        if !slot.snapshot().record.options.network.is_bridged() {
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
                let connected = networks.connected(name).await;
                slot.state.send_modify(|s| {
                    s.network = Some(info);
                    s.connected = connected;
                });
            }
        }
    }
}

/// Which files a network mode gets: the host network keeps the host's
/// hosts and hostname (Docker's), but gets the host's name servers.
fn wants(mode: &NetworkMode, target: &str) -> bool {
    match mode {
        NetworkMode::Bridge | NetworkMode::Named(_) => true,
        NetworkMode::None => target != "/etc/resolv.conf",
        NetworkMode::Host => target == "/etc/resolv.conf",
    }
}

impl Manager {
    /// `POST /v1/networks`.
    /// The machine's own services' ports (the remote API's), opened in
    /// the machine's firewall (see `Networks::open_service_ports`).
    pub async fn open_service_ports(&self, ports: Vec<(crate::nft::Protocol, u16)>) {
        if let Ok(networks) = &self.0.networks {
            networks.open_service_ports(ports).await;
        }
    }

    pub async fn create_network(&self, request: &NetworkCreate) -> Result<Network> {
        let network = self
            .networks()?
            .create(request)
            .await
            .map_err(network_error)?;
        self.network_event(&network.name, network.created, None, "create");
        Ok(network)
    }

    /// Records `action` of `network` (and the container it concerns).
    fn network_event(&self, network: &str, created: u64, container: Option<&Slot>, action: &str) {
        let container = container.map(|slot| crate::events::ContainerRef {
            name: slot.name.clone(),
            created_ms: slot.state.borrow().record.created_ms,
        });
        let subject = crate::events::Subject::Network {
            name: network.to_owned(),
            created,
            container,
        };
        self.events().emit(subject, action, Default::default());
    }

    /// When `network` was made (0 if it is gone), for its events.
    async fn network_created(&self, network: &str) -> u64 {
        match self.networks() {
            Ok(networks) => networks.inspect(network).await.map_or(0, |n| n.created),
            Err(_) => 0,
        }
    }

    /// `GET /v1/networks`.
    pub async fn list_networks(&self) -> Result<Vec<Network>> {
        Ok(self.networks()?.list().await)
    }

    /// `GET /v1/networks/NAME`.
    pub async fn inspect_network(&self, name: &str) -> Result<Network> {
        self.networks()?.inspect(name).await.map_err(network_error)
    }

    /// `DELETE /v1/networks/NAME`: refused while a container on it
    /// exists, running or not (it would not start again).
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        let _network_use = self.0.network_use.write().await;
        let on_it: Vec<String> = self
            .table()
            .iter()
            .filter(|(_, slot)| {
                let record = slot.snapshot().record;
                record.options.network.network_name() == Some(name)
                    || record.connected.iter().any(|c| c.network == name)
            })
            .map(|(container, _)| container.clone())
            .collect();
        let created = self.network_created(name).await;
        self.networks()?
            .remove(name, on_it)
            .await
            .map_err(network_error)?;
        self.network_event(name, created, None, "destroy");
        Ok(())
    }

    /// `POST /v1/networks/NAME/connect`: now if it runs, and at every
    /// start.
    pub async fn connect_network(&self, network: &str, request: &NetworkConnect) -> Result<()> {
        let _network_use = self.0.network_use.read().await;
        let slot = self.slot(&request.container)?;
        let _guard = slot.op.lock().await;
        let snapshot = slot.snapshot();
        let record = &snapshot.record;
        let name = &request.container;
        if !record.options.network.is_bridged() {
            return Err(ManagerError::Invalid(format!(
                "container {name} is on --network {}: it has no network to join another to",
                record.options.network
            )));
        }
        if record.options.network.network_name() == Some(network)
            || record.connected.iter().any(|c| c.network == network)
        {
            return Err(ManagerError::Conflict(format!(
                "container {name} is already on network {network}"
            )));
        }
        for alias in &request.aliases {
            husk_api::networks::check_alias(alias).map_err(ManagerError::Invalid)?;
        }
        let networks = self.networks()?;
        if !networks.exists(network).await {
            return Err(ManagerError::NoSuchNetwork(network.to_owned()));
        }
        if snapshot.status == super::info::Status::Running {
            let info = networks
                .connect(name, network, &request.aliases)
                .await
                .map_err(network_error)?;
            slot.state.send_modify(|s| s.connected.push(info));
            // Its resolver may be this network's server now.
            if let Err(e) = networks
                .update_resolv_conf(&record.options, &slot.paths.dir)
                .await
            {
                log::error!("{name}: {e}");
            }
        }
        slot.update(|s| {
            s.record.connected.push(ConnectedNetwork {
                network: network.to_owned(),
                aliases: request.aliases.clone(),
            });
        });
        let created = self.network_created(network).await;
        self.network_event(network, created, Some(&slot), "connect");
        Ok(())
    }

    /// More names on its own user network for a container that is not
    /// running, answered from its next start: Docker's short id, which
    /// dockerd gives every container on a user network (and
    /// docker-compose looks for, else it takes the container off its
    /// network and on again).
    pub async fn add_network_aliases(&self, container: &str, aliases: &[String]) -> Result<()> {
        let slot = self.slot(container)?;
        let _guard = slot.op.lock().await;
        let snapshot = slot.snapshot();
        if !matches!(snapshot.record.options.network, NetworkMode::Named(_)) {
            return Err(ManagerError::Invalid(format!(
                "container {container} is not on a user network: aliases are answered there only"
            )));
        }
        if snapshot.status == super::info::Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {container} is running: its names on its network are set before it starts"
            )));
        }
        for alias in aliases {
            husk_api::networks::check_alias(alias).map_err(ManagerError::Invalid)?;
        }
        slot.update(|s| {
            for alias in aliases {
                if !s.record.options.network_aliases.contains(alias) {
                    s.record.options.network_aliases.push(alias.clone());
                }
            }
        });
        Ok(())
    }

    /// `POST /v1/networks/NAME/disconnect`.
    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let slot = self.slot(container)?;
        let _guard = slot.op.lock().await;
        let record = slot.snapshot().record;
        if !record.connected.iter().any(|c| c.network == network) {
            return Err(ManagerError::Conflict(
                if record.options.network.network_name() == Some(network) {
                    format!(
                        "container {container} was created on network {network}: only networks connected later can be disconnected"
                    )
                } else {
                    format!("container {container} is not connected to network {network}")
                },
            ));
        }
        let networks = self.networks()?;
        networks
            .disconnect(container, network)
            .await
            .map_err(network_error)?;
        if slot.snapshot().status == super::info::Status::Running
            && let Err(e) = networks
                .update_resolv_conf(&record.options, &slot.paths.dir)
                .await
        {
            log::error!("{container}: {e}");
        }
        slot.state
            .send_modify(|s| s.connected.retain(|i| i.network != network));
        slot.update(|s| s.record.connected.retain(|c| c.network != network));
        let created = self.network_created(network).await;
        self.network_event(network, created, Some(&slot), "disconnect");
        Ok(())
    }

    /// At create: a container's user network must exist.
    pub(super) async fn check_network_exists(&self, opts: &RunOptions) -> Result<()> {
        if let NetworkMode::Named(network) = &opts.network {
            match self.networks()?.is_internal(network).await {
                None => return Err(ManagerError::NoSuchNetwork(network.clone())),
                Some(true) if !opts.ports.is_empty() => {
                    return Err(ManagerError::Invalid(
                        crate::bridge::NetError::InternalPorts(network.clone()).to_string(),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn networks(&self) -> Result<&crate::bridge::Networks> {
        self.0.networks.as_ref().map_err(|reason| {
            ManagerError::Unavailable(format!(
                "the containers' networks are unavailable: {reason}"
            ))
        })
    }
}

fn network_error(error: crate::bridge::NetError) -> ManagerError {
    use crate::bridge::NetError as E;
    match error {
        E::NoSuchNetwork(name) => ManagerError::NoSuchNetwork(name),
        E::NetworkExists(_)
        | E::NetworkInUse { .. }
        | E::Builtin(_)
        | E::AlreadyConnected { .. }
        | E::NotRunning(_) => ManagerError::Conflict(error.to_string()),
        E::InvalidNetwork(_) => ManagerError::Invalid(error.to_string()),
        other => ManagerError::Io {
            context: "the containers' networks".into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
