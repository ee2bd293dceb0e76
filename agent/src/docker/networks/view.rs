//! Husk's networks as Docker shows them: the agent's `bridge` and the
//! user networks, and Docker's two built-in modes that are not networks
//! here (`host`, `none`, driver `null`), with Docker's ids and
//! `NetworkResource` document.
//!
//! A network's id is the sha256 of its name and creation time (stable
//! across agent restarts, new for a network made again under the same
//! name, as `super::super::ids` does for containers); `{id}` resolves as
//! dockerd resolves it: the full id, then the name, then a unique id
//! prefix. An endpoint's id is the sha256 of its container's and its
//! network's, so a network's inspect and a container's agree.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::StatusCode;
use husk_api::containers::{NetworkInfo, NetworkMode};
use husk_api::networks::Network;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::super::error::DockerError;
use super::super::{Docker, ids};
use crate::containers::{ContainerInfo, Status};

/// One network of Docker's list.
#[derive(Debug, Clone)]
pub enum DockerNetwork {
    /// The agent's `bridge` or a user network.
    Husk(Network),
    /// The machine's own network (`--network host`).
    Host,
    /// Only loopback (`--network none`; Docker's driver `null`).
    Null,
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Docker's id of the network `name` made at `created` (Unix seconds).
pub fn network_id(name: &str, created: u64) -> String {
    hex_sha256(&format!("network/{name}/{created}"))
}

/// The id of a container's place on a network.
pub fn endpoint_id(container_id: &str, network_id: &str) -> String {
    hex_sha256(&format!("endpoint/{container_id}/{network_id}"))
}

impl DockerNetwork {
    pub fn name(&self) -> &str {
        match self {
            Self::Husk(n) => &n.name,
            Self::Host => "host",
            Self::Null => "none",
        }
    }

    pub fn id(&self) -> String {
        network_id(self.name(), self.created())
    }

    /// Unix seconds; 0 for the built-in ones.
    pub fn created(&self) -> u64 {
        match self {
            Self::Husk(n) => n.created,
            Self::Host | Self::Null => 0,
        }
    }

    pub fn driver(&self) -> &'static str {
        match self {
            Self::Husk(_) => "bridge",
            Self::Host => "host",
            Self::Null => "null",
        }
    }

    /// Docker's predefined networks, which cannot be removed.
    pub fn builtin(&self) -> bool {
        match self {
            Self::Husk(n) => n.builtin,
            Self::Host | Self::Null => true,
        }
    }

    pub fn labels(&self) -> Map<String, Value> {
        match self {
            Self::Husk(n) => n
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
            Self::Host | Self::Null => Map::new(),
        }
    }

    /// The user network Husk knows by this name, if it is one.
    pub fn user(&self) -> Option<&Network> {
        match self {
            Self::Husk(n) if !n.builtin => Some(n),
            _ => None,
        }
    }
}

/// Every network: `bridge`, `host`, `none`, then the user networks.
pub async fn all(docker: &Docker) -> Result<Vec<DockerNetwork>, DockerError> {
    let husk = docker.manager.list_networks().await?;
    let (builtin, user): (Vec<Network>, Vec<Network>) = husk.into_iter().partition(|n| n.builtin);
    let mut networks: Vec<DockerNetwork> = builtin.into_iter().map(DockerNetwork::Husk).collect();
    networks.push(DockerNetwork::Host);
    networks.push(DockerNetwork::Null);
    networks.extend(user.into_iter().map(DockerNetwork::Husk));
    Ok(networks)
}

/// Network names to their Docker ids (for containers' `NetworkSettings`).
pub type NetworkIds = HashMap<String, String>;

pub async fn ids_by_name(docker: &Docker) -> NetworkIds {
    // A container's inspect must not fail because the networks are
    // unavailable: its networks then show without ids.
    match all(docker).await {
        Ok(networks) => networks.iter().map(|n| (n.name().into(), n.id())).collect(),
        Err(e) => {
            log::debug!("Docker API: networks for a container's inspect: {e}");
            NetworkIds::new()
        }
    }
}

/// dockerd's 404 for a network.
pub fn not_found(reference: &str) -> DockerError {
    DockerError::new(
        StatusCode::NOT_FOUND,
        format!("network {reference} not found"),
    )
}

/// The network `{id}` names: its full id, its name, a unique id prefix.
pub fn find(networks: Vec<DockerNetwork>, reference: &str) -> Result<DockerNetwork, DockerError> {
    if reference.is_empty() {
        return Err(not_found(reference));
    }
    if let Some(found) = networks.iter().find(|n| n.id() == reference) {
        return Ok(found.clone());
    }
    if let Some(found) = networks.iter().find(|n| n.name() == reference) {
        return Ok(found.clone());
    }
    let mut by_prefix = networks
        .into_iter()
        .filter(|n| n.id().starts_with(reference));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(found), None) => Ok(found),
        (Some(_), Some(_)) => Err(DockerError::bad_request(format!(
            "network {reference} is ambiguous: more than one network's id starts with it"
        ))),
        (None, _) => Err(not_found(reference)),
    }
}

pub async fn resolve(docker: &Docker, reference: &str) -> Result<DockerNetwork, DockerError> {
    find(all(docker).await?, reference)
}

/// The network a container is on by mode (`bridge`, `host`, `none` or a
/// user network), by name.
pub fn mode_network(mode: &NetworkMode) -> &str {
    match mode {
        NetworkMode::Bridge => husk_api::networks::DEFAULT_NETWORK,
        NetworkMode::Host => "host",
        NetworkMode::None => "none",
        NetworkMode::Named(name) => name,
    }
}

/// A container's places, running or not: (network, aliases, where it is
/// now when it runs). Its own network first, then the connected ones.
pub fn places(info: &ContainerInfo) -> Vec<(String, Vec<String>, Option<NetworkInfo>)> {
    let own = mode_network(&info.options.network).to_owned();
    let mut places = vec![(
        own,
        info.options.network_aliases.clone(),
        info.network.clone(),
    )];
    for connected in &info.connected {
        places.push((
            connected.network.clone(),
            connected.aliases.clone(),
            connected.endpoint.clone(),
        ));
    }
    places
}

fn running(info: &ContainerInfo) -> bool {
    matches!(info.status, Status::Running | Status::Restarting)
}

/// `Containers` of a network's inspect: the containers on it now, by
/// Docker id, as dockerd lists its endpoints (a stopped container has
/// none).
fn endpoints(network: &DockerNetwork, containers: &[ContainerInfo]) -> Map<String, Value> {
    let network_id = network.id();
    let mut out = Map::new();
    for info in containers.iter().filter(|c| running(c)) {
        let id = ids::id_of(info);
        for (name, _, place) in places(info) {
            if name != network.name() {
                continue;
            }
            let (mac, v4, v6) = match &place {
                Some(p) => (
                    p.mac_address.clone(),
                    format!("{}/{}", p.ip_address, p.prefix_len),
                    match (p.ipv6_address, p.ipv6_prefix_len) {
                        (Some(a), Some(len)) => format!("{a}/{len}"),
                        _ => String::new(),
                    },
                ),
                // Host and none: an endpoint without addresses, as dockerd's.
                None if matches!(network, DockerNetwork::Host | DockerNetwork::Null) => {
                    Default::default()
                }
                None => continue,
            };
            out.insert(
                id.clone(),
                json!({
                    "Name": info.name,
                    "EndpointID": endpoint_id(&id, &network_id),
                    "MacAddress": mac,
                    "IPv4Address": v4,
                    "IPv6Address": v6,
                }),
            );
        }
    }
    out
}

/// `IPAM.Config`: the subnets and their gateways.
fn ipam_config(network: &DockerNetwork) -> Vec<Value> {
    let DockerNetwork::Husk(n) = network else {
        return Vec::new();
    };
    let mut config = vec![json!({"Subnet": n.subnet, "Gateway": n.gateway.to_string()})];
    if let (Some(subnet), Some(gateway)) = (&n.subnet_v6, n.gateway_v6) {
        config.push(json!({"Subnet": subnet, "Gateway": IpAddr::V6(gateway).to_string()}));
    }
    config
}

/// `Options`: the agent's bridge shows its interface and what it does,
/// as dockerd's `bridge` does; a user network none (docker-compose
/// compares them with its file's `driver_opts` on the next `up`).
fn options(network: &DockerNetwork) -> Map<String, Value> {
    let mut options = Map::new();
    if let DockerNetwork::Husk(n) = network
        && n.builtin
    {
        for (key, value) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", n.interface.as_str()),
        ] {
            options.insert(key.into(), Value::String(value.into()));
        }
    }
    options
}

fn created_text(created: u64) -> String {
    husk_common::civil::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(created))
}

/// Docker's `NetworkResource`. `containers`: every container (those on
/// it now are listed); None leaves `Containers` empty, as dockerd's list
/// does.
pub fn resource(network: &DockerNetwork, containers: Option<&[ContainerInfo]>) -> Value {
    let (internal, ipv6) = match network {
        DockerNetwork::Husk(n) => (n.internal, n.subnet_v6.is_some()),
        DockerNetwork::Host | DockerNetwork::Null => (false, false),
    };
    json!({
        "Name": network.name(),
        "Id": network.id(),
        "Created": created_text(network.created()),
        "Scope": "local",
        "Driver": network.driver(),
        "EnableIPv6": ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": ipam_config(network),
        },
        "Internal": internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers.map(|c| endpoints(network, c)).unwrap_or_default(),
        "Options": options(network),
        "Labels": network.labels(),
    })
}

/// `NetworkSettings.Networks` of a container's inspect and list entry:
/// every network it is on, running or not (a created container shows
/// where it will be, without addresses), with its aliases there.
pub fn container_networks(info: &ContainerInfo, network_ids: &NetworkIds) -> Map<String, Value> {
    let container_id = ids::id_of(info);
    let mut networks = Map::new();
    for (name, aliases, place) in places(info) {
        let network_id = network_ids.get(&name).cloned().unwrap_or_default();
        // Host and none have no place to show, but an endpoint all the same.
        let placed = place.is_some() || !info.options.network.is_bridged();
        let endpoint = if running(info) && placed && !network_id.is_empty() {
            endpoint_id(&container_id, &network_id)
        } else {
            String::new()
        };
        let p = place.as_ref();
        networks.insert(
            name,
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
                "NetworkID": network_id,
                "EndpointID": endpoint,
                "Gateway": p.map(|n| n.gateway.to_string()).unwrap_or_default(),
                "IPAddress": p.map(|n| n.ip_address.to_string()).unwrap_or_default(),
                "IPPrefixLen": p.map_or(0, |n| n.prefix_len),
                "IPv6Gateway": p.and_then(|n| n.ipv6_gateway).map(|ip| ip.to_string()).unwrap_or_default(),
                "GlobalIPv6Address": p.and_then(|n| n.ipv6_address).map(|ip| ip.to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": p.and_then(|n| n.ipv6_prefix_len).unwrap_or(0),
                "MacAddress": p.map(|n| n.mac_address.clone()).unwrap_or_default(),
                "DriverOpts": null,
            }),
        );
    }
    networks
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A user network on 172.18.0.0/16 (for the tests of its views and
    /// of the filters).
    pub(in super::super) fn user_network(
        name: &str,
        created: u64,
        labels: &[(&str, &str)],
    ) -> DockerNetwork {
        DockerNetwork::Husk(Network {
            name: name.into(),
            interface: "husk1a2b3c4d".into(),
            subnet: "172.18.0.0/16".into(),
            gateway: "172.18.0.1".parse().unwrap(),
            subnet_v6: None,
            gateway_v6: None,
            internal: false,
            builtin: false,
            dns: true,
            created,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            containers: Vec::new(),
        })
    }

    fn user(name: &str, created: u64) -> DockerNetwork {
        user_network(name, created, &[("com.docker.compose.project", "shop")])
    }

    #[test]
    fn ids_are_stable_and_new_for_a_network_made_again() {
        let a = user("app", 10);
        assert_eq!(a.id(), user("app", 10).id());
        assert_ne!(a.id(), user("app", 11).id());
        assert_ne!(a.id(), user("db", 10).id());
        assert_eq!(a.id().len(), 64);
        assert_ne!(DockerNetwork::Host.id(), DockerNetwork::Null.id());
    }

    #[test]
    fn references_resolve_as_dockerd_resolves_them() {
        let networks = vec![user("app", 1), user("db", 2), DockerNetwork::Host];
        let app = networks[0].id();
        assert_eq!(find(networks.clone(), &app).unwrap().name(), "app");
        assert_eq!(find(networks.clone(), "db").unwrap().name(), "db");
        assert_eq!(find(networks.clone(), "host").unwrap().name(), "host");
        assert_eq!(find(networks.clone(), &app[..12]).unwrap().name(), "app");
        let missing = find(networks.clone(), "nothing").unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            find(networks, "").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    fn container(status: Status, network: Option<NetworkInfo>) -> ContainerInfo {
        let mut options = husk_api::containers::RunOptions::new("web", "busybox");
        options.network = NetworkMode::Named("app".into());
        options.network_aliases = vec!["www".into()];
        ContainerInfo {
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            command: Vec::new(),
            status,
            pid: None,
            created: String::new(),
            started: None,
            finished: None,
            exit_code: None,
            oom_killed: false,
            restart_policy: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            error: None,
            created_ms: 1,
            started_ms: None,
            finished_ms: None,
            options,
            network,
            connected: vec![husk_api::networks::Connected {
                network: "db".into(),
                aliases: vec!["cache".into()],
                endpoint: None,
            }],
        }
    }

    #[test]
    fn containers_show_their_networks_running_or_not() {
        let ids: NetworkIds = [("app".to_string(), "a1".to_string())].into();
        // Created: where it will be, with its aliases, no endpoint yet.
        let created = container(Status::Created, None);
        let networks = container_networks(&created, &ids);
        assert_eq!(networks["app"]["NetworkID"], "a1");
        assert_eq!(networks["app"]["Aliases"], json!(["www"]));
        assert_eq!(networks["app"]["EndpointID"], "");
        assert_eq!(networks["app"]["IPAddress"], "");
        assert_eq!(networks["db"]["Aliases"], json!(["cache"]));
        // Running: its place, and the endpoint the network's inspect lists.
        let place = NetworkInfo {
            network: "app".into(),
            bridge: "husk1a2b3c4d".into(),
            ip_address: "172.18.0.2".parse().unwrap(),
            prefix_len: 16,
            gateway: "172.18.0.1".parse().unwrap(),
            mac_address: "02:42:ac:12:00:02".into(),
            ipv6_address: None,
            ipv6_prefix_len: None,
            ipv6_gateway: None,
            ports: Vec::new(),
        };
        let running = container(Status::Running, Some(place));
        let networks = container_networks(&running, &ids);
        assert_eq!(networks["app"]["IPAddress"], "172.18.0.2");
        let network = user("app", 0);
        let listed = endpoints(&network, std::slice::from_ref(&running));
        let entry = &listed[&ids::id_of(&running)];
        assert_eq!(entry["IPv4Address"], "172.18.0.2/16");
        assert_eq!(
            entry["EndpointID"],
            json!(endpoint_id(&ids::id_of(&running), &network.id()))
        );
        // A stopped container is on no network's list, as dockerd's.
        assert!(endpoints(&network, std::slice::from_ref(&created)).is_empty());
    }

    #[test]
    fn the_resource_has_dockers_fields() {
        let doc = resource(&user("app", 0), Some(&[]));
        assert_eq!(doc["Driver"], "bridge");
        assert_eq!(doc["Scope"], "local");
        assert_eq!(doc["IPAM"]["Driver"], "default");
        assert_eq!(doc["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
        assert_eq!(doc["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");
        assert_eq!(doc["Labels"]["com.docker.compose.project"], "shop");
        assert_eq!(doc["Options"], json!({}));
        assert_eq!(doc["Created"], "1970-01-01T00:00:00.000000000Z");
        let host = resource(&DockerNetwork::Host, None);
        assert_eq!(host["Driver"], "host");
        assert_eq!(host["IPAM"]["Config"], json!([]));
        assert_eq!(resource(&DockerNetwork::Null, None)["Driver"], "null");
    }
}
