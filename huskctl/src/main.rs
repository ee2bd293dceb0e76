//! huskctl: controls a Husk machine through its agent's API. It speaks
//! husk-api over the agent's unix socket, or over a machine's remote API
//! (TLS with a client certificate), and knows nothing else of the agent:
//! no store, no runtime, no daemon code. It ships in the release bundle
//! beside husk-image, not in the image (nothing inside a Husk machine has
//! a shell to run it).

mod attach;
mod containers;
mod networks;
mod pki;
mod pull;
mod remote;
mod table;
mod update;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use husk_api::images::{
    GcReport, IMAGES_GC_PATH, IMAGES_IMPORT_PATH, IMAGES_PATH, IMAGES_TAG_PATH, ImageDetails,
    ImageList, ImportRequest, RemoveResponse, TagRequest, image_path,
};
use husk_api::{Client, ClientError, HEALTH_PATH, Health, SYSTEM_PATH, System};

use remote::Given;
use remote::host::HostUrl;

/// Controls a Husk machine through its agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The machine: tcp://HOST:PORT (its remote API) or unix:///PATH.
    #[arg(
        short = 'H',
        long,
        global = true,
        env = "HUSK_HOST",
        value_name = "URL"
    )]
    host: Option<HostUrl>,
    /// A machine saved by `huskctl context create`; `default` is the
    /// local socket.
    #[arg(long, global = true, env = "HUSK_CONTEXT", value_name = "NAME",
          value_parser = remote::contexts::parse_name)]
    context: Option<String>,
    /// The client's cert.pem and key.pem, and ca.pem if the machine's
    /// certificate is a CA's [default: the config dir, ~/.config/husk].
    #[arg(long, global = true, env = "HUSK_CERT_PATH", value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    #[arg(long, global = true, value_name = "PATH",
          help = format!("The agent's API socket [default: {}]", husk_api::DEFAULT_SOCKET))]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Api(ApiCommand),
    /// Saved machines: create, ls, use, rm, inspect.
    #[command(subcommand)]
    Context(remote::contexts::ContextCommand),
    /// The certificates of the remote API: init (the CA), issue (a
    /// client's), server (a machine's), fingerprint.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
}

/// The verbs that ask the agent.
#[derive(Subcommand)]
enum ApiCommand {
    /// Ask the agent whether it is healthy (exit 0 when it is).
    Health,
    /// Show the machine's state: the data partition.
    Status {
        /// Print the agent's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Pull an image from a registry (as `image pull`).
    Pull(PullArgs),
    /// Manage the machine's images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Signed A/B OS updates: check, apply, status, rollback.
    #[command(subcommand)]
    Update(update::UpdateCommand),
    /// The containers' networks: create, ls, inspect, rm, connect, disconnect.
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Named volumes: create, ls, inspect, rm, prune.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    #[command(flatten)]
    Container(containers::ContainerCommand),
}

#[derive(clap::Args)]
struct PullArgs {
    /// `nginx`, `ghcr.io/o/app:1`, `registry.example/app@sha256:…`.
    #[arg(value_name = "REF")]
    reference: String,
    /// The image of a multi-platform index: os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Pull an image from a registry, showing each layer's progress.
    Pull(PullArgs),
    /// Import the images of an OCI layout or `docker save` archive (a file
    /// on this machine).
    Import { file: PathBuf },
    /// List the images.
    Ls,
    /// Remove an image name, or the image when it is its last name or an
    /// id.
    Rm {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Give an image another name (`docker tag`): SOURCE is a name, an id
    /// or an id prefix; TARGET `[registry/]repository[:tag]`.
    Tag {
        #[arg(value_name = "SOURCE")]
        source: String,
        #[arg(value_name = "TARGET")]
        target: String,
    },
    /// Show an image and its config as JSON.
    Inspect {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Remove the layers and blobs no image uses.
    Gc,
}

fn main() -> ExitCode {
    // An empty variable is an unset one, as for DOCKER_HOST.
    let mut command = Cli::command();
    for (id, var) in [
        ("host", "HUSK_HOST"),
        ("context", "HUSK_CONTEXT"),
        ("tls_dir", "HUSK_CERT_PATH"),
    ] {
        if std::env::var_os(var).is_some_and(|value| value.is_empty()) {
            command = command.mut_arg(id, |arg| arg.env(None));
        }
    }
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // For errors: whether an option came from its flag or its variable.
    let given = |id: &str, flag: &'static str, env: &'static str| match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => env,
        _ => flag,
    };
    let host = cli.host.map(|value| Given {
        value,
        source: given("host", "--host", "HUSK_HOST"),
    });
    let context = cli.context.map(|value| Given {
        value,
        source: given("context", "--context", "HUSK_CONTEXT"),
    });
    let tls_dir = cli.tls_dir.map(|value| Given {
        value,
        source: given("tls_dir", "--tls-dir", "HUSK_CERT_PATH"),
    });
    let config = remote::config_dir(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Context(command) => {
                let globals = remote::contexts::Globals {
                    config: config.as_deref(),
                    host: host.as_ref(),
                    tls_dir: tls_dir.as_ref(),
                };
                remote::contexts::run(globals, command).await.map(|()| 0)
            }
            Command::Pki(command) => {
                let tls_dir = tls_dir.as_ref().map(|dir| dir.value.as_path());
                pki::run(config.as_deref(), tls_dir, command).map(|()| 0)
            }
            Command::Api(command) => {
                let target = remote::select(
                    host.as_ref(),
                    context.as_ref(),
                    cli.socket.as_deref(),
                    || {
                        config
                            .as_deref()
                            .map_or(Ok(None), remote::contexts::current)
                    },
                )?;
                let tls_dir = tls_dir.as_ref().map(|dir| dir.value.as_path());
                let connection = remote::connect(target, config.as_deref(), tls_dir)?;
                let result = api(&connection.client, command).await;
                connection.finish(result)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("huskctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a verb of the agent's; returns the process's exit code.
async fn api(client: &Client, command: ApiCommand) -> Result<u8, ClientError> {
    match command {
        ApiCommand::Health => client.get::<Health>(HEALTH_PATH).await.map(|h| {
            println!("{} (husk-agent {})", h.status, h.version);
        }),
        ApiCommand::Status { json } => client.get::<System>(SYSTEM_PATH).await.map(|s| {
            if json {
                println!("{}", serde_json::to_value(&s).unwrap_or_default());
            } else {
                println!("data: {}", husk_api::describe_data(&s.data));
                let time = &s.time;
                let text = |key: &str| time.get(key).and_then(serde_json::Value::as_str);
                let offset = time.get("offset_ms").and_then(serde_json::Value::as_f64);
                let at = time.get("at").and_then(serde_json::Value::as_u64);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let measured = if text("mode") == Some("measure-only") {
                    " (measured only)"
                } else {
                    ""
                };
                match (text("state"), text("server"), offset, at, text("error")) {
                    (Some("synced"), Some(server), Some(offset), Some(at), _) => println!(
                        "time: synced to {server}, offset {offset:.1} ms, {} s ago{measured}",
                        now.saturating_sub(at)
                    ),
                    (Some("disabled"), ..) => println!("time: disabled"),
                    (_, _, _, _, Some(error)) => println!("time: not synced: {error}"),
                    _ => {}
                }
                println!("api: {}", husk_api::describe_api(&s.api));
            }
        }),
        ApiCommand::Pull(args) | ApiCommand::Image(ImageCommand::Pull(args)) => {
            pull::pull(client, &args.reference, args.platform, pull::Output::Stdout)
                .await
                .map(drop)
        }
        ApiCommand::Image(command) => image(client, command).await,
        ApiCommand::Update(command) => update::run(client, command).await,
        ApiCommand::Network(command) => networks::run(client, command).await,
        ApiCommand::Volume(command) => volumes::run(client, command).await,
        ApiCommand::Container(command) => return containers::run(client, command).await,
    }
    .map(|()| 0)
}

async fn image(client: &Client, command: ImageCommand) -> Result<(), ClientError> {
    match command {
        ImageCommand::Pull(args) => {
            pull::pull(client, &args.reference, args.platform, pull::Output::Stdout).await?;
        }
        ImageCommand::Import { file } => {
            // The agent resolves paths from its own directory, not ours.
            let path = std::path::absolute(&file).unwrap_or(file);
            let list: ImageList = client
                .post(IMAGES_IMPORT_PATH, &ImportRequest { path })
                .await?;
            for image in list.images {
                let names = if image.names.is_empty() {
                    "<none>".to_string()
                } else {
                    image.names.join(", ")
                };
                println!("Loaded image: {names} ({})", image.id);
            }
        }
        ImageCommand::Ls => {
            let list: ImageList = client.get(IMAGES_PATH).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            print!("{}", table::image_table(&list.images, now));
        }
        ImageCommand::Rm { reference } => {
            let removed: RemoveResponse = client.delete(&image_path(&reference)).await?;
            if let Some(name) = removed.untagged {
                println!("Untagged: {name}");
            }
            if let Some(id) = removed.deleted {
                println!("Deleted: {id}");
            }
        }
        ImageCommand::Tag { source, target } => {
            let request = TagRequest { source, target };
            let tagged: husk_api::images::ImageSummary =
                client.post(IMAGES_TAG_PATH, &request).await?;
            println!("Tagged {} as {}", tagged.id, request.target);
        }
        ImageCommand::Inspect { reference } => {
            let details: ImageDetails = client.get(&image_path(&reference)).await?;
            println!("{}", serde_json::to_string_pretty(&details)?);
        }
        ImageCommand::Gc => {
            let report: GcReport = client.post_empty(IMAGES_GC_PATH).await?;
            println!(
                "Removed {} layers and {} blobs",
                report.layers.len(),
                report.blobs.len()
            );
        }
    }
    Ok(())
}
