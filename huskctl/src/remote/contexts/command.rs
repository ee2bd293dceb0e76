//! The `huskctl context` verbs over the stored contexts.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use husk_api::tls::{Fingerprint, ServerTrust};
use husk_api::{Client, HEALTH_PATH, Health};

use super::{
    Context, DEFAULT, current, list, load, parse_name, parse_new_name, path, save, set_current,
};
use crate::remote::host::HostUrl;
use crate::remote::{self, Given, need_config};

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Save a machine under a name: its address (--host), the client's
    /// certificate (--cert and --key, or --tls-dir's cert.pem and key.pem)
    /// and how its certificate is trusted (--ca, --fingerprint, or the
    /// one it presents now).
    Create(CreateArgs),
    /// List the contexts; `*` marks the current one.
    Ls,
    /// Make a context the current one (`default`: the local socket).
    Use {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Remove a context.
    Rm {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Show a context.
    Inspect {
        #[arg(value_parser = parse_name)]
        name: String,
        /// As JSON rather than TOML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(value_parser = parse_new_name)]
    name: String,
    /// The client's certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The client's key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Trust the machine's certificate as issued by this CA (PEM).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    ca: Option<PathBuf>,
    /// Trust exactly the machine's certificate of this fingerprint (its
    /// console's "API certificate" line).
    #[arg(long, value_name = "FP", value_parser = parse_fingerprint)]
    fingerprint: Option<Fingerprint>,
    /// Save without connecting (needs --ca or --fingerprint).
    #[arg(long)]
    no_check: bool,
    /// Replace a context of this name.
    #[arg(long)]
    force: bool,
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    text.parse()
        .map_err(|e: husk_api::tls::TlsError| e.to_string())
}

/// The global options `context` uses.
#[derive(Debug)]
pub struct Globals<'a> {
    pub config: Option<&'a Path>,
    pub host: Option<&'a Given<HostUrl>>,
    pub tls_dir: Option<&'a Given<PathBuf>>,
}

pub async fn run(globals: Globals<'_>, command: ContextCommand) -> Result<(), String> {
    let config = need_config(globals.config)?;
    match command {
        ContextCommand::Create(args) => create(config, &globals, args).await,
        ContextCommand::Ls => {
            let current = current(config)?;
            let mut rows = vec![["NAME".to_owned(), "HOST".to_owned(), "TRUST".to_owned()]];
            let mark = |name: &str| {
                let is = current.as_deref().unwrap_or(DEFAULT) == name;
                format!("{name}{}", if is { " *" } else { "" })
            };
            rows.push([
                mark(DEFAULT),
                HostUrl::Unix(husk_api::DEFAULT_SOCKET.into()).to_string(),
                "-".to_owned(),
            ]);
            for (name, context) in list(config)? {
                let host = HostUrl::Tcp(context.host.clone()).to_string();
                rows.push([mark(&name), host, context.trust()]);
            }
            let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
            let (name, host) = (width(0), width(1));
            for [a, b, c] in &rows {
                println!("{a:name$}   {b:host$}   {c}");
            }
            Ok(())
        }
        ContextCommand::Use { name } => {
            if name != DEFAULT {
                load(config, &name)?;
            }
            set_current(config, Some(&name))?;
            println!("Current context: {name}");
            Ok(())
        }
        ContextCommand::Rm { name } => {
            if name == DEFAULT {
                return Err("`default` is the local socket: it cannot be removed".to_owned());
            }
            let file = path(config, &name);
            std::fs::remove_file(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("no context {name}"),
                _ => format!("{}: {e}", file.display()),
            })?;
            println!("Removed context {name}");
            if current(config)?.as_deref() == Some(name.as_str()) {
                set_current(config, None)?;
                println!("It was the current context: the current one is now default");
            }
            Ok(())
        }
        ContextCommand::Inspect { name, json } => {
            let text = if name == DEFAULT {
                let host = HostUrl::Unix(husk_api::DEFAULT_SOCKET.into()).to_string();
                if json {
                    serde_json::json!({ "host": host }).to_string()
                } else {
                    format!("host = {host:?}")
                }
            } else {
                let context = load(config, &name)?;
                if json {
                    serde_json::to_string_pretty(&context).map_err(|e| e.to_string())?
                } else {
                    toml::to_string(&context).map_err(|e| e.to_string())?
                }
            };
            println!("{}", text.trim_end());
            Ok(())
        }
    }
}

async fn create(config: &Path, globals: &Globals<'_>, args: CreateArgs) -> Result<(), String> {
    let host = match globals.host.map(|h| &h.value) {
        Some(HostUrl::Tcp(address)) => address.clone(),
        Some(other) => return Err(format!("{other}: a context is a tcp://HOST:PORT host")),
        None => return Err("context create needs --host tcp://HOST:PORT".to_owned()),
    };
    if !args.force && path(config, &args.name).exists() {
        return Err(format!("context {} exists: --force replaces it", args.name));
    }
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    let tls_dir = globals.tls_dir.map_or(config, |dir| &dir.value);
    let (cert, key, ca_in_dir) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            if let Some(Given {
                source: "--tls-dir",
                ..
            }) = globals.tls_dir
            {
                return Err("--cert/--key and --tls-dir cannot both be given".to_owned());
            }
            (absolute(cert)?, absolute(key)?, None)
        }
        _ => {
            let ca = tls_dir.join("ca.pem");
            let ca = ca.exists().then_some(ca);
            (
                absolute(&tls_dir.join("cert.pem"))?,
                absolute(&tls_dir.join("key.pem"))?,
                ca,
            )
        }
    };
    let identity = || remote::load_identity(&cert, &key, "give --cert and --key, or --tls-dir");
    identity()?;
    // The tls dir's ca.pem, as a direct --host uses it, unless a pin is given.
    let ca = match (&args.ca, args.fingerprint) {
        (Some(ca), _) => Some(absolute(ca)?),
        (None, None) => ca_in_dir.map(|ca| absolute(&ca)).transpose()?,
        (None, Some(_)) => None,
    };
    let trust = match (&ca, args.fingerprint) {
        (Some(ca), _) => remote::load_ca(ca)?,
        (None, Some(pin)) => ServerTrust::Pinned(pin),
        (None, None) if args.no_check => {
            return Err(
                "--no-check needs --ca or --fingerprint: else the machine's certificate is \
                 learnt by connecting to it"
                    .to_owned(),
            );
        }
        (None, None) => ServerTrust::FirstUse,
    };
    let first_use = matches!(trust, ServerTrust::FirstUse);
    let mut fingerprint = args.fingerprint;
    if !args.no_check {
        let client =
            Client::remote(&host.to_string(), identity()?, trust).map_err(|e| e.to_string())?;
        if let Err(e) = client.get::<Health>(HEALTH_PATH).await {
            let retry = if first_use {
                ""
            } else {
                " (--no-check saves it anyway)"
            };
            return Err(format!("cannot check tcp://{host}{retry}: {e}"));
        }
        if first_use {
            let seen = client
                .server_fingerprint()
                .ok_or_else(|| format!("tcp://{host} presented no certificate"))?;
            eprintln!("huskctl: {}", remote::first_contact(&host, seen));
            fingerprint = Some(seen);
        }
    }
    let context = Context {
        host,
        cert,
        key,
        ca,
        fingerprint,
    };
    save(config, &args.name, &context, args.force)?;
    let trusting = match (&context.ca, context.fingerprint) {
        (Some(ca), _) => format!("certificates of the CA {}", ca.display()),
        (None, Some(pin)) => pin.to_string(),
        (None, None) => "-".to_owned(),
    };
    println!(
        "Saved context {}: tcp://{}, trusting {trusting} (huskctl context use {} makes it current)",
        args.name, context.host, args.name
    );
    Ok(())
}
