//! `huskctl network …`: the containers' networks (docker network's verbs).

use std::collections::BTreeMap;

use clap::Subcommand;
use husk_api::Client;
use husk_api::client::ClientError;
use husk_api::networks::{
    NETWORKS_PATH, Network, NetworkConnect, NetworkCreate, NetworkDisconnect, NetworkList,
    RemovedNetwork, network_path,
};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Make a user network: a bridge of its own, whose containers find
    /// each other by name.
    Create {
        /// Its IPv4 subnet (default: the first free /16 of 172.18–172.30).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// Its IPv6 prefix (default: a unique local /64, if dual stack).
        #[arg(long = "subnet-v6", value_name = "CIDR")]
        subnet_v6: Option<String>,
        /// Dual stack (default: as the agent's bridge).
        #[arg(long)]
        ipv6: Option<bool>,
        /// No way out: its containers reach each other and nothing else.
        #[arg(long)]
        internal: bool,
        /// KEY=VALUE kept with the network (shown by inspect); repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        name: String,
    },
    /// List the networks.
    Ls,
    /// A network's details as JSON, its containers included.
    Inspect { name: String },
    /// Remove user networks (none of whose containers may still exist).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Put a container on one more network: now if it runs, and at
    /// every start.
    Connect {
        /// Another name it answers to there; repeatable.
        #[arg(long = "alias", value_name = "NAME")]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Take a connected network out of a container.
    Disconnect { network: String, container: String },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.into(), value.into())),
        _ => Err(format!("label `{text}`: expected KEY=VALUE")),
    }
}

pub async fn run(client: &Client, command: NetworkCommand) -> Result<(), ClientError> {
    match command {
        NetworkCommand::Create {
            subnet,
            subnet_v6,
            ipv6,
            internal,
            labels,
            name,
        } => {
            let request = NetworkCreate {
                name,
                subnet,
                ipv6,
                subnet_v6,
                internal,
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let network: Network = client.post(NETWORKS_PATH, &request).await?;
            println!("{}", network.name);
        }
        NetworkCommand::Ls => {
            let list: NetworkList = client.get(NETWORKS_PATH).await?;
            print!("{}", table(&list.networks));
        }
        NetworkCommand::Inspect { name } => {
            let network: Network = client.get(&network_path(&name)).await?;
            println!("{}", serde_json::to_string_pretty(&network)?);
        }
        NetworkCommand::Connect {
            alias,
            network,
            container,
        } => {
            let request = NetworkConnect {
                container,
                aliases: alias,
            };
            let _: Network = client
                .post(&format!("{}/connect", network_path(&network)), &request)
                .await?;
        }
        NetworkCommand::Disconnect { network, container } => {
            let request = NetworkDisconnect { container };
            let _: Network = client
                .post(&format!("{}/disconnect", network_path(&network)), &request)
                .await?;
        }
        NetworkCommand::Rm { names } => {
            // As docker: every name is tried, each failure said, the
            // first one returned.
            let mut first_error = None;
            for name in names {
                match client.delete::<RemovedNetwork>(&network_path(&name)).await {
                    Ok(removed) => println!("{}", removed.name),
                    Err(e) if first_error.is_none() => first_error = Some(e),
                    Err(e) => eprintln!("huskctl: {e}"),
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `docker network ls`'s columns, with the subnet instead of the driver.
fn table(networks: &[Network]) -> String {
    let mut out = format!(
        "{:<24} {:<15} {:<18} {:<10} {}\n",
        "NAME", "INTERFACE", "SUBNET", "SCOPE", "CONTAINERS"
    );
    for n in networks {
        let scope = if n.internal { "internal" } else { "nat" };
        out.push_str(&format!(
            "{:<24} {:<15} {:<18} {:<10} {}\n",
            n.name,
            n.interface,
            n.subnet,
            scope,
            n.containers.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_pairs() {
        assert_eq!(
            parse_label("com.docker.compose.project=shop"),
            Ok(("com.docker.compose.project".into(), "shop".into()))
        );
        assert_eq!(parse_label("keep="), Ok(("keep".into(), String::new())));
        assert!(parse_label("=x").is_err());
        assert!(parse_label("nothing").is_err());
    }

    #[test]
    fn the_list_has_a_line_per_network() {
        let network = Network {
            name: "app".into(),
            interface: "husk1a2b3c4d".into(),
            subnet: "172.18.0.0/16".into(),
            gateway: "172.18.0.1".parse().unwrap(),
            subnet_v6: None,
            gateway_v6: None,
            internal: true,
            builtin: false,
            dns: true,
            created: 0,
            labels: BTreeMap::new(),
            containers: Vec::new(),
        };
        let text = table(&[network]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].starts_with("app "), "{text}");
        assert!(lines[1].contains("internal"), "{text}");
    }
}
