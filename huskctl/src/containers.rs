//! huskctl's container verbs, Docker's flags.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use husk_api::containers::{
    CONTAINERS_PATH, ContainerInfo, ContainerList, ExecRequest, Frame, LogEntry, Mount,
    NetworkMode, PortMapping, RemovedContainer, RestartPolicy, RunOptions, Stats, Status, Stream,
    WaitResponse, container_path, parse_extra_host, parse_mount_flag, parse_publish,
    parse_tmpfs_flag, parse_volume_flag,
};
use husk_api::images::image_path;
use husk_api::{Client, ClientError, Method};

use crate::table;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container's name.
    #[arg(short, long)]
    detach: bool,
    /// Pull the image first: always, when it is missing, or never.
    #[arg(long, default_value = "missing")]
    pull: PullPolicy,
    #[command(flatten)]
    create: CreateArgs,
}

/// Docker's `--pull` of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Keep the container's stdin open, and send huskctl's to it.
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    name: Option<String>,
    /// KEY=VALUE, repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Memory limit: bytes or with a unit (512k, 256m, 1g).
    #[arg(short, long, value_parser = husk_api::parse_bytes)]
    memory: Option<u64>,
    /// CPUs, e.g. 1.5.
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long)]
    pids_limit: Option<i64>,
    /// size=SIZE: the most the writable layer may hold (512m, 10g).
    #[arg(long, value_name = "size=SIZE", value_parser = parse_storage_opt)]
    storage_opt: Option<u64>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// uid[:gid] or name[:group].
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// no, on-failure[:N], always, unless-stopped.
    #[arg(long, default_value = "no")]
    restart: RestartPolicy,
    /// bridge (the agent's bridge, NAT out), none (only lo), host, or a
    /// user network's name (`huskctl network create`).
    #[arg(long, default_value = "bridge", value_parser = parse_network)]
    network: NetworkMode,
    /// Another name it answers to on its user network's DNS; repeatable.
    #[arg(long = "network-alias", value_name = "NAME")]
    network_alias: Vec<String>,
    /// Publish a port: [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], ranges
    /// as 8000-8009:80-89; repeatable.
    #[arg(short, long = "publish", value_name = "[IP:]HOSTPORT:PORT", value_parser = parse_publish_arg)]
    publish: Vec<Vec<PortMapping>>,
    /// A name server for the container's /etc/resolv.conf; repeatable.
    #[arg(long, value_name = "IP")]
    dns: Vec<std::net::IpAddr>,
    /// A volume or host path: NAME:/path[:ro], /host/path:/path[:ro], or
    /// /path (a volume of its own, removed with `rm -v` or `--rm`);
    /// repeatable.
    #[arg(short, long = "volume", value_name = "[SOURCE:]TARGET[:ro]", value_parser = parse_volume_flag)]
    volume: Vec<Mount>,
    /// type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…];
    /// repeatable.
    #[arg(long = "mount", value_name = "type=…,target=…", value_parser = parse_mount_flag)]
    mount: Vec<Mount>,
    /// A tmpfs: /path[:size=64m,mode=1777]; repeatable.
    #[arg(long = "tmpfs", value_name = "PATH[:size=SIZE]", value_parser = parse_tmpfs_flag)]
    tmpfs: Vec<Mount>,
    /// NAME:IP, a line of the container's /etc/hosts; repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP", value_parser = parse_add_host)]
    add_host: Vec<String>,
    /// Let it reach the cloud's metadata service (if agent.toml allows).
    #[arg(long)]
    metadata_access: bool,
    /// All capabilities, no seccomp (if the agent's policy allows it).
    #[arg(long)]
    privileged: bool,
    /// auto: a user namespace with a range of host ids of its own; host:
    /// none (the default, unless the agent requires one).
    #[arg(long, default_value = "host", value_parser = ["auto", "host"])]
    userns: String,
    /// Replaces the image's entrypoint ("" clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    image: String,
    /// The command, replacing the image's Cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and start a container; in the foreground, stream its output
    /// and exit with its exit code.
    Run(Box<RunArgs>),
    /// Create a container without starting it.
    Create(Box<CreateArgs>),
    /// Start containers.
    Start { names: Vec<String> },
    /// Stop containers: their stop signal, then SIGKILL after the timeout.
    Stop {
        /// Seconds before SIGKILL.
        #[arg(short = 't', long)]
        time: Option<u64>,
        names: Vec<String>,
    },
    /// Send a signal (default KILL).
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// Remove its anonymous volumes too.
        #[arg(short, long)]
        volumes: bool,
        names: Vec<String>,
    },
    /// List containers (running ones; -a for all).
    Ps {
        #[arg(short, long)]
        all: bool,
    },
    /// A container's output.
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        name: String,
    },
    /// Run a command in a running container; exits with its exit code.
    Exec {
        /// Send what huskctl reads on stdin to the process (its EOF, the
        /// process's).
        #[arg(short, long)]
        interactive: bool,
        /// Give the process a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Docker's form: ctrl-p,ctrl-q (the default); "" for none.
        #[arg(long)]
        detach_keys: Option<String>,
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// A container's details as JSON.
    Inspect { name: String },
    /// Resource use: memory, CPU (over one second), pids.
    Stats { names: Vec<String> },
    /// Wait for a container to stop; prints and exits with its exit code.
    Wait { name: String },
    /// Join the terminal (or stdin and stdout) to a running container;
    /// the detach keys leave it running.
    Attach {
        /// Docker's form: ctrl-p,ctrl-q (the default); "" for none.
        #[arg(long)]
        detach_keys: Option<String>,
        /// Do not send stdin.
        #[arg(long)]
        no_stdin: bool,
        name: String,
    },
}

fn parse_network(text: &str) -> Result<NetworkMode, String> {
    match NetworkMode::from(text.to_owned()) {
        NetworkMode::Named(name) => husk_api::networks::check_network_name(&name)
            .map(|()| NetworkMode::Named(name))
            .map_err(|e| format!("{e} (or bridge, none, host)")),
        mode => Ok(mode),
    }
}

fn parse_publish_arg(text: &str) -> Result<Vec<PortMapping>, String> {
    parse_publish(text).map_err(|e| e.to_string())
}

fn parse_add_host(text: &str) -> Result<String, String> {
    parse_extra_host(text).map(|_| text.to_string())
}

/// Docker's `--storage-opt size=SIZE`, the one option Husk knows.
fn parse_storage_opt(text: &str) -> Result<u64, String> {
    match text.split_once('=') {
        Some(("size", size)) => husk_api::parse_bytes(size),
        _ => Err(format!(
            "{text:?}: the storage option Husk takes is size=SIZE"
        )),
    }
}

impl CreateArgs {
    fn options(self) -> RunOptions {
        let mut opts = RunOptions::new(self.name.unwrap_or_default(), self.image);
        opts.cmd = (!self.command.is_empty()).then_some(self.command);
        opts.entrypoint = self
            .entrypoint
            .map(|e| if e.is_empty() { Vec::new() } else { vec![e] });
        opts.env = self.env;
        opts.user = self.user;
        opts.workdir = self.workdir;
        opts.hostname = self.hostname;
        opts.read_only = self.read_only;
        opts.mounts = [self.volume, self.mount, self.tmpfs].concat();
        opts.memory = self.memory;
        opts.cpus = self.cpus;
        opts.pids_limit = self.pids_limit;
        opts.storage_size = self.storage_opt;
        opts.network = self.network;
        opts.network_aliases = self.network_alias;
        opts.ports = self.publish.into_iter().flatten().collect();
        opts.dns = self.dns;
        opts.extra_hosts = self.add_host;
        opts.metadata_access = self.metadata_access;
        opts.privileged = self.privileged;
        opts.userns_auto = self.userns == "auto";
        opts.restart = self.restart;
        opts.auto_remove = self.rm;
        opts.tty = self.tty;
        opts.interactive = self.interactive;
        opts
    }
}

/// Runs a container verb; returns the process's exit code.
pub async fn run(client: &Client, command: ContainerCommand) -> Result<u8, ClientError> {
    match command {
        ContainerCommand::Run(args) => return run_container(client, *args).await,
        ContainerCommand::Create(args) => {
            let info: ContainerInfo = client.post(CONTAINERS_PATH, &args.options()).await?;
            println!("{}", info.name);
        }
        ContainerCommand::Start { names } => {
            for name in names {
                let _: ContainerInfo = client
                    .post_empty(&container_path(&name, Some("start")))
                    .await?;
                println!("{name}");
            }
        }
        ContainerCommand::Stop { time, names } => {
            for name in names {
                let path = match time {
                    Some(t) => format!("{}?timeout={t}", container_path(&name, Some("stop"))),
                    None => container_path(&name, Some("stop")),
                };
                let _: ContainerInfo = client.post_empty(&path).await?;
                println!("{name}");
            }
        }
        ContainerCommand::Kill { signal, names } => {
            for name in names {
                let path = format!(
                    "{}?signal={}",
                    container_path(&name, Some("kill")),
                    husk_api::encode_path_segment(&signal)
                );
                let _: ContainerInfo = client.post_empty(&path).await?;
                println!("{name}");
            }
        }
        ContainerCommand::Rm {
            force,
            volumes,
            names,
        } => {
            for name in names {
                let path = format!(
                    "{}?force={force}&volumes={volumes}",
                    container_path(&name, None)
                );
                let removed: RemovedContainer = client.delete(&path).await?;
                println!("{}", removed.removed);
            }
        }
        ContainerCommand::Ps { all } => {
            let list: ContainerList = client.get(CONTAINERS_PATH).await?;
            let now = now_ms();
            let shown: Vec<_> = list
                .containers
                .into_iter()
                .filter(|c| all || c.status == Status::Running)
                .collect();
            print!("{}", ps_table(&shown, now));
        }
        ContainerCommand::Logs { follow, tail, name } => {
            let mut path = format!("{}?follow={follow}", container_path(&name, Some("logs")));
            if let Some(tail) = tail {
                path.push_str(&format!("&tail={tail}"));
            }
            client
                .stream(Method::GET, &path, None, |entry: LogEntry| {
                    print_entry(&entry)
                })
                .await?;
        }
        ContainerCommand::Exec {
            interactive,
            tty,
            detach_keys,
            env,
            user,
            workdir,
            name,
            command,
        } => {
            let request = ExecRequest {
                cmd: command,
                env,
                user,
                workdir,
                tty,
                interactive,
            };
            if tty || interactive {
                return crate::attach::exec(client, &name, request, detach_keys).await;
            }
            let body = serde_json::to_vec(&request)?;
            let mut code = 255;
            client
                .stream(
                    Method::POST,
                    &container_path(&name, Some("exec")),
                    Some(body),
                    |frame: Frame| match frame {
                        Frame::Log(entry) => print_entry(&entry),
                        Frame::Exit(exit) => code = exit.exit_code,
                    },
                )
                .await?;
            return Ok(exit_byte(code));
        }
        ContainerCommand::Inspect { name } => {
            let info: ContainerInfo = client.get(&container_path(&name, None)).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        ContainerCommand::Stats { names } => {
            let mut first = Vec::new();
            for name in &names {
                first.push(
                    client
                        .get::<Stats>(&container_path(name, Some("stats")))
                        .await?,
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!(
                "{:<24} {:>8} {:>22} {:>8} {:>10}",
                "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"
            );
            for (name, before) in names.iter().zip(first) {
                let now: Stats = client.get(&container_path(name, Some("stats"))).await?;
                println!("{}", stats_line(name, &before, &now));
            }
        }
        ContainerCommand::Attach {
            detach_keys,
            no_stdin,
            name,
        } => {
            let info: ContainerInfo = client.get(&container_path(&name, None)).await?;
            let session = crate::attach::Session {
                stdin: info.options.interactive && !no_stdin,
                tty: info.options.tty,
                detach_keys,
            };
            return crate::attach::attach(client, &name, session).await;
        }
        ContainerCommand::Wait { name } => {
            let wait: WaitResponse = client
                .post_empty(&container_path(&name, Some("wait")))
                .await?;
            let code = wait.exit_code.unwrap_or(255);
            println!("{code}");
            return Ok(exit_byte(code));
        }
    }
    Ok(0)
}

/// `run`: create, start; in the foreground follow the output, wait, and
/// remove with --rm (done here, after the output is read, not by the
/// agent, so no line is lost to the removal).
async fn run_container(client: &Client, args: RunArgs) -> Result<u8, ClientError> {
    if args.create.rm && args.create.restart != RestartPolicy::No {
        return Err(ClientError::Usage(
            "--rm and a --restart policy exclude each other".into(),
        ));
    }
    let mut options = args.create.options();
    let missing = || async {
        matches!(
            client
                .get::<serde_json::Value>(&image_path(&options.image))
                .await,
            Err(ClientError::Status { status: 404, .. })
        )
    };
    let pull = match args.pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => missing().await,
        PullPolicy::Never => false,
    };
    if pull {
        // Progress on stderr: stdout is the container's.
        crate::pull::pull(client, &options.image, None, crate::pull::Output::Stderr).await?;
    }
    let remove = options.auto_remove && !args.detach;
    if remove {
        options.auto_remove = false;
    }
    let info: ContainerInfo = client.post(CONTAINERS_PATH, &options).await?;
    let name = info.name;
    if !args.detach && (options.interactive || options.tty) {
        let session = crate::attach::Session {
            stdin: options.interactive,
            tty: options.tty,
            detach_keys: None,
        };
        return crate::attach::run(client, &name, session, remove).await;
    }
    let started = client
        .post_empty::<ContainerInfo>(&container_path(&name, Some("start")))
        .await;
    if let Err(e) = started {
        if remove {
            let _ = client
                .delete::<RemovedContainer>(&format!(
                    "{}?force=true&volumes=true",
                    container_path(&name, None)
                ))
                .await;
        }
        return Err(e);
    }
    if args.detach {
        println!("{name}");
        return Ok(0);
    }
    // As `docker run`'s --sig-proxy: Ctrl-C and SIGTERM go to the
    // container, whose exit then ends the run.
    let forward = tokio::spawn(forward_signals(client.clone(), name.clone()));
    let logs = format!("{}?follow=true", container_path(&name, Some("logs")));
    let followed = client
        .stream(Method::GET, &logs, None, |entry: LogEntry| {
            print_entry(&entry)
        })
        .await;
    forward.abort();
    followed?;
    let wait: WaitResponse = client
        .post_empty(&container_path(&name, Some("wait")))
        .await?;
    if remove {
        client
            .delete::<RemovedContainer>(&format!(
                "{}?force=true&volumes=true",
                container_path(&name, None)
            ))
            .await?;
    }
    Ok(exit_byte(wait.exit_code.unwrap_or(255)))
}

async fn forward_signals(client: Client, name: String) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let signal = tokio::select! {
            _ = interrupt.recv() => "INT",
            _ = terminate.recv() => "TERM",
        };
        let path = format!("{}?signal={signal}", container_path(&name, Some("kill")));
        if let Err(e) = client.post_empty::<ContainerInfo>(&path).await {
            eprintln!("huskctl: forwarding SIG{signal}: {e}");
        }
    }
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

fn print_entry(entry: &LogEntry) {
    let _ = match entry.stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(entry.log.as_bytes())
                .and_then(|()| out.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(entry.log.as_bytes()),
    };
}

/// Milliseconds since the epoch: container ages are computed here, from
/// the agent's `*_ms` fields.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `docker ps`'s table.
pub fn ps_table(containers: &[ContainerInfo], now_ms: u64) -> String {
    let ago = |ms: u64| table::ago((now_ms.saturating_sub(ms) / 1000) as i64);
    let mut out = format!(
        "{:<24} {:<24} {:<24} {:<16} {:<24} {}\n",
        "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"
    );
    for c in containers {
        let status = match c.status {
            Status::Created => "Created".to_string(),
            Status::Running => {
                let up = ago(c.started_ms.unwrap_or(now_ms));
                format!("Up {}", up.trim_end_matches(" ago"))
            }
            Status::Restarting => format!(
                "Restarting ({}) {}",
                c.exit_code.unwrap_or(-1),
                ago(c.finished_ms.unwrap_or(now_ms))
            ),
            Status::Exited => format!(
                "Exited ({}) {}",
                c.exit_code.unwrap_or(-1),
                ago(c.finished_ms.unwrap_or(now_ms))
            ),
        };
        let mut command = format!("\"{}\"", c.command.join(" "));
        if command.len() > 22 {
            command.truncate(20);
            command.push_str("…\"");
        }
        // Docker's column: `0.0.0.0:8080->80/tcp`, the ports published now.
        let ports: Vec<String> = c
            .network
            .iter()
            .flat_map(|n| &n.ports)
            .map(|p| match p.host_ip {
                None => format!("0.0.0.0:{p}"),
                Some(_) => p.to_string(),
            })
            .collect();
        let line = format!(
            "{:<24} {:<24} {:<24} {:<16} {:<24} {}",
            c.name,
            c.image,
            command,
            ago(c.created_ms),
            status,
            ports.join(", ")
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn stats_line(name: &str, before: &Stats, now: &Stats) -> String {
    let elapsed_us = now.time_ms.saturating_sub(before.time_ms).max(1) * 1000;
    let cpu = now.cpu_usec.saturating_sub(before.cpu_usec) as f64 * 100.0 / elapsed_us as f64;
    let limit = now
        .memory_limit
        .map_or("unlimited".to_string(), table::human_size);
    let percent = now.memory_limit.map_or("-".to_string(), |l| {
        format!("{:.2}%", now.memory_bytes as f64 * 100.0 / l.max(1) as f64)
    });
    format!(
        "{name:<24} {:>7.2}% {:>22} {percent:>8} {:>10}",
        cpu,
        format!("{} / {limit}", table::human_size(now.memory_bytes)),
        now.pids
    )
}
