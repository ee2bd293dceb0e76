//! `POST /containers/create?name=`: Docker's create body (`Config` with
//! `HostConfig` and `NetworkingConfig`) read into Husk's `RunOptions`,
//! then created by the manager, so its limits, admission and security
//! policy apply as to Husk's own API.
//!
//! Every field is either mapped, ignored for a stated reason (it means
//! nothing here: `AttachStdout`, `ExposedPorts`…), or refused when it
//! holds anything but its empty value: a field that changes isolation or
//! limits (`CapAdd`, `SecurityOpt`, `Devices`, `PidMode`…) is never
//! silently dropped, and the refusal names it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, post};
use husk_api::containers::{
    Mount, NetworkMode, PortMapping, PortProtocol, RestartPolicy, RunOptions, parse_mount_flag,
    parse_tmpfs_flag, parse_volume_flag,
};
use serde_json::{Map, Value, json};

use super::super::error::DockerError;
use super::super::fields::{refuse_rest, take};
use super::super::query::Params;
use super::super::{Docker, ids};
use super::QueryMap;

/// Fields of `Config` that mean nothing to Husk, and why they may go.
const IGNORED_CONFIG: [&str; 7] = [
    // Attach decides what it streams.
    "AttachStdout",
    "AttachStderr",
    // Only with stdin, which is refused.
    "StdinOnce",
    // Documentation of the image; `-p` publishes.
    "ExposedPorts",
    // Windows only.
    "ArgsEscaped",
    // Builds only.
    "OnBuild",
    "Shell",
];

/// Fields of `HostConfig` that mean nothing to Husk.
const IGNORED_HOST_CONFIG: [&str; 2] = [
    // The terminal's first size: the CLI resizes it once attached.
    "ConsoleSize",
    // The CLI writes the file itself.
    "ContainerIDFile",
];

fn bad(message: impl Into<String>) -> DockerError {
    DockerError::bad_request(message)
}

/// Docker's `StrSlice`: a string or an array of strings.
fn take_strings(
    map: &mut Map<String, Value>,
    section: &str,
    key: &str,
) -> Result<Option<Vec<String>>, DockerError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s])),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| bad(format!("{section}{key}: {e}"))),
    }
}

/// `POST /containers/create`: `{"Id": …, "Warnings": []}`, 201.
pub fn route() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, query: QueryMap, body: Bytes| async move {
            let params = Params::from(query)?;
            if let Some(platform) = params.str("platform")
                && !platform.starts_with("linux")
            {
                return Err(bad(format!(
                    "platform {platform}: Husk runs linux containers"
                )));
            }
            let body: Value = serde_json::from_slice(&body)
                .map_err(|e| bad(format!("invalid JSON in the create body: {e}")))?;
            let Value::Object(body) = body else {
                return Err(bad("the create body is not a JSON object"));
            };
            let policy = docker.manager.config().policy.clone();
            let mut options = run_options(body, &policy)?;
            options.network = resolve_network(&docker, options.network).await;
            let info = match params.str("name") {
                Some(name) => {
                    options.name = name.strip_prefix('/').unwrap_or(name).to_owned();
                    docker.manager.create(options).await?
                }
                None => create_named(&docker, options).await?,
            };
            let id = ids::id_of(&info);
            if matches!(info.options.network, NetworkMode::Named(_)) {
                // dockerd's alias of every container on a user network.
                let short = vec![id[..12].to_owned()];
                if let Err(e) = docker.manager.add_network_aliases(&info.name, &short).await {
                    let _ = docker.manager.remove(&info.name, true).await;
                    return Err(e.into());
                }
            }
            log::info!("Docker API: created {} ({id})", info.name);
            Ok::<_, DockerError>((StatusCode::CREATED, Json(json!({"Id": id, "Warnings": []}))))
        },
    )
}

/// `--network` may name a network by its Docker id or an id prefix, as
/// dockerd takes it; a name stays as it is.
async fn resolve_network(docker: &Docker, mode: NetworkMode) -> NetworkMode {
    match mode {
        NetworkMode::Named(reference) => {
            match super::super::networks::network_name(docker, &reference).await {
                Some(name) => NetworkMode::from(name),
                None => NetworkMode::Named(reference),
            }
        }
        other => other,
    }
}

/// Creates under a generated name, trying another if a concurrent
/// create took it first.
async fn create_named(
    docker: &Docker,
    options: RunOptions,
) -> Result<crate::containers::ContainerInfo, DockerError> {
    let mut tries = 0;
    loop {
        let mut named = options.clone();
        named.name = ids::generate_name(&docker.manager);
        match docker.manager.create(named).await {
            Err(crate::containers::ManagerError::Conflict(_)) if tries < 5 => tries += 1,
            result => return Ok(result?),
        }
    }
}

/// The create body as Husk's options (name aside).
pub fn run_options(
    mut config: Map<String, Value>,
    policy: &husk_spec::SecurityPolicy,
) -> Result<RunOptions, DockerError> {
    const C: &str = "";
    let image: String = take(&mut config, C, "Image")?.unwrap_or_default();
    if image.is_empty() {
        return Err(bad("Config.Image is required"));
    }
    let mut opts = RunOptions::new("", image);
    opts.tty = take::<bool>(&mut config, C, "Tty")?.unwrap_or(false);
    // `-i`: the stdin is held open for attaches; `StdinOnce` (closed at
    // the first attach's EOF) is what the shim does anyway.
    let open_stdin = take::<bool>(&mut config, C, "OpenStdin")?.unwrap_or(false);
    let attach_stdin = take::<bool>(&mut config, C, "AttachStdin")?.unwrap_or(false);
    opts.interactive = open_stdin || attach_stdin;
    opts.cmd = take_strings(&mut config, C, "Cmd")?.filter(|cmd| !cmd.is_empty());
    opts.entrypoint = take_strings(&mut config, C, "Entrypoint")?.map(|entrypoint| {
        // `--entrypoint ""` arrives as [""]: it clears the image's.
        if entrypoint.iter().all(String::is_empty) {
            Vec::new()
        } else {
            entrypoint
        }
    });
    opts.env = take(&mut config, C, "Env")?.unwrap_or_default();
    opts.user = take::<String>(&mut config, C, "User")?.filter(|u| !u.is_empty());
    opts.workdir = take::<String>(&mut config, C, "WorkingDir")?.filter(|w| !w.is_empty());
    opts.hostname = take::<String>(&mut config, C, "Hostname")?.filter(|h| !h.is_empty());
    opts.labels = take::<BTreeMap<String, String>>(&mut config, C, "Labels")?.unwrap_or_default();
    let volumes: Option<Map<String, Value>> = take(&mut config, C, "Volumes")?;
    let host: Option<Map<String, Value>> = take(&mut config, C, "HostConfig")?;
    let networking: Option<Map<String, Value>> = take(&mut config, C, "NetworkingConfig")?;
    for key in IGNORED_CONFIG {
        config.remove(key);
    }
    refuse_rest(&config, "Config.")?;
    host_config(&mut opts, host.unwrap_or_default(), policy)?;
    // `-v /data` (no source) arrives here: an anonymous volume, unless a
    // mount already has the target.
    for target in volumes.unwrap_or_default().keys() {
        if !opts.mounts.iter().any(|m| m.target == *target) {
            opts.mounts.push(parse_volume_flag(target).map_err(bad)?);
        }
    }
    networking_config(&mut opts, networking.unwrap_or_default())?;
    Ok(opts)
}

fn host_config(
    opts: &mut RunOptions,
    mut host: Map<String, Value>,
    policy: &husk_spec::SecurityPolicy,
) -> Result<(), DockerError> {
    const H: &str = "HostConfig.";
    opts.network = network_mode(take::<String>(&mut host, H, "NetworkMode")?.unwrap_or_default())?;
    if let Some(bindings) = take::<Map<String, Value>>(&mut host, H, "PortBindings")? {
        opts.ports = port_bindings(bindings)?;
    }
    if let Some(restart) = take::<Map<String, Value>>(&mut host, H, "RestartPolicy")? {
        opts.restart = restart_policy(restart)?;
    }
    let memory: i64 = take(&mut host, H, "Memory")?.unwrap_or(0);
    if memory < 0 {
        return Err(bad("HostConfig.Memory cannot be negative"));
    }
    opts.memory = (memory > 0).then_some(memory as u64);
    let nano_cpus: i64 = take(&mut host, H, "NanoCpus")?.unwrap_or(0);
    let quota: i64 = take(&mut host, H, "CpuQuota")?.unwrap_or(0);
    let period: i64 = take(&mut host, H, "CpuPeriod")?.unwrap_or(0);
    opts.cpus = match (nano_cpus, quota, period) {
        (0, 0, 0) => None,
        (n, 0, 0) if n > 0 => Some(n as f64 / 1e9),
        (0, q, p) if q > 0 && p >= 0 => Some(q as f64 / if p == 0 { 100_000.0 } else { p as f64 }),
        (n, _, _) if n != 0 => {
            return Err(bad(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        _ => return Err(bad("HostConfig.CpuPeriod needs a positive CpuQuota")),
    };
    // The CLI sends 0 when --pids-limit is not given: the machine's
    // default then, never unlimited. -1 (Docker's unlimited) goes to the
    // limits' check as asked.
    opts.pids_limit = take::<i64>(&mut host, H, "PidsLimit")?.filter(|p| *p != 0);
    opts.read_only = take(&mut host, H, "ReadonlyRootfs")?.unwrap_or(false);
    opts.privileged = take(&mut host, H, "Privileged")?.unwrap_or(false);
    opts.auto_remove = take(&mut host, H, "AutoRemove")?.unwrap_or(false);
    for dns in take::<Vec<String>>(&mut host, H, "Dns")?.unwrap_or_default() {
        let ip: IpAddr = dns
            .parse()
            .map_err(|_| bad(format!("HostConfig.Dns: {dns:?} is not an IP address")))?;
        opts.dns.push(ip);
    }
    opts.extra_hosts = take(&mut host, H, "ExtraHosts")?.unwrap_or_default();
    let weight: u16 = take(&mut host, H, "BlkioWeight")?.unwrap_or(0);
    opts.io_weight = (weight > 0).then_some(weight);
    if let Some(storage) = take::<HashMap<String, String>>(&mut host, H, "StorageOpt")? {
        for (key, value) in storage {
            match key.as_str() {
                "size" => opts.storage_size = Some(husk_api::parse_bytes(&value).map_err(bad)?),
                _ => {
                    return Err(bad(format!(
                        "HostConfig.StorageOpt {key} is not supported by Husk (only size)"
                    )));
                }
            }
        }
    }
    mounts(opts, &mut host)?;
    userns(
        opts,
        take::<String>(&mut host, H, "UsernsMode")?.unwrap_or_default(),
        policy,
    )?;
    match take::<String>(&mut host, H, "CgroupnsMode")?.as_deref() {
        None | Some("" | "private") => {}
        Some(other) => {
            return Err(bad(format!(
                "HostConfig.CgroupnsMode {other} is not supported by Husk (containers have a cgroup namespace of their own)"
            )));
        }
    }
    if let Some(mut log) = take::<Map<String, Value>>(&mut host, H, "LogConfig")? {
        match take::<String>(&mut log, "LogConfig.", "Type")?.as_deref() {
            None | Some("" | "json-file") => {}
            Some(other) => {
                return Err(bad(format!(
                    "HostConfig.LogConfig.Type {other} is not supported by Husk (logs are json-file)"
                )));
            }
        }
        refuse_rest(&log, "HostConfig.LogConfig.")
            .map_err(|e| bad(format!("{e} (log rotation is agent.toml's [logs])")))?;
    }
    match take::<String>(&mut host, H, "Isolation")?.as_deref() {
        None | Some("" | "default") => {}
        Some(other) => {
            return Err(bad(format!(
                "HostConfig.Isolation {other} is not supported by Husk"
            )));
        }
    }
    match take::<i64>(&mut host, H, "MemorySwappiness")? {
        None | Some(-1) => {}
        Some(n) => {
            return Err(bad(format!(
                "HostConfig.MemorySwappiness {n} is not supported by Husk"
            )));
        }
    }
    // Unlike other lists, an empty one here is a change (`--security-opt
    // systempaths=unconfined` unmasks everything).
    for key in ["MaskedPaths", "ReadonlyPaths"] {
        if host.remove(key).is_some_and(|v| !v.is_null()) {
            return Err(bad(format!(
                "HostConfig.{key} is not supported by Husk (its masked and read-only paths are Docker's defaults)"
            )));
        }
    }
    for key in IGNORED_HOST_CONFIG {
        host.remove(key);
    }
    refuse_rest(&host, H)
}

fn network_mode(mode: String) -> Result<NetworkMode, DockerError> {
    match mode.as_str() {
        "" | "default" | "bridge" => Ok(NetworkMode::Bridge),
        _ if mode.starts_with("container:") => Err(bad(format!(
            "HostConfig.NetworkMode {mode} is not supported by Husk (no shared network namespaces)"
        ))),
        _ => Ok(NetworkMode::from(mode)),
    }
}

/// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
fn port_bindings(bindings: Map<String, Value>) -> Result<Vec<PortMapping>, DockerError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Binding {
        #[serde(default)]
        host_ip: String,
        #[serde(default)]
        host_port: String,
    }
    let mut ports = Vec::new();
    for (key, list) in bindings {
        let (port, protocol) = key.split_once('/').unwrap_or((&key, "tcp"));
        let bad_port = || bad(format!("HostConfig.PortBindings: invalid port {key:?}"));
        let container_port: u16 = port.parse().map_err(|_| bad_port())?;
        let protocol = match protocol {
            "tcp" => PortProtocol::Tcp,
            "udp" => PortProtocol::Udp,
            other => {
                return Err(bad(format!(
                    "HostConfig.PortBindings: protocol {other} is not supported by Husk"
                )));
            }
        };
        let list: Vec<Binding> = serde_json::from_value(list)
            .map_err(|e| bad(format!("HostConfig.PortBindings {key}: {e}")))?;
        for binding in list {
            let host_ip = match binding.host_ip.as_str() {
                "" => None,
                ip => Some(ip.parse().map_err(|_| {
                    bad(format!(
                        "HostConfig.PortBindings: {ip:?} is not an IP address"
                    ))
                })?),
            };
            let host_port = match binding.host_port.as_str() {
                "" => 0,
                p => p.parse().map_err(|_| bad(format!("HostConfig.PortBindings: host port {p:?} is not a port (ranges are expanded by the CLI)")))?,
            };
            ports.push(PortMapping {
                host_ip,
                host_port,
                container_port,
                protocol,
            });
        }
    }
    Ok(ports)
}

/// `{"Name": "on-failure", "MaximumRetryCount": 3}`.
fn restart_policy(mut restart: Map<String, Value>) -> Result<RestartPolicy, DockerError> {
    const R: &str = "HostConfig.RestartPolicy.";
    let name: String = take(&mut restart, R, "Name")?.unwrap_or_default();
    let retries: u32 = take(&mut restart, R, "MaximumRetryCount")?.unwrap_or(0);
    let text = match (name.as_str(), retries) {
        ("", _) => "no".to_owned(),
        ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
        (name, _) => name.to_owned(),
    };
    text.parse()
        .map_err(|e: husk_api::containers::ParseRestartPolicyError| bad(e.to_string()))
}

/// `Binds` (`-v`), `Mounts` (`--mount`) and `Tmpfs` (`--tmpfs`), read by
/// Husk's own parsers of those flags.
fn mounts(opts: &mut RunOptions, host: &mut Map<String, Value>) -> Result<(), DockerError> {
    const H: &str = "HostConfig.";
    for bind in take::<Vec<String>>(host, H, "Binds")?.unwrap_or_default() {
        opts.mounts.push(parse_volume_flag(&bind).map_err(bad)?);
    }
    for mount in take::<Vec<Map<String, Value>>>(host, H, "Mounts")?.unwrap_or_default() {
        opts.mounts.push(api_mount(mount)?);
    }
    let tmpfs: BTreeMap<String, String> = take(host, H, "Tmpfs")?.unwrap_or_default();
    for (target, options) in tmpfs {
        let flag = if options.is_empty() {
            target
        } else {
            format!("{target}:{options}")
        };
        opts.mounts.push(parse_tmpfs_flag(&flag).map_err(bad)?);
    }
    Ok(())
}

/// One of `HostConfig.Mounts`, as the `--mount` flag it came from.
fn api_mount(mut mount: Map<String, Value>) -> Result<Mount, DockerError> {
    const M: &str = "HostConfig.Mounts.";
    let kind: String = take(&mut mount, M, "Type")?.unwrap_or_default();
    let source: String = take(&mut mount, M, "Source")?.unwrap_or_default();
    let target: String = take(&mut mount, M, "Target")?.unwrap_or_default();
    for (what, text) in [("Source", &source), ("Target", &target)] {
        if text.contains([',', '=']) {
            return Err(bad(format!(
                "{M}{what} {text:?}: `,` and `=` are not supported"
            )));
        }
    }
    let mut flag = format!("type={kind},target={target}");
    if !source.is_empty() {
        flag.push_str(&format!(",source={source}"));
    }
    if take(&mut mount, M, "ReadOnly")?.unwrap_or(false) {
        flag.push_str(",readonly");
    }
    // Consistency is macOS's; it means nothing on Linux.
    mount.remove("Consistency");
    if let Some(mut bind) = take::<Map<String, Value>>(&mut mount, M, "BindOptions")? {
        if let Some(propagation) = take::<String>(&mut bind, "BindOptions.", "Propagation")?
            && !propagation.is_empty()
        {
            flag.push_str(&format!(",bind-propagation={propagation}"));
        }
        refuse_rest(&bind, "HostConfig.Mounts.BindOptions.")?;
    }
    if let Some(mut volume) = take::<Map<String, Value>>(&mut mount, M, "VolumeOptions")? {
        if take(&mut volume, "VolumeOptions.", "NoCopy")?.unwrap_or(false) {
            flag.push_str(",volume-nocopy");
        }
        refuse_rest(&volume, "HostConfig.Mounts.VolumeOptions.")?;
    }
    if let Some(mut tmpfs) = take::<Map<String, Value>>(&mut mount, M, "TmpfsOptions")? {
        if let Some(size) =
            take::<u64>(&mut tmpfs, "TmpfsOptions.", "SizeBytes")?.filter(|s| *s > 0)
        {
            flag.push_str(&format!(",tmpfs-size={size}"));
        }
        if let Some(mode) = take::<u32>(&mut tmpfs, "TmpfsOptions.", "Mode")?.filter(|m| *m > 0) {
            flag.push_str(&format!(",tmpfs-mode={mode:o}"));
        }
        refuse_rest(&tmpfs, "HostConfig.Mounts.TmpfsOptions.")?;
    }
    refuse_rest(&mount, M)?;
    parse_mount_flag(&flag).map_err(bad)
}

/// `UsernsMode`: "" (the machine's policy), `host` (none: only where the
/// policy does not require one), or Podman's `auto`.
fn userns(
    opts: &mut RunOptions,
    mode: String,
    policy: &husk_spec::SecurityPolicy,
) -> Result<(), DockerError> {
    match mode.as_str() {
        "" => Ok(()),
        "auto" => {
            opts.userns_auto = true;
            Ok(())
        }
        "host" if policy.userns == husk_spec::UsernsPolicy::Required => Err(DockerError::new(
            StatusCode::FORBIDDEN,
            "containers must run in a user namespace on this machine \
             (security policy: userns = \"required\"): HostConfig.UsernsMode host is refused",
        )),
        "host" => Ok(()),
        other => Err(bad(format!(
            "HostConfig.UsernsMode {other} is not supported by Husk (host or auto)"
        ))),
    }
}

/// `NetworkingConfig.EndpointsConfig`: the aliases on the container's
/// network; addresses and links are refused.
fn networking_config(
    opts: &mut RunOptions,
    mut networking: Map<String, Value>,
) -> Result<(), DockerError> {
    let endpoints: Map<String, Value> =
        take(&mut networking, "NetworkingConfig.", "EndpointsConfig")?.unwrap_or_default();
    refuse_rest(&networking, "NetworkingConfig.")?;
    for (network, endpoint) in endpoints {
        let Value::Object(mut endpoint) = endpoint else {
            continue;
        };
        let ours = opts.network.to_string() == network
            || (network == "bridge" && opts.network == NetworkMode::Bridge);
        let section = format!("NetworkingConfig.EndpointsConfig.{network}.");
        let aliases: Vec<String> = take(&mut endpoint, &section, "Aliases")?.unwrap_or_default();
        if !aliases.is_empty() && !ours {
            return Err(bad(format!(
                "{section}: the container is on {} (connect to more networks after create)",
                opts.network
            )));
        }
        opts.network_aliases.extend(aliases);
        refuse_rest(&endpoint, &section)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(body: Value) -> Result<RunOptions, DockerError> {
        let Value::Object(body) = body else { panic!() };
        run_options(body, &husk_spec::SecurityPolicy::default())
    }

    #[test]
    fn reads_what_the_cli_sends() {
        let o = opts(json!({
            "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=b"], "Tty": false,
            "OpenStdin": false, "AttachStdout": true, "ExposedPorts": {"80/tcp": {}},
            "Labels": {"team": "a"}, "Entrypoint": null, "Volumes": {},
            "HostConfig": {"NetworkMode": "default", "AutoRemove": true, "Memory": 268435456,
                "NanoCpus": 1500000000, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "MemorySwappiness": -1,
                "LogConfig": {"Type": "", "Config": {}}, "ConsoleSize": [0, 0], "CapAdd": null,
                "Binds": null, "Privileged": false, "BlkioWeightDevice": []},
            "NetworkingConfig": {"EndpointsConfig": {}}
        }))
        .unwrap();
        assert_eq!(o.image, "busybox");
        assert_eq!(o.cmd.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
        assert!(o.auto_remove);
        assert_eq!(o.memory, Some(256 << 20));
        assert_eq!(o.cpus, Some(1.5));
        assert_eq!(o.ports[0].host_port, 8080);
        assert_eq!(o.labels["team"], "a");
    }

    #[test]
    fn refuses_what_it_cannot_honour_by_name() {
        for (body, says) in [
            (
                json!({"Image": "b", "HostConfig": {"CapAdd": ["NET_ADMIN"]}}),
                "HostConfig.CapAdd",
            ),
            (
                json!({"Image": "b", "HostConfig": {"PidMode": "host"}}),
                "HostConfig.PidMode",
            ),
            (
                json!({"Image": "b", "HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}),
                "SecurityOpt",
            ),
            (
                json!({"Image": "b", "HostConfig": {"MaskedPaths": []}}),
                "MaskedPaths",
            ),
            (
                json!({"Image": "b", "HostConfig": {"NetworkMode": "container:x"}}),
                "container:x",
            ),
            (
                json!({"Image": "b", "Healthcheck": {"Test": ["CMD", "true"]}}),
                "Config.Healthcheck",
            ),
        ] {
            let err = opts(body).unwrap_err().message;
            assert!(err.contains(says), "{says}: {err}");
        }
    }
}
