use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use husk_agent::api::ApiConfig;
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
}

fn main() -> ExitCode {
    husk_agent::logger::init();
    let args = Args::parse();
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
    let socket = ApiSocket::bind(&args.socket)?.with_config(ApiConfig {
        data_status: args.data_status.clone(),
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
