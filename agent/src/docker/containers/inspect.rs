//! A Husk container as Docker shows it: `GET /containers/{id}/json`
//! (Docker's `ContainerJSON`) and the entries of `GET /containers/json`
//! (`Container`), with Docker's field names so the CLI decodes them
//! (`docker logs` and `attach` read `Config.Tty` and `State` from here).

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::super::networks::{NetworkIds, container_networks, ids_by_name};
use super::super::time::{ZERO_TIME, human, since_ms};
use super::super::{Docker, ids};
use super::IdPath;
use crate::containers::{ContainerInfo, Status};
use husk_api::containers::PortMapping;

/// Docker's `State.Status`.
fn state_name(info: &ContainerInfo) -> &'static str {
    match info.status {
        Status::Created => "created",
        Status::Running => "running",
        Status::Restarting => "restarting",
        Status::Exited => "exited",
    }
}

/// `ps`'s STATUS column, written by the server ("Up 5 seconds").
pub fn status_text(info: &ContainerInfo) -> String {
    let code = info.exit_code.unwrap_or(0);
    let finished = || human(since_ms(info.finished_ms.unwrap_or(info.created_ms)));
    match info.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            human(since_ms(info.started_ms.unwrap_or(info.created_ms)))
        ),
        Status::Restarting => format!("Restarting ({code}) {} ago", finished()),
        Status::Exited => format!("Exited ({code}) {} ago", finished()),
    }
}

fn network_mode(info: &ContainerInfo) -> String {
    match info.options.network {
        husk_api::containers::NetworkMode::Bridge => "default".into(),
        ref other => other.to_string(),
    }
}

/// `PortBindings` keys: `80/tcp`.
fn port_key(port: &PortMapping) -> String {
    format!("{}/{}", port.container_port, port.protocol)
}

fn host_ip(port: &PortMapping) -> String {
    port.host_ip
        .map_or_else(|| "0.0.0.0".into(), |ip| ip.to_string())
}

/// The ports published now (`PortMapping`s the agent bound).
fn published(info: &ContainerInfo) -> &[PortMapping] {
    info.network.as_ref().map_or(&[], |n| n.ports.as_slice())
}

fn mounts(info: &ContainerInfo) -> Vec<Value> {
    info.options
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind.to_string(),
                "Name": if m.kind == husk_api::containers::MountKind::Volume { m.source.clone() } else { String::new() },
                "Source": m.source,
                "Destination": m.target,
                "Mode": if m.read_only { "ro" } else { "" },
                "RW": !m.read_only,
                "Propagation": "rprivate",
            })
        })
        .collect()
}

/// `docker ps`'s entry.
pub fn list_entry(info: &ContainerInfo, network_ids: &NetworkIds) -> Value {
    let ports: Vec<Value> = published(info)
        .iter()
        .map(|p| {
            json!({"IP": host_ip(p), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.protocol.to_string()})
        })
        .collect();
    json!({
        "Id": ids::id_of(info),
        "Names": [format!("/{}", info.name)],
        "Image": info.options.image,
        "ImageID": info.image_id,
        "Command": shell_words(&info.command),
        "Created": info.created_ms / 1000,
        "Ports": ports,
        "Labels": info.options.labels,
        "State": state_name(info),
        "Status": status_text(info),
        "HostConfig": {"NetworkMode": network_mode(info)},
        "NetworkSettings": {"Networks": container_networks(info, network_ids)},
        "Mounts": mounts(info),
    })
}

/// The command as `ps` shows it: words joined, quoted where needed.
fn shell_words(command: &[String]) -> String {
    command
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `docker inspect`'s document. `env` is the process's environment (the
/// image's with the user's over it); `network_ids`: the networks' Docker
/// ids by name.
pub fn inspect_json(
    info: &ContainerInfo,
    env: Vec<String>,
    root: &std::path::Path,
    network_ids: &NetworkIds,
) -> Value {
    let o = &info.options;
    let (path, args) = match info.command.split_first() {
        Some((path, args)) => (path.clone(), args.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let mut port_bindings = serde_json::Map::new();
    for p in &o.ports {
        let entry = port_bindings
            .entry(port_key(p))
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(json!({"HostIp": p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(), "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() }}));
        }
    }
    let mut ports = serde_json::Map::new();
    for p in published(info) {
        let entry = ports.entry(port_key(p)).or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(json!({"HostIp": host_ip(p), "HostPort": p.host_port.to_string()}));
        }
    }
    let restart = o.restart.to_string();
    let (restart_name, retries) = match restart.split_once(':') {
        Some((name, n)) => (name.to_owned(), n.parse::<u32>().unwrap_or(0)),
        None => (restart.clone(), 0),
    };
    let network = info.network.as_ref();
    let dir = root.join("containers").join(&info.name);
    json!({
        "Id": ids::id_of(info),
        "Created": info.created,
        "Path": path,
        "Args": args,
        "State": {
            "Status": state_name(info),
            "Running": matches!(info.status, Status::Running | Status::Restarting),
            "Paused": false,
            "Restarting": info.status == Status::Restarting,
            "OOMKilled": info.oom_killed,
            "Dead": false,
            "Pid": info.pid.unwrap_or(0),
            "ExitCode": info.exit_code.unwrap_or(0),
            "Error": info.error.clone().unwrap_or_default(),
            "StartedAt": info.started.clone().unwrap_or_else(|| ZERO_TIME.into()),
            "FinishedAt": info.finished.clone().unwrap_or_else(|| ZERO_TIME.into()),
        },
        "Image": info.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": dir.join("logs/container.log"),
        "Name": format!("/{}", info.name),
        "RestartCount": info.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": null,
            "NetworkMode": network_mode(info),
            "PortBindings": port_bindings,
            "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": retries},
            "AutoRemove": o.auto_remove,
            "Dns": o.dns.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "ExtraHosts": o.extra_hosts,
            "Privileged": o.privileged,
            "ReadonlyRootfs": o.read_only,
            "Memory": o.memory.unwrap_or(0),
            "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9) as i64),
            "PidsLimit": o.pids_limit,
            "BlkioWeight": o.io_weight.unwrap_or(0),
            "UsernsMode": if o.userns.is_some() { "private" } else { "" },
            "CgroupnsMode": "private",
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": dir.join("upper"),
            "WorkDir": dir.join("work"),
            "MergedDir": dir.join("rootfs"),
        }},
        "Mounts": mounts(info),
        "Config": {
            "Hostname": o.hostname.clone().unwrap_or_else(|| info.name.clone()),
            "Domainname": "",
            "User": o.user.clone().unwrap_or_default(),
            "AttachStdin": o.interactive,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": o.tty,
            "OpenStdin": o.interactive,
            "StdinOnce": o.interactive,
            "Env": env,
            "Cmd": o.cmd,
            "Image": o.image,
            "Volumes": null,
            "WorkingDir": o.workdir.clone().unwrap_or_default(),
            "Entrypoint": o.entrypoint,
            "OnBuild": null,
            "Labels": o.labels,
        },
        "NetworkSettings": {
            "Bridge": network.map(|n| n.bridge.clone()).unwrap_or_default(),
            "SandboxID": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": "",
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": "",
            "Gateway": network.map(|n| n.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": network.and_then(|n| n.ipv6_address).map(|ip| ip.to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": network.and_then(|n| n.ipv6_prefix_len).unwrap_or(0),
            "IPAddress": network.map(|n| n.ip_address.to_string()).unwrap_or_default(),
            "IPPrefixLen": network.map_or(0, |n| n.prefix_len),
            "IPv6Gateway": network.and_then(|n| n.ipv6_gateway).map(|ip| ip.to_string()).unwrap_or_default(),
            "MacAddress": network.map(|n| n.mac_address.clone()).unwrap_or_default(),
            "Networks": container_networks(info, network_ids),
        },
    })
}

/// The image's environment with the user's entries over it, as the
/// process gets it (Docker shows the merged list).
async fn environment(docker: &Docker, info: &ContainerInfo) -> Vec<String> {
    let user = info.options.env.clone();
    let Ok(store) = docker.images.shared() else {
        return user;
    };
    let Ok(id) = info
        .image_id
        .parse::<husk_store::Digest>()
        .map(husk_store::ImageId)
    else {
        return user;
    };
    let image_env = tokio::task::spawn_blocking(move || {
        let store = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store
            .image_config(&id)
            .ok()
            .and_then(|c| c.config().as_ref().and_then(|c| c.env().clone()))
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let key = |e: &String| e.split('=').next().unwrap_or_default().to_owned();
    let mut env: Vec<String> = image_env
        .into_iter()
        .filter(|e| !user.iter().any(|u| key(u) == key(e)))
        .collect();
    env.extend(user);
    env
}

/// `GET /containers/{id}/json`.
pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>| async move {
            let info = ids::resolve(&docker.manager, &path.id)?;
            let env = environment(&docker, &info).await;
            let network_ids = ids_by_name(&docker).await;
            Ok::<_, super::super::error::DockerError>(Json(inspect_json(
                &info,
                env,
                &docker.root,
                &network_ids,
            )))
        },
    )
}
