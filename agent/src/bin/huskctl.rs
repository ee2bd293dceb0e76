use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use husk_agent::api::{HEALTH_PATH, Health, SYSTEM_PATH, System};
use husk_agent::client::Client;

/// Controls a Husk machine through its agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The agent's API socket.
    #[arg(long, global = true, default_value = husk_common::paths::AGENT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask the agent whether it is healthy (exit 0 when it is).
    Health,
    /// Show the machine's state: the data partition.
    Status {
        /// Print the agent's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("huskctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(&cli.socket);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Health => client.get::<Health>(HEALTH_PATH).await.map(|h| {
                println!("{} (husk-agent {})", h.status, h.version);
            }),
            Command::Status { json } => client.get::<System>(SYSTEM_PATH).await.map(|s| {
                if json {
                    println!("{}", serde_json::json!({ "data": s.data }));
                } else {
                    println!("data: {}", husk_agent::system::describe_data(&s.data));
                }
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huskctl: {e}");
            ExitCode::FAILURE
        }
    }
}
