use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use husk_agent::api::{ApiConfig, ImageStore};
use husk_agent::server::ApiSocket;
use tokio::signal::unix::{SignalKind, signal};

/// Husk's agent: the machine's API on a unix socket.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The API socket.
    #[arg(long, default_value = husk_common::paths::AGENT_SOCKET)]
    socket: PathBuf,
    /// husk-init's data partition status (served as GET /v1/system).
    #[arg(long, value_name = "PATH", default_value = husk_common::paths::DATA_STATUS)]
    data_status: PathBuf,
    /// The image store's root (images.json, blobs/, layers/).
    #[arg(long, value_name = "DIR", default_value = husk_common::paths::STATE_DIR)]
    root: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The embedded OCI runtime (runc's command line).
    Oci(husk_agent::runtime::cli::OciArgs),
}

fn main() -> ExitCode {
    husk_agent::logger::init();
    let mut args = Args::parse();
    // The runtime runs single-threaded, before any async runtime exists.
    if let Some(Command::Oci(oci)) = args.command.take() {
        return husk_agent::runtime::cli::main(oci);
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

async fn run(args: Args) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    husk_agent::system::log_data_status(&args.data_status);
    // A store that cannot be opened leaves the agent up (health, system)
    // with the image endpoints answering 503 and the reason.
    let images = ImageStore::open(args.root.clone()).await;
    match images.error() {
        Some(e) => log::error!("image store {}: {e}", args.root.display()),
        None => log::info!("image store at {}", args.root.display()),
    }
    let socket = ApiSocket::bind(&args.socket)?.with_config(ApiConfig {
        data_status: args.data_status.clone(),
        images,
    });
    log::info!("serving the API on {}", args.socket.display());
    // Ready only once the socket accepts connections.
    if let Err(e) = husk_common::notify::notify_ready() {
        log::warn!("cannot notify readiness: {e}");
    }
    socket
        .serve(async move {
            tokio::select! {
                _ = terminate.recv() => log::info!("SIGTERM: stopping"),
                _ = interrupt.recv() => log::info!("SIGINT: stopping"),
            }
        })
        .await?;
    log::info!("stopped");
    Ok(())
}
