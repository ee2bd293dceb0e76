//! `/v1/networks`: the containers' networks (docs/API.md). `bridge` is
//! the agent's own (`husk0`, from agent.toml); the others are user
//! networks, made and removed through the API, whose containers find
//! each other by name through the network's DNS server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET` (list), `POST` (create).
pub const NETWORKS_PATH: &str = "/v1/networks";

/// The network every bridged container is on unless told otherwise.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Names that are network modes, not networks.
pub const RESERVED_NAMES: [&str; 4] = ["bridge", "default", "host", "none"];

/// `POST /v1/networks` (`huskctl network create`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// `10.20.0.0/24`; default: the first free /16 of 172.18–172.30, then
    /// a /24 of 10.89.0.0/16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Dual stack; default: as the agent's bridge (`[network] ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    /// The IPv6 prefix (at most a /96); default: a unique local /64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<String>,
    /// No way out: its containers reach each other and nothing else.
    #[serde(default)]
    pub internal: bool,
    /// KEY=VALUE metadata kept with it (docker-compose marks its
    /// networks' project with them and checks them on the next `up`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One network, as `GET /v1/networks/NAME` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// Its bridge interface on the host.
    pub interface: String,
    pub subnet: String,
    pub gateway: std::net::Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_v6: Option<std::net::Ipv6Addr>,
    pub internal: bool,
    /// The agent's own network (agent.toml), which cannot be removed.
    pub builtin: bool,
    /// Its containers resolve each other's names (user networks).
    pub dns: bool,
    /// Seconds since the epoch; 0 for the builtin network.
    #[serde(default)]
    pub created: u64,
    /// As given at create (none for the builtin network).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The containers that hold an address on it.
    #[serde(default)]
    pub containers: Vec<Endpoint>,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    pub ip_address: std::net::Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    /// Plugged in right now (the container runs).
    pub attached: bool,
}

/// `POST /v1/networks/NAME/connect` (`huskctl network connect`): a
/// container joins one more network, now if it runs and at every start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConnect {
    pub container: String,
    /// More names it answers to there besides its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `POST /v1/networks/NAME/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDisconnect {
    pub container: String,
}

/// A network connected to a container besides its own (in its inspect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connected {
    pub network: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its place there while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<crate::containers::NetworkInfo>,
}

/// `GET /v1/networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkList {
    pub networks: Vec<Network>,
}

/// `DELETE /v1/networks/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedNetwork {
    pub name: String,
}

/// The path of one network.
pub fn network_path(name: &str) -> String {
    format!("{NETWORKS_PATH}/{}", crate::encode_path_segment(name))
}

/// Checks a user network's name as Docker does (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// here at most 64 bytes), and that it is not one of the network modes.
pub fn check_network_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(format!(
            "network name {name:?}: 1 to 64 of letters, digits, '_', '.' and '-', starting with a letter or digit"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "network name {name:?} is reserved (a network mode: {})",
            RESERVED_NAMES.join(", ")
        ));
    }
    Ok(())
}

/// Checks a network's labels: keys that are not empty (values may be).
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.keys().any(String::is_empty) {
        return Err("a label's key is empty".into());
    }
    Ok(())
}

/// Checks a DNS alias (`--network-alias`, `network connect --alias`): a
/// name a resolver can ask, labels of 1 to 63 letters, digits, '_' and
/// '-' joined by dots, 253 bytes at most.
pub fn check_alias(alias: &str) -> Result<(), String> {
    let labels_ok = alias.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !label.starts_with('-')
    });
    if !labels_ok || alias.len() > 253 {
        return Err(format!(
            "alias {alias:?}: dot-separated labels of 1 to 63 letters, digits, '_' and '-' (253 bytes at most)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_are_checked_as_docker_does() {
        assert_eq!(check_network_name("app_net-1.b"), Ok(()));
        assert!(check_network_name("").is_err());
        assert!(check_network_name("-x").is_err());
        assert!(check_network_name("a/b").is_err());
        assert!(check_network_name(&"a".repeat(65)).is_err());
        assert!(check_network_name("host").unwrap_err().contains("reserved"));
        assert!(
            check_network_name("bridge")
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn aliases_are_names_a_resolver_can_ask() {
        assert_eq!(check_alias("db"), Ok(()));
        assert_eq!(check_alias("db.internal"), Ok(()));
        assert_eq!(check_alias("host"), Ok(()));
        assert!(check_alias("").is_err());
        assert!(check_alias("a..b").is_err());
        assert!(check_alias(&"a".repeat(64)).is_err());
        assert!(check_alias("-x").is_err());
        assert!(check_alias("a b").is_err());
    }

    #[test]
    fn labels_are_kept_and_their_keys_checked() {
        let create: NetworkCreate =
            serde_json::from_str(r#"{"name":"a","labels":{"com.docker.compose.project":"shop"}}"#)
                .unwrap();
        assert_eq!(create.labels["com.docker.compose.project"], "shop");
        assert_eq!(check_labels(&create.labels), Ok(()));
        let empty_key = BTreeMap::from([(String::new(), "x".to_string())]);
        assert!(check_labels(&empty_key).unwrap_err().contains("key"));
        // A create without labels is written as before.
        let plain = NetworkCreate {
            name: "a".into(),
            ..Default::default()
        };
        assert!(!serde_json::to_string(&plain).unwrap().contains("labels"));
        // An older agent's answer has none.
        let old: Network = serde_json::from_str(
            r#"{"name":"a","interface":"husk1","subnet":"10.0.0.0/24","gateway":"10.0.0.1","internal":false,"builtin":false,"dns":true}"#,
        )
        .unwrap();
        assert!(old.labels.is_empty());
    }

    #[test]
    fn unknown_fields_of_a_create_are_refused() {
        let err = serde_json::from_str::<NetworkCreate>(r#"{"name":"a","subnett":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("subnett"), "{err}");
    }
}
