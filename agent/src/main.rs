use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use husk_agent::api::ApiConfig;
use husk_agent::config::AgentConfig;
use husk_agent::containers::{Layout, Manager, ManagerConfig};
use husk_agent::images::ImageStore;
use husk_agent::server::{ApiSocket, RemoteApi};
use husk_common::boot::BootFacts;
use tokio::signal::unix::{SignalKind, signal};

/// After SIGTERM, how long open requests may take.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Husk's agent: the machine's API on a unix socket.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The API socket.
    #[arg(long, default_value = husk_common::paths::AGENT_SOCKET)]
    socket: PathBuf,
    /// Docker's Engine API (the `docker` CLI's `-H unix://…`), over the
    /// same containers, images and policies. Default: `docker.sock`
    /// beside `--socket` (/run/husk/docker.sock), so that an agent on
    /// other paths (tests, by hand) never takes the machine's.
    #[arg(long, value_name = "PATH")]
    docker_socket: Option<PathBuf>,
    /// husk-init's data partition status (served as GET /v1/system).
    #[arg(long, value_name = "PATH", default_value = husk_common::paths::DATA_STATUS)]
    data_status: PathBuf,
    /// What husk-init learnt at boot: trial boot, boot disk, ESP.
    #[arg(long, value_name = "PATH", default_value = husk_common::paths::BOOT_FACTS)]
    boot_facts: PathBuf,
    /// The persistent state: the image store (images.json, blobs/,
    /// layers/) and the containers (containers/).
    #[arg(long, value_name = "DIR", default_value = husk_common::paths::STATE_DIR)]
    root: PathBuf,
    /// The state that ends with the machine's run: shims, the runtime.
    #[arg(long, value_name = "DIR", default_value = husk_common::paths::RUN_DIR)]
    run_dir: PathBuf,
    /// The agent's configuration (security policy, log retention).
    #[arg(long, value_name = "PATH", default_value = husk_agent::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Leave the machine alone: no clock check, no user-data (config
    /// drive, metadata service, kernel command line). For agents started
    /// by tests or by hand.
    #[arg(long)]
    no_machine_setup: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The embedded OCI runtime (runc's command line).
    Oci(Box<husk_runtime::cli::OciArgs>),
    /// A container's shim (started by the agent, one per container).
    #[command(hide = true)]
    Shim {
        /// The shim's instructions (shim.json).
        config: PathBuf,
    },
}

/// Names under which the binary is the runtime itself, as runc: a link
/// `husk-runc -> husk-agent` is what containerd's `--runc-binary`, its
/// `BinaryName` and dockerd's `runtimes` are pointed at.
const RUNTIME_NAMES: [&str; 2] = ["husk-runc", "runc"];

/// True when argv[0]'s file name is one of [`RUNTIME_NAMES`].
fn invoked_as_runtime() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .and_then(|name| name.to_str())
        .is_some_and(|name| RUNTIME_NAMES.contains(&name))
}

/// runc's command line at the top level (`husk-runc create …`).
#[derive(Parser)]
#[command(
    name = "husk-runc",
    version,
    about = "Husk's OCI runtime (runc's command line)"
)]
struct RuntimeArgs {
    #[command(flatten)]
    oci: husk_runtime::cli::OciArgs,
}

fn main() -> ExitCode {
    husk_agent::logger::init();
    if invoked_as_runtime() {
        return husk_runtime::cli::main(RuntimeArgs::parse().oci);
    }
    let mut args = Args::parse();
    // The runtime and the shim run single-threaded, before any async
    // runtime exists.
    match args.command.take() {
        Some(Command::Oci(oci)) => return husk_runtime::cli::main(*oci),
        Some(Command::Shim { config }) => return husk_agent::containers::shim::main(&config),
        None => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What husk-init published about this boot; None (logged) without it.
fn boot_facts(path: &std::path::Path) -> Option<BootFacts> {
    match BootFacts::read(path) {
        Ok(facts) => Some(facts),
        Err(e) if e.is_missing() => {
            log::warn!("{e}: not started by husk-init?");
            None
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// The update agent: on a Husk machine with the ESP mounted and the
/// running version from os-release; otherwise detached (status only).
fn updater(args: &Args, config: &AgentConfig, cmdline: &str) -> husk_agent::update::Updater {
    use husk_agent::update::{Updater, UpdaterConfig, fault, mount, running_version};
    let state_dir = args.root.join("update");
    if args.no_machine_setup {
        return Updater::detached(state_dir);
    }
    fault::configure_from_cmdline(cmdline);
    let facts = boot_facts(&args.boot_facts);
    let esp = match &facts {
        Some(facts) => mount::mount_esp(facts.esp.as_deref()),
        None => Err("no boot facts".to_owned()),
    };
    if let Err(e) = &esp {
        log::warn!("update: {e}: updates are off");
    }
    let running = running_version(std::path::Path::new("/etc/os-release"));
    log::info!(
        "update: running version {}",
        running.as_deref().unwrap_or("unknown")
    );
    Updater::new(UpdaterConfig {
        settings: config.update.clone(),
        state_dir,
        esp,
        running_version: running,
        may_reboot: true,
        trial: facts.map(|f| f.trial),
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let config = AgentConfig::load(&args.config)?;
    // The kernel command line: the network's and the updater's settings.
    let cmdline = if args.no_machine_setup {
        String::new()
    } else {
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    };
    if !args.no_machine_setup {
        husk_agent::oom::protect_agent();
        husk_agent::clock::ensure_plausible(
            std::path::Path::new("/etc/os-release"),
            std::path::Path::new("/proc/version"),
        );
    }
    husk_agent::system::log_data_status(&args.data_status);
    // A store that cannot be opened leaves the agent up (health, system)
    // with the image and container endpoints answering 503 and the reason.
    let images = ImageStore::open(args.root.clone(), config.limits.images).await;
    match images.error() {
        Some(e) => log::error!("image store {}: {e}", args.root.display()),
        None => log::info!("image store at {}", args.root.display()),
    }
    let agent_exe = std::env::current_exe()?;
    let mut manager_config = ManagerConfig::new(Layout::new(&args.root, &args.run_dir), agent_exe);
    manager_config.policy = config.security.clone();
    manager_config.limits = config.limits.containers;
    manager_config.log_max_size = config.logs.max_size;
    manager_config.log_max_files = config.logs.max_files;
    manager_config.network = config.network.clone();
    if manager_config.network.host_firewall.is_none() {
        manager_config.network.host_firewall = Some(!args.no_machine_setup);
    }
    let containers = Manager::new(manager_config, images.clone());
    if images.error().is_none() {
        containers.restore().await;
    }
    let user_data = husk_agent::userdata::UserDataConfig::new(&args.root, &args.run_dir);
    let updater = updater(&args, &config, &cmdline);
    // One TLS configuration for every HTTPS client of the agent.
    if let Err(e) =
        husk_agent::http_client::configure_tls(&config.registry.ca_files, &config.registry.ca_pems)
    {
        log::error!("registry CAs: {e}; HTTPS trusts Mozilla's roots only");
    }
    // Keys and trusted-tag roots are read now: a policy that cannot be
    // enforced stops the agent, as an invalid agent.toml does.
    let policy = config
        .policy
        .load("agent.toml", &args.root.join("trust"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    let puller = husk_agent::pulls::Puller::new(
        config.registry.clone(),
        husk_registry::policy::Policy::new(vec![policy]),
        images.clone(),
    )
    .with_events(containers.events().clone());
    let api_config = ApiConfig {
        data_status: args.data_status.clone(),
        images,
        containers: containers.clone(),
        user_data_status: user_data.status_file(),
        updater: updater.clone(),
        puller: puller.clone(),
        remote_status: Default::default(),
    };
    let remote = RemoteApi::new(&api_config, config.api.clone(), args.root.join("api"));
    // Docker's socket is a second door to the same manager: one that
    // cannot be bound is logged and the agent serves its own API on.
    let docker_path = args
        .docker_socket
        .clone()
        .unwrap_or_else(|| args.socket.with_file_name(husk_agent::docker::SOCKET_NAME));
    let docker_socket = match ApiSocket::bind(&docker_path) {
        Ok(socket) => {
            log::info!("serving Docker's Engine API on {}", docker_path.display());
            Some(
                socket
                    .with_settings(config.api.clone())
                    .with_router(husk_agent::docker::router(&api_config)),
            )
        }
        Err(e) => {
            log::error!("Docker's Engine API is off: {e}");
            None
        }
    };
    let socket = ApiSocket::bind(&args.socket)?
        .with_settings(config.api.clone())
        .with_config(api_config);
    log::info!("serving the API on {}", args.socket.display());
    // A machine's remote API waits for user-data's `[api]`; an agent
    // without machine setup has agent.toml's only. Its errors are
    // logged and reported by GET /v1/system; the unix socket serves on.
    if args.no_machine_setup {
        let _ = remote.start(&remote.configured());
    }
    // Ready only once the socket accepts connections.
    if let Err(e) = husk_common::notify::notify_ready() {
        log::warn!("cannot notify readiness: {e}");
    }
    let mut network = None;
    if !args.no_machine_setup {
        let mut net = husk_agent::net::NetConfig::new(&args.run_dir);
        match husk_agent::net::cmdline::parse(&cmdline) {
            Ok(first_link) => net.first_link = first_link,
            Err(e) => log::error!("kernel command line: {e}; using DHCP"),
        }
        network = Some(husk_agent::net::start(net));
    }
    // After the network: DHCP's NTP servers are read from its net.json.
    let time_mode = if args.no_machine_setup {
        husk_agent::timesync::Mode::MeasureOnly
    } else {
        husk_agent::timesync::Mode::Set
    };
    let time = husk_agent::timesync::start(husk_agent::timesync::TimeConfig::new(
        config.time.clone(),
        time_mode,
        &args.run_dir,
    ));
    // First-boot configuration, while the API already serves; then the
    // judgement of this boot (user-data may start the containers it
    // waits for), and the periodic update checks.
    if !args.no_machine_setup {
        let updater = updater.clone();
        tokio::spawn(async move {
            husk_agent::userdata::run(
                &user_data,
                &remote,
                &containers,
                &puller,
                network.as_ref(),
                &updater,
                &time,
            )
            .await;
            updater.assess_boot(&containers).await;
            updater.run_background().await;
        });
    }
    // Containers keep running when the agent stops (their shims outlive
    // it): a restarted agent adopts them.
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = std::sync::Arc::clone(&stopping);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => log::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => log::info!("SIGINT: stopping"),
        }
        let _ = stop.send(true);
        notify.notify_one();
    });
    let docker = async {
        if let Some(docker_socket) = docker_socket {
            docker_socket.serve(until_stopped(stopped.clone())).await;
        }
    };
    let serve = async {
        tokio::join!(socket.serve(until_stopped(stopped.clone())), docker);
    };
    // Requests in flight get a moment; a client following logs or an
    // exec that never ends does not hold the agent.
    let grace = async {
        stopping.notified().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        log::warn!("streams still open after {SHUTDOWN_GRACE:?}: closing them");
    };
    tokio::select! {
        () = serve => {}
        () = grace => {}
    }
    log::info!("stopped");
    Ok(())
}
