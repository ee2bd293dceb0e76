//! `huskctl update check | apply | status | rollback`.

use clap::Subcommand;
use husk_api::update::{
    ApplyRequest, RollbackRequest, UPDATE_APPLY_PATH, UPDATE_CHECK_PATH, UPDATE_PATH,
    UPDATE_ROLLBACK_PATH, UpdateOutcome, UpdateStatus,
};
use husk_api::{Client, ClientError};

#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Ask the repository whether a newer release is available.
    Check,
    /// Download, verify and install a release, then reboot into it.
    Apply {
        /// A version of the channel [default: the newest].
        #[arg(long)]
        version: Option<String>,
        /// Allow a downgrade, or a release that needs a newer running
        /// version.
        #[arg(long)]
        force: bool,
        /// Install only; the next reboot tries it.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Show the versions, boot entries, this boot's assessment and the
    /// last rollback.
    Status {
        /// Print the agent's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Switch back to the other version on the ESP, and reboot.
    Rollback {
        #[arg(long)]
        no_reboot: bool,
    },
}

pub async fn run(client: &Client, command: UpdateCommand) -> Result<(), ClientError> {
    let outcome: UpdateOutcome = match command {
        UpdateCommand::Check => client.post_empty(UPDATE_CHECK_PATH).await?,
        UpdateCommand::Apply {
            version,
            force,
            no_reboot,
        } => {
            let request = ApplyRequest {
                version,
                force,
                no_reboot,
            };
            client.post(UPDATE_APPLY_PATH, &request).await?
        }
        UpdateCommand::Rollback { no_reboot } => {
            client
                .post(UPDATE_ROLLBACK_PATH, &RollbackRequest { no_reboot })
                .await?
        }
        UpdateCommand::Status { json } => {
            let status: UpdateStatus = client.get(UPDATE_PATH).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            return Ok(());
        }
    };
    println!("{}", outcome.message);
    Ok(())
}

fn print_status(status: &UpdateStatus) {
    let unknown = "unknown".to_owned();
    println!(
        "running:    {}",
        status.running_version.as_ref().unwrap_or(&unknown)
    );
    println!("assessment: {}", status.assessment);
    println!(
        "repository: {} (channel {})",
        status.repository.as_deref().unwrap_or("none"),
        status.channel
    );
    if let Some(e) = &status.esp_error {
        println!("esp:        {e}");
    }
    for entry in &status.entries {
        let mark = if entry.running { "*" } else { " " };
        println!("  {mark} {:<28} {}", entry.file, entry.state);
    }
    if let Some(next) = &status.next_boot {
        println!("next boot:  {next}");
    }
    if let Some(pending) = &status.state.pending {
        println!(
            "pending:    {} (applied over {} at {})",
            pending.version, pending.from_version, pending.applied_at
        );
    }
    if let Some(rollback) = &status.state.last_rollback {
        println!(
            "rollback:   {} -> {} at {}: {}",
            rollback.from_version, rollback.to_version, rollback.at, rollback.reason
        );
    }
    if let Some(check) = &status.state.last_check {
        println!("last check: {} ({})", check.outcome, check.at);
    }
}
