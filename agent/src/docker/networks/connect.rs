//! `POST /networks/{id}/connect` and `/disconnect` (`docker network
//! connect --alias`, and docker-compose's networks of a service beyond
//! its first): Husk's `network connect` and `disconnect`. A container
//! joins with its aliases, and on a user network with its short id as
//! one more (dockerd's rule, which docker-compose looks for); fixed
//! addresses, links and driver options are refused by name.

use husk_api::networks::NetworkConnect;
use serde_json::{Map, Value};

use super::super::error::DockerError;
use super::super::fields::{refuse_rest, take};
use super::super::{Docker, ids};
use super::view::DockerNetwork;

/// Output fields of an `EndpointSettings` the CLI may send back empty.
const OUTPUT_FIELDS: [&str; 8] = [
    "NetworkID",
    "EndpointID",
    "Gateway",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
];

fn bad(message: impl Into<String>) -> DockerError {
    DockerError::bad_request(message)
}

/// `EndpointConfig` of a connect: its aliases (fixed addresses, links,
/// a MAC and driver options are refused).
pub fn endpoint_aliases(mut endpoint: Map<String, Value>) -> Result<Vec<String>, DockerError> {
    const E: &str = "EndpointConfig.";
    let aliases: Vec<String> = take(&mut endpoint, E, "Aliases")?.unwrap_or_default();
    if let Some(ipam) = take::<Map<String, Value>>(&mut endpoint, E, "IPAMConfig")? {
        refuse_rest(&ipam, "EndpointConfig.IPAMConfig.")
            .map_err(|e| bad(format!("{e} (Husk hands out a network's addresses itself)")))?;
    }
    for key in OUTPUT_FIELDS {
        endpoint.remove(key);
    }
    refuse_rest(&endpoint, E)?;
    Ok(aliases)
}

/// Docker's built-in modes are not networks a container joins later.
fn refuse_mode(network: &DockerNetwork, verb: &str) -> Result<(), DockerError> {
    match network {
        DockerNetwork::Host | DockerNetwork::Null => Err(bad(format!(
            "container cannot be {verb} network {}: it is a network mode, chosen at create (--network {})",
            network.name(),
            network.name()
        ))),
        DockerNetwork::Husk(_) => Ok(()),
    }
}

pub async fn connect(
    docker: &Docker,
    network: &DockerNetwork,
    mut body: Map<String, Value>,
) -> Result<(), DockerError> {
    let reference: String = take(&mut body, "", "Container")?.unwrap_or_default();
    let endpoint: Map<String, Value> = take(&mut body, "", "EndpointConfig")?.unwrap_or_default();
    refuse_rest(&body, "")?;
    refuse_mode(network, "connected to")?;
    let info = ids::resolve(&docker.manager, &reference)?;
    let mut aliases = endpoint_aliases(endpoint)?;
    if network.user().is_some() {
        let short = ids::id_of(&info)[..12].to_owned();
        if !aliases.contains(&short) {
            aliases.push(short);
        }
    }
    let request = NetworkConnect {
        container: info.name.clone(),
        aliases,
    };
    docker
        .manager
        .connect_network(network.name(), &request)
        .await?;
    log::info!(
        "Docker API: connected {} to network {}",
        info.name,
        network.name()
    );
    Ok(())
}

pub async fn disconnect(
    docker: &Docker,
    network: &DockerNetwork,
    mut body: Map<String, Value>,
) -> Result<(), DockerError> {
    let reference: String = take(&mut body, "", "Container")?.unwrap_or_default();
    // dockerd's force takes away the endpoint of a container that is
    // gone; a removed container has none left here.
    let _: Option<bool> = take(&mut body, "", "Force")?;
    refuse_rest(&body, "")?;
    refuse_mode(network, "disconnected from")?;
    let name = ids::name_of(&docker.manager, &reference)?;
    docker
        .manager
        .disconnect_network(network.name(), &name)
        .await?;
    log::info!(
        "Docker API: disconnected {name} from network {}",
        network.name()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aliases(endpoint: Value) -> Result<Vec<String>, DockerError> {
        let Value::Object(endpoint) = endpoint else {
            panic!()
        };
        endpoint_aliases(endpoint)
    }

    #[test]
    fn endpoints_give_their_aliases_and_nothing_else() {
        // docker network connect --alias api NET web
        assert_eq!(
            aliases(
                json!({"Aliases": ["api"], "IPAMConfig": null, "Links": null,
                "NetworkID": "", "IPAddress": "", "DriverOpts": null})
            )
            .unwrap(),
            ["api"]
        );
        assert_eq!(
            aliases(json!({"IPAMConfig": {}})).unwrap(),
            Vec::<String>::new()
        );
        for (endpoint, says) in [
            (
                json!({"IPAMConfig": {"IPv4Address": "10.0.0.9"}}),
                "IPv4Address",
            ),
            (json!({"Links": ["db:db"]}), "Links"),
            (json!({"MacAddress": "02:42:00:00:00:01"}), "MacAddress"),
            (json!({"DriverOpts": {"x": "y"}}), "DriverOpts"),
        ] {
            let err = aliases(endpoint).unwrap_err().message;
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn modes_are_not_joined_later() {
        let err = refuse_mode(&DockerNetwork::Host, "connected to").unwrap_err();
        assert!(err.message.contains("network host"), "{}", err.message);
        assert!(refuse_mode(&DockerNetwork::Null, "disconnected from").is_err());
    }
}
