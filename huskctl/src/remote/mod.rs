//! Which machine huskctl talks to and how: the target chosen from
//! `--host`, `--context`, `--socket` and the current context; the
//! client's identity and the trust in the machine's certificate (a CA,
//! a pin, or trust on first use, pinned in known_hosts afterwards); and
//! the files of huskctl's config dir.

pub mod contexts;
mod files;
pub mod host;
pub mod known_hosts;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use husk_api::tls::{ClientIdentity, Fingerprint, ServerTrust};
use husk_api::{Client, ClientError};

use self::files::read;
pub use self::files::{config_dir, ensure_dir, need_config, write_file};
use self::host::{Address, HostUrl};

/// The client's certificate and key; `hint` follows an error about a
/// missing file.
pub fn load_identity(cert: &Path, key: &Path, hint: &str) -> Result<ClientIdentity, String> {
    for path in [cert, key] {
        if !path.exists() {
            return Err(format!("{}: no such file; {hint}", path.display()));
        }
    }
    let cert_pem = read(cert, "the client's certificate")?;
    let key_pem = read(key, "the client's key")?;
    ClientIdentity::from_pem(&cert_pem, &key_pem, &cert.display().to_string())
        .map_err(|e| e.to_string())
}

/// The machine's CAs from a PEM file.
pub fn load_ca(path: &Path) -> Result<ServerTrust, String> {
    let pem = read(path, "the CA of the machine's certificate")?;
    husk_api::tls::certificates(&pem, &path.display().to_string())
        .map(ServerTrust::Ca)
        .map_err(|e| e.to_string())
}

/// The advice printed when a machine's certificate is first pinned.
pub fn first_contact(address: &Address, fingerprint: Fingerprint) -> String {
    format!(
        "first contact with {address}: pinned its certificate {fingerprint}; check it against \
         the \"API certificate\" line on the machine's console"
    )
}

/// An option's value and how it was given (`--host` or `HUSK_HOST`), for
/// errors.
#[derive(Debug, Clone)]
pub struct Given<T> {
    pub value: T,
    pub source: &'static str,
}

/// What the command talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Socket(PathBuf),
    Tcp(Address),
    Context(String),
}

/// The precedence: `--host`, then `--context`, then `--socket`, then
/// the current context (`current`, read only when it is needed), then
/// the default socket. Two of the first three together are an error.
pub fn select(
    host: Option<&Given<HostUrl>>,
    context: Option<&Given<String>>,
    socket: Option<&Path>,
    current: impl FnOnce() -> Result<Option<String>, String>,
) -> Result<Target, String> {
    let both = |a: &str, b: &str| Err(format!("{a} and {b} cannot both be given"));
    match (host, context, socket) {
        (Some(host), Some(context), _) => both(host.source, context.source),
        (Some(host), None, Some(_)) => both(host.source, "--socket"),
        (None, Some(context), Some(_)) => both(context.source, "--socket"),
        (Some(host), None, None) => Ok(match &host.value {
            HostUrl::Tcp(address) => Target::Tcp(address.clone()),
            HostUrl::Unix(path) => Target::Socket(path.clone()),
        }),
        (None, Some(context), None) => Ok(of_context(&context.value)),
        (None, None, Some(socket)) => Ok(Target::Socket(socket.to_owned())),
        (None, None, None) => Ok(current()?.map_or_else(default_socket, |name| of_context(&name))),
    }
}

fn default_socket() -> Target {
    Target::Socket(husk_api::DEFAULT_SOCKET.into())
}

fn of_context(name: &str) -> Target {
    if name == contexts::DEFAULT {
        default_socket()
    } else {
        Target::Context(name.to_owned())
    }
}

/// A client, and what to do once the command is done.
#[derive(Debug)]
pub struct Connection {
    pub client: Client,
    after: After,
}

#[derive(Debug)]
enum After {
    Nothing,
    /// First contact: pin what the machine presented.
    Pin {
        address: Address,
        known_hosts: PathBuf,
    },
    /// A pin that a mismatch should say how to replace.
    Pinned {
        pin: Fingerprint,
        hint: String,
    },
}

const ISSUE_HINT: &str = "make the client's certificate with `huskctl pki issue NAME --role ROLE`, \
     or point --tls-dir (HUSK_CERT_PATH) at the dir of cert.pem and key.pem";

/// The client for `target`. `tls_dir` holds the client's cert.pem and
/// key.pem (and the machine's CA as ca.pem) for a `tcp://` host; the
/// config dir when absent.
pub fn connect(
    target: Target,
    config: Option<&Path>,
    tls_dir: Option<&Path>,
) -> Result<Connection, String> {
    let remote = |address: &Address, identity, trust| {
        Client::remote(&address.to_string(), identity, trust).map_err(|e| e.to_string())
    };
    match target {
        Target::Socket(path) => Ok(Connection {
            client: Client::new(path),
            after: After::Nothing,
        }),
        Target::Tcp(address) => {
            let tls_dir = match tls_dir {
                Some(dir) => dir,
                None => need_config(config)?,
            };
            let identity = load_identity(
                &tls_dir.join("cert.pem"),
                &tls_dir.join("key.pem"),
                ISSUE_HINT,
            )?;
            let ca = tls_dir.join("ca.pem");
            if ca.exists() {
                let client = remote(&address, identity, load_ca(&ca)?)?;
                return Ok(Connection {
                    client,
                    after: After::Nothing,
                });
            }
            let known_hosts = need_config(config)?.join("known_hosts");
            let (trust, after) = match known_hosts::KnownHosts::load(&known_hosts)?.get(&address) {
                Some(pin) => (
                    ServerTrust::Pinned(pin),
                    After::Pinned {
                        pin,
                        hint: format!(
                            "if the machine was rebuilt, remove its line from {}",
                            known_hosts.display()
                        ),
                    },
                ),
                None => (
                    ServerTrust::FirstUse,
                    After::Pin {
                        address: address.clone(),
                        known_hosts,
                    },
                ),
            };
            Ok(Connection {
                client: remote(&address, identity, trust)?,
                after,
            })
        }
        Target::Context(name) => {
            let context = contexts::load(need_config(config)?, &name)?;
            let identity = load_identity(
                &context.cert,
                &context.key,
                &format!("context {name} names it (huskctl context inspect {name})"),
            )?;
            let (trust, after) = match (&context.ca, context.fingerprint) {
                (Some(ca), _) => (load_ca(ca)?, After::Nothing),
                (None, Some(pin)) => (
                    ServerTrust::Pinned(pin),
                    After::Pinned {
                        pin,
                        hint: format!(
                            "if the machine was rebuilt, check its console and make the context \
                         again: huskctl context create {name} --force --host tcp://{} …",
                            context.host
                        ),
                    },
                ),
                (None, None) => {
                    return Err(format!("context {name} has neither ca nor fingerprint"));
                }
            };
            Ok(Connection {
                client: remote(&context.host, identity, trust)?,
                after,
            })
        }
    }
}

impl Connection {
    /// After the command: pins a first contact's certificate (whenever
    /// the machine presented one, whatever it answered), and adds to a
    /// pin mismatch how to mend it.
    pub fn finish<T>(&self, result: Result<T, ClientError>) -> Result<T, String> {
        let seen = self.client.server_fingerprint();
        match (&self.after, seen) {
            (
                After::Pin {
                    address,
                    known_hosts,
                },
                Some(seen),
            ) => match known_hosts::pin(known_hosts, address, seen) {
                Ok(()) => eprintln!("huskctl: {}", first_contact(address, seen)),
                Err(e) => eprintln!("huskctl: could not pin {address}'s certificate {seen}: {e}"),
            },
            (After::Pinned { pin, hint }, Some(seen)) if seen != *pin => {
                if let Err(e @ ClientError::Tls { .. }) = result {
                    return Err(format!("{e}; {hint}"));
                }
            }
            _ => {}
        }
        result.map_err(|e| e.to_string())
    }
}
