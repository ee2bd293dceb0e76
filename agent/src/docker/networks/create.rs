//! `POST /networks/create`: Docker's `NetworkCreateRequest` read into
//! Husk's `NetworkCreate` (`docker network create`, and each network of a
//! compose file). Husk's networks are bridges with its own IPAM: another
//! driver, a gateway that is not the subnet's first address, an address
//! range, a driver option that would change what the bridge does — each
//! is refused by name (400), never dropped. What means nothing here
//! (`CheckDuplicate`: names are always unique; `Attachable`: for swarm
//! services, which do not exist) is accepted.

use std::collections::BTreeMap;

use husk_api::networks::NetworkCreate;
use ipnet::IpNet;
use serde_json::{Map, Value};

use super::super::error::DockerError;
use super::super::fields::{refuse_rest, take};

fn bad(message: impl Into<String>) -> DockerError {
    DockerError::bad_request(message)
}

/// Driver options that ask for what a Husk network does anyway.
const HARMLESS_OPTIONS: [(&str, &str); 3] = [
    ("com.docker.network.bridge.enable_icc", "true"),
    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
    ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
];

/// The create body as Husk's request.
pub fn request(mut body: Map<String, Value>) -> Result<NetworkCreate, DockerError> {
    const N: &str = "";
    let name: String = take(&mut body, N, "Name")?.unwrap_or_default();
    if name.is_empty() {
        return Err(bad("Name is required: the network needs a name"));
    }
    // Husk refuses a name taken, always.
    let _: Option<bool> = take(&mut body, N, "CheckDuplicate")?;
    // Swarm services attach to it or not; there are none.
    let _: Option<bool> = take(&mut body, N, "Attachable")?;
    match take::<String>(&mut body, N, "Driver")?.as_deref() {
        None | Some("" | "bridge") => {}
        Some(other) => {
            return Err(bad(format!(
                "network driver {other} is not supported by Husk (its networks are bridges: Driver bridge)"
            )));
        }
    }
    match take::<String>(&mut body, N, "Scope")?.as_deref() {
        None | Some("" | "local") => {}
        Some(other) => {
            return Err(bad(format!(
                "network scope {other} is not supported by Husk (local only: there is no swarm)"
            )));
        }
    }
    let internal = take::<bool>(&mut body, N, "Internal")?.unwrap_or(false);
    let enable_ipv6 = take::<bool>(&mut body, N, "EnableIPv6")?.unwrap_or(false);
    let labels: BTreeMap<String, String> = take(&mut body, N, "Labels")?.unwrap_or_default();
    let options: BTreeMap<String, String> = take(&mut body, N, "Options")?.unwrap_or_default();
    for (key, value) in &options {
        if !HARMLESS_OPTIONS.contains(&(key.as_str(), value.as_str())) {
            return Err(bad(format!(
                "network option {key}={value} is not supported by Husk (its bridges are named and run by the agent)"
            )));
        }
    }
    let (subnet, subnet_v6) = match take::<Map<String, Value>>(&mut body, N, "IPAM")? {
        Some(ipam) => ipam_subnets(ipam)?,
        None => (None, None),
    };
    if subnet_v6.is_some() && !enable_ipv6 {
        return Err(bad(
            "IPAM.Config has an IPv6 subnet but EnableIPv6 is false (docker network create --ipv6)",
        ));
    }
    // Ingress, ConfigOnly, ConfigFrom: swarm's.
    refuse_rest(&body, "")?;
    Ok(NetworkCreate {
        name,
        subnet,
        // Docker's networks are IPv4 only unless asked.
        ipv6: Some(enable_ipv6),
        subnet_v6,
        internal,
        labels,
    })
}

/// `IPAM`: the default driver, at most one IPv4 and one IPv6 subnet,
/// each with its first address as the gateway (Husk's bridges take it).
fn ipam_subnets(
    mut ipam: Map<String, Value>,
) -> Result<(Option<String>, Option<String>), DockerError> {
    const I: &str = "IPAM.";
    match take::<String>(&mut ipam, I, "Driver")?.as_deref() {
        None | Some("" | "default") => {}
        Some(other) => {
            return Err(bad(format!(
                "IPAM driver {other} is not supported by Husk (default only)"
            )));
        }
    }
    let configs: Vec<Map<String, Value>> = take(&mut ipam, I, "Config")?.unwrap_or_default();
    refuse_rest(&ipam, I)?;
    let (mut v4, mut v6) = (None, None);
    for mut config in configs {
        const C: &str = "IPAM.Config.";
        let subnet: String = take(&mut config, C, "Subnet")?.unwrap_or_default();
        let gateway: String = take(&mut config, C, "Gateway")?.unwrap_or_default();
        let range: String = take(&mut config, C, "IPRange")?.unwrap_or_default();
        refuse_rest(&config, C)?;
        if subnet.is_empty() {
            if gateway.is_empty() && range.is_empty() {
                continue;
            }
            return Err(bad("IPAM.Config: a Gateway or IPRange needs its Subnet"));
        }
        // Husk's own parser names a malformed subnet; here only what it
        // must be to compare.
        let net: Option<IpNet> = subnet.parse().ok();
        if !gateway.is_empty() {
            check_gateway(&subnet, net, &gateway)?;
        }
        if !range.is_empty()
            && range.parse::<IpNet>().ok().map(|r| r.trunc()) != net.map(|n| n.trunc())
        {
            return Err(bad(format!(
                "IPAM.Config IPRange {range} is not supported by Husk (addresses are handed out from the whole subnet {subnet})"
            )));
        }
        let slot = if matches!(net, Some(IpNet::V6(_))) {
            &mut v6
        } else {
            &mut v4
        };
        if slot.replace(subnet.clone()).is_some() {
            return Err(bad(format!(
                "IPAM.Config: more than one {} subnet ({subnet}); a Husk network has one of each",
                if matches!(net, Some(IpNet::V6(_))) {
                    "IPv6"
                } else {
                    "IPv4"
                }
            )));
        }
    }
    Ok((v4, v6))
}

/// A bridge's gateway is its subnet's first address.
fn check_gateway(subnet: &str, net: Option<IpNet>, gateway: &str) -> Result<(), DockerError> {
    let Some(net) = net else {
        return Ok(());
    };
    let first = match net.trunc() {
        IpNet::V4(n) => std::net::IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) => std::net::IpAddr::V6((u128::from(n.network()) | 1).into()),
    };
    if gateway.parse::<std::net::IpAddr>().ok() != Some(first) {
        return Err(bad(format!(
            "IPAM.Config Gateway {gateway} is not supported by Husk: a network's gateway is its subnet's first address ({first} of {subnet})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Result<NetworkCreate, DockerError> {
        let Value::Object(body) = body else { panic!() };
        request(body)
    }

    #[test]
    fn reads_what_the_cli_and_compose_send() {
        // docker network create --subnet 10.40.0.0/24 --gateway 10.40.0.1 --label team=a app
        let cli = read(json!({
            "Name": "app", "CheckDuplicate": true, "Driver": "bridge", "Scope": "",
            "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": {},
                "Config": [{"Subnet": "10.40.0.0/24", "Gateway": "10.40.0.1"}]},
            "Internal": false, "Attachable": false, "Ingress": false,
            "ConfigOnly": false, "ConfigFrom": null, "Options": {}, "Labels": {"team": "a"}
        }))
        .unwrap();
        assert_eq!(cli.name, "app");
        assert_eq!(cli.subnet.as_deref(), Some("10.40.0.0/24"));
        assert_eq!(cli.ipv6, Some(false));
        assert_eq!(cli.labels["team"], "a");
        // docker-compose 1.29: attachable, labels, no IPAM.
        let compose = read(json!({
            "Name": "shop_front", "Driver": null, "Options": {}, "CheckDuplicate": true,
            "Labels": {"com.docker.compose.network": "front", "com.docker.compose.project": "shop"},
            "Attachable": true
        }))
        .unwrap();
        assert_eq!(compose.labels["com.docker.compose.network"], "front");
        assert_eq!(compose.subnet, None);
        let v6 = read(json!({"Name": "d", "EnableIPv6": true, "IPAM": {"Config": [
            {"Subnet": "10.1.0.0/24"}, {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}]}}))
        .unwrap();
        assert_eq!(v6.subnet_v6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(v6.ipv6, Some(true));
    }

    #[test]
    fn refuses_what_it_cannot_honour_by_name() {
        for (body, says) in [
            (json!({"Name": "a", "Driver": "overlay"}), "driver overlay"),
            (json!({"Name": "a", "Driver": "macvlan"}), "driver macvlan"),
            (json!({"Name": "a", "Scope": "swarm"}), "scope swarm"),
            (json!({"Name": "a", "Ingress": true}), "Ingress"),
            (
                json!({"Name": "a", "ConfigFrom": {"Network": "b"}}),
                "ConfigFrom",
            ),
            (
                json!({"Name": "a", "Options": {"com.docker.network.bridge.name": "br0"}}),
                "com.docker.network.bridge.name",
            ),
            (
                json!({"Name": "a", "Options": {"com.docker.network.bridge.enable_ip_masquerade": "false"}}),
                "enable_ip_masquerade=false",
            ),
            (
                json!({"Name": "a", "IPAM": {"Driver": "dhcp"}}),
                "IPAM driver dhcp",
            ),
            (
                json!({"Name": "a", "IPAM": {"Options": {"x": "y"}}}),
                "IPAM.Options",
            ),
            (
                json!({"Name": "a", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254"}]}}),
                "Gateway 10.1.0.254",
            ),
            (
                json!({"Name": "a", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24", "IPRange": "10.1.0.128/25"}]}}),
                "IPRange",
            ),
            (
                json!({"Name": "a", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24", "AuxiliaryAddresses": {"h": "10.1.0.5"}}]}}),
                "AuxiliaryAddresses",
            ),
            (
                json!({"Name": "a", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24"}, {"Subnet": "10.2.0.0/24"}]}}),
                "more than one IPv4",
            ),
            (
                json!({"Name": "a", "IPAM": {"Config": [{"Subnet": "fd00::/64"}]}}),
                "EnableIPv6",
            ),
            (json!({"Driver": "bridge"}), "Name is required"),
        ] {
            let err = read(body).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(err.message.contains(says), "{says}: {}", err.message);
        }
    }
}
