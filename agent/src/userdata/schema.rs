//! The user-data document: TOML, validated as a whole before anything of
//! it is applied, so a mistake anywhere changes nothing and is reported
//! with its place (`line:column`) and the key.
//!
//! ```toml
//! hostname = "node-1"
//!
//! [network]
//! dns = ["192.0.2.53"]
//!
//! [[containers]]
//! name = "web"
//! image = "registry.example/web:1"
//! cmd = ["/web", "--port", "80"]
//! restart = "always"
//! memory = 268435456
//!
//! [update]
//! repository = "https://updates.example/husk"
//! channel = "stable"
//! ```

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use husk_spec::{RestartPolicy, RunOptions, check_name};

/// The whole document. Unknown keys are errors: a misspelt key must not
/// be silently ignored on a machine nobody logs in to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSettings>,
    /// Containers to run at first boot; an image the store lacks is
    /// pulled (retrying while the network comes up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<RunOptions>,
    /// User networks made at first boot, before the containers (the
    /// fields of `huskctl network create`): containers name them in
    /// their `network`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<husk_api::networks::NetworkCreate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSettings>,
    /// More registry settings (mirrors, CAs, credentials, insecure
    /// registries), added to agent.toml's `[registry]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<husk_registry::RegistryConfig>,
    /// More admission rules: an image must satisfy agent.toml's policy
    /// and these (they can forbid and require more, never loosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<husk_registry::policy::PolicyConfig>,
    /// More NTP servers (after agent.toml's), another step threshold, or
    /// `enabled = false`: agent.toml's `[time]` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<crate::timesync::TimeOverrides>,
    /// The remote API (`listen`, `client_ca`, `server_cert`,
    /// `server_key`), over agent.toml's `[api]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<crate::server::RemoteSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Name servers, replacing those DHCP gives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// Static addresses instead of DHCP, per interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<StaticInterface>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticInterface {
    /// `eth0`, or the first NIC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `192.0.2.10/24`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// `https://…`, `http://…` or `file://…`.
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Apply updates automatically in this daily window (`02:00-04:00`, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_window: Option<String>,
}

/// Why a document was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UserDataError(pub String);

impl UserData {
    /// Parses and validates `text`; nothing is applied by this.
    pub fn parse(text: &str) -> Result<Self, UserDataError> {
        let doc: Self = toml::from_str(text).map_err(|e| UserDataError(locate(text, &e)))?;
        doc.validate()?;
        Ok(doc)
    }

    fn validate(&self) -> Result<(), UserDataError> {
        let bad = |key: &str, why: String| Err(UserDataError(format!("{key}: {why}")));
        if let Some(api) = &self.api {
            // Its messages name their keys (`api.client_ca: …`).
            api.validate_parts().map_err(UserDataError)?;
        }
        if let Some(hostname) = &self.hostname {
            let valid = (1..=64).contains(&hostname.len())
                && hostname.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return bad(
                    "hostname",
                    format!(
                        "`{hostname}` is not a hostname (letters, digits, - and ., 64 at most)"
                    ),
                );
            }
        }
        if let Some(network) = &self.network {
            for (i, iface) in network.interfaces.iter().enumerate() {
                if let Err(why) = parse_cidr(&iface.address) {
                    return bad(&format!("network.interfaces[{i}].address"), why);
                }
            }
        }
        let mut networks = HashSet::new();
        for (i, network) in self.networks.iter().enumerate() {
            if let Err(why) = crate::bridge::check_network_request(network) {
                return bad(&format!("networks[{i}]"), why);
            }
            if !networks.insert(network.name.as_str()) {
                return bad(
                    &format!("networks[{i}].name"),
                    format!("`{}` is used twice", network.name),
                );
            }
        }
        let mut names = HashSet::new();
        for (i, container) in self.containers.iter().enumerate() {
            let key = format!("containers[{i}]");
            if let husk_api::containers::NetworkMode::Named(network) = &container.network
                && !networks.contains(network.as_str())
            {
                return bad(
                    &format!("{key}.network"),
                    format!(
                        "`{network}` is none of bridge, none, host or this document's [[networks]]"
                    ),
                );
            }
            if container.name.is_empty() {
                return bad(
                    &format!("{key}.name"),
                    "every container needs a name".into(),
                );
            }
            if let Err(e) = check_name(&container.name) {
                return bad(&format!("{key}.name"), e.to_string());
            }
            if !names.insert(container.name.as_str()) {
                return bad(
                    &format!("{key}.name"),
                    format!("`{}` is used twice", container.name),
                );
            }
            if container.image.is_empty() {
                return bad(&format!("{key}.image"), "empty".into());
            }
            if container.auto_remove && container.restart != RestartPolicy::No {
                return bad(
                    &format!("{key}.auto_remove"),
                    "excludes a restart policy".into(),
                );
            }
        }
        if let Some(registry) = &self.registry
            && let Err(e) = registry.validate()
        {
            return bad("registry", e.to_string());
        }
        // Its keys and roots must be there now (read again when applied).
        if let Some(policy) = &self.policy
            && let Err(e) = policy.load("user-data", std::path::Path::new("/nonexistent"))
        {
            return bad("policy", e.to_string());
        }
        if let Some(time) = &self.time
            && let Err(e) = time.check()
        {
            return Err(UserDataError(e));
        }
        if let Some(update) = &self.update {
            let scheme_ok = ["https://", "http://", "file://"]
                .iter()
                .any(|s| update.repository.starts_with(s));
            if !scheme_ok {
                return bad(
                    "update.repository",
                    format!(
                        "`{}`: expected an https://, http:// or file:// URL",
                        update.repository
                    ),
                );
            }
        }
        Ok(())
    }
}

/// `192.0.2.10/24` → (address, prefix).
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: expected ADDRESS/PREFIX"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max => Ok((addr, p)),
        _ => Err(format!("`{prefix}` is not a prefix length (0–{max})")),
    }
}

/// toml's message with the line and column of the mistake.
fn locate(text: &str, error: &toml::de::Error) -> String {
    match crate::config::position(text, error) {
        Some((line, column)) => format!("line {line}, column {column}: {}", error.message()),
        None => error.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
hostname = "node-1"

[network]
dns = ["192.0.2.53"]

[[network.interfaces]]
name = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"

[[containers]]
name = "web"
image = "husk.test/busybox:1"
cmd = ["sh", "-c", "echo hi"]
restart = "always"
memory = 67108864

[update]
repository = "https://updates.example/husk"
"#;

    #[test]
    fn a_full_document_parses() {
        let doc = UserData::parse(GOOD).unwrap();
        assert_eq!(doc.hostname.as_deref(), Some("node-1"));
        assert_eq!(doc.containers[0].restart, RestartPolicy::Always);
        assert_eq!(doc.containers[0].memory, Some(64 << 20));
        assert_eq!(
            doc.network.unwrap().interfaces[0]
                .gateway
                .unwrap()
                .to_string(),
            "192.0.2.1"
        );
        assert_eq!(UserData::parse("").unwrap(), UserData::default());
    }

    #[test]
    fn networks_come_with_the_containers_that_name_them() {
        let doc = UserData::parse(
            "[[networks]]\nname = \"app\"\ninternal = true\n\n[[containers]]\nname = \"db\"\nimage = \"i\"\nnetwork = \"app\"\nnetwork_aliases = [\"database\"]\n",
        )
        .unwrap();
        assert!(doc.networks[0].internal);
        assert_eq!(
            doc.containers[0].network,
            husk_api::containers::NetworkMode::Named("app".into())
        );
    }

    #[test]
    fn the_network_docs_example_is_valid() {
        let docs = include_str!("../../../docs/NETWORK.md");
        let block = docs
            .split("User-data makes them")
            .nth(1)
            .and_then(|s| s.split("```toml").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("NETWORK.md's user-data example");
        let doc = UserData::parse(block).unwrap();
        assert_eq!(doc.networks[0].name, "app");
        assert_eq!(doc.containers[0].network_aliases, ["database"]);
    }

    #[test]
    fn time_adds_to_agent_toml() {
        let doc = UserData::parse(
            "[time]\nservers = [\"192.0.2.123\", \"time.example:123\"]\nstep_threshold_ms = 500\n",
        )
        .unwrap();
        let time = doc.time.unwrap();
        assert_eq!(time.servers, ["192.0.2.123", "time.example:123"]);
        assert_eq!(time.step_threshold_ms, Some(500));
        assert_eq!(time.enabled, None);
    }

    #[test]
    fn the_readme_example_is_valid() {
        let doc = UserData::parse(include_str!("../../../examples/user-data.toml")).unwrap();
        assert_eq!(doc.hostname.as_deref(), Some("web-1"));
        assert_eq!(doc.containers[0].name, "web");
    }

    #[test]
    fn mistakes_name_their_place() {
        let cases = [
            ("hostname = 5\n", "line 1, column 12"),
            ("hostnme = \"a\"\n", "hostnme"),
            ("hostname = \"-bad\"\n", "hostname: `-bad`"),
            (
                "[[containers]]\nname = \"a\"\nimage = \"i\"\nrestart = \"sometimes\"\n",
                "line 4",
            ),
            ("[[containers]]\nimage = \"i\"\n", "containers[0].name"),
            (
                "[[containers]]\nname = \"a\"\nimage = \"i\"\n[[containers]]\nname = \"a\"\nimage = \"j\"\n",
                "containers[1].name: `a` is used twice",
            ),
            (
                "[[containers]]\nname = \"a\"\nimage = \"i\"\nmemroy = 5\n",
                "memroy",
            ),
            (
                "[network]\n[[network.interfaces]]\naddress = \"10.0.0.1\"\n",
                "network.interfaces[0].address",
            ),
            ("[update]\nrepository = \"ftp://x\"\n", "update.repository"),
            ("[time]\nservers = [\"a b\"]\n", "time.servers[0]: `a b`"),
            ("[time]\nsever = []\n", "sever"),
            ("[network]\ndns = [\"not-an-ip\"]\n", "line 2"),
            (
                "[[containers]]\nname = \"a\"\nimage = \"i\"\nnetwork = \"app\"\n",
                "containers[0].network: `app` is none of",
            ),
            (
                "[[networks]]\nname = \"app\"\nsubnet = \"10.1.0.1/24\"\n",
                "networks[0]: --subnet 10.1.0.1/24: the address has host bits set",
            ),
            (
                "[[networks]]\nname = \"host\"\n",
                "networks[0]: network name \"host\" is reserved",
            ),
            (
                "[[networks]]\nname = \"a\"\n[[networks]]\nname = \"a\"\n",
                "networks[1].name: `a` is used twice",
            ),
            ("[[networks]]\nname = \"a\"\nsubnett = \"x\"\n", "subnett"),
        ];
        for (text, expected) in cases {
            let err = UserData::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
