//! `huskctl volume …`: named volumes (docker volume's verbs).

use std::collections::BTreeMap;

use clap::Subcommand;
use husk_api::Client;
use husk_api::client::ClientError;
use husk_api::volumes::{
    PrunedVolumes, RemovedVolume, VOLUMES_PATH, Volume, VolumeCreate, VolumeList, volume_path,
};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Make a volume (without NAME: a random one); an existing name is
    /// given back as it is.
    Create {
        /// KEY=VALUE, repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        name: Option<String>,
    },
    /// List the volumes.
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        json: bool,
    },
    /// Volumes' details as JSON, the containers using them included.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes, with their files (none may be used by a container).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.into(), value.into())),
        _ => Err(format!("label `{text}`: expected KEY=VALUE")),
    }
}

pub async fn run(client: &Client, command: VolumeCommand) -> Result<(), ClientError> {
    match command {
        VolumeCommand::Create { labels, name } => {
            let request = VolumeCreate {
                name: name.unwrap_or_default(),
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let volume: Volume = client.post(VOLUMES_PATH, &request).await?;
            println!("{}", volume.name);
        }
        VolumeCommand::Ls { quiet, json } => {
            let list: VolumeList = client.get(VOLUMES_PATH).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if quiet {
                for volume in &list.volumes {
                    println!("{}", volume.name);
                }
            } else {
                print!("{}", table(&list.volumes));
            }
            for damaged in &list.damaged {
                eprintln!("huskctl: {damaged}");
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut volumes = Vec::new();
            for name in names {
                volumes.push(client.get::<Volume>(&volume_path(&name)).await?);
            }
            println!("{}", serde_json::to_string_pretty(&volumes)?);
        }
        VolumeCommand::Rm { names } => {
            // As docker: every name is tried, each failure said, the
            // first one returned.
            let mut first_error = None;
            for name in names {
                match client.delete::<RemovedVolume>(&volume_path(&name)).await {
                    Ok(removed) => println!("{}", removed.removed),
                    Err(e) if first_error.is_none() => first_error = Some(e),
                    Err(e) => eprintln!("huskctl: {e}"),
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        VolumeCommand::Prune => {
            let pruned: PrunedVolumes = client.post_empty(&format!("{VOLUMES_PATH}/prune")).await?;
            for name in pruned.removed {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// `docker volume ls`'s columns, with the users instead of the driver.
fn table(volumes: &[Volume]) -> String {
    let mut out = format!("{:<64} {:<25} {}\n", "NAME", "CREATED", "USED BY");
    for v in volumes {
        let users = if v.used_by.is_empty() {
            "-".to_string()
        } else {
            v.used_by.join(",")
        };
        out.push_str(&format!("{:<64} {:<25} {users}\n", v.name, v.created));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_a_line_per_volume() {
        let volume = Volume {
            name: "data".into(),
            mountpoint: "/var/lib/husk/volumes/data/_data".into(),
            created: "2026-12-02T10:00:00Z".into(),
            labels: BTreeMap::new(),
            anonymous: false,
            used_by: vec!["db".into(), "backup".into()],
        };
        let text = table(&[volume]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].starts_with("data "), "{text}");
        assert!(lines[1].ends_with("db,backup"), "{text}");
        assert!(parse_label("a=b").is_ok());
        assert!(parse_label("=b").is_err());
    }
}
