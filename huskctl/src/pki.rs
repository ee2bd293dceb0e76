//! `huskctl pki`: the operator's certificates, made with rcgen (ECDSA
//! P-256): the CA that issues them, the clients' certificates with their
//! role (an `O=husk:ROLE` of the subject, husk_api::roles), the
//! machines' certificates for operators who issue those too, and
//! fingerprints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use husk_api::roles::Role;
use husk_api::tls::Fingerprint;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::remote::{ensure_dir, host, write_file};

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make the CA that issues the clients' certificates: ca.pem and
    /// ca-key.pem (give ca.pem to the machines, as user-data's
    /// `[api] client_ca`).
    Init {
        /// Where [default: <config>/pki].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Issue a client's certificate with a role: cert.pem and key.pem.
    Issue(IssueArgs),
    /// Issue a machine's certificate: server-cert.pem and server-key.pem,
    /// for user-data's `[api] server_cert` and `server_key`.
    Server(ServerArgs),
    /// Print the SHA-256 fingerprint of a PEM file's first certificate.
    Fingerprint { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The client's name: the certificate's CN.
    name: String,
    /// admin, operator or reader.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// The CA's dir [default: <config>/pki].
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Where [default: --tls-dir, or the config dir].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The machine's name: the CN, and a DNS name (or IP address) of it.
    name: String,
    /// Another address it is reached at; repeatable.
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<IpAddr>,
    /// Another DNS name it is reached at; repeatable.
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// The CA's dir [default: <config>/pki].
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().rev().map(|r| r.name()).collect();
        format!("the roles are {}", names.join(", "))
    })
}

/// `config` and `tls_dir` give the defaults of the dirs.
pub fn run(
    config: Option<&Path>,
    tls_dir: Option<&Path>,
    command: PkiCommand,
) -> Result<(), String> {
    let config = || crate::remote::need_config(config);
    let ca_dir = |dir: Option<PathBuf>| -> Result<PathBuf, String> {
        match dir {
            Some(dir) => Ok(dir),
            None => Ok(config()?.join("pki")),
        }
    };
    match command {
        PkiCommand::Init { dir } => {
            let dir = ca_dir(dir)?;
            init(&dir)?;
            println!(
                "Made the CA in {}: ca.pem (give it to the machines as user-data's \
                 `[api] client_ca`), ca-key.pem (keep it secret)",
                dir.display()
            );
        }
        PkiCommand::Issue(args) => {
            let out = match (args.out, tls_dir) {
                (Some(out), _) => out,
                (None, Some(dir)) => dir.to_owned(),
                (None, None) => config()?.to_owned(),
            };
            let until = issue(
                &ca_dir(args.ca_dir)?,
                &out,
                &args.name,
                args.role,
                args.days,
            )?;
            println!(
                "Issued {} the role {} ({}), until {until}: {} and {}",
                args.name,
                args.role,
                args.role.organization(),
                out.join("cert.pem").display(),
                out.join("key.pem").display()
            );
        }
        PkiCommand::Server(args) => {
            let ca_dir = ca_dir(args.ca_dir)?;
            let fingerprint = server(
                &ca_dir, &args.out, &args.name, &args.ips, &args.dns, args.days,
            )?;
            println!(
                "Issued {}'s certificate {fingerprint}: {} and {} (user-data's `[api] \
                 server_cert` and `server_key`)",
                args.name,
                args.out.join("server-cert.pem").display(),
                args.out.join("server-key.pem").display()
            );
        }
        PkiCommand::Fingerprint { file } => println!("{}", fingerprint(&file)?),
    }
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Valid from five minutes ago (clocks disagree) for `days`.
fn params(distinguished_name: DistinguishedName, days: u32) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days.into());
    params
}

fn rcgen_error(e: rcgen::Error) -> String {
    format!("cannot make the certificate: {e}")
}

/// Writes a key (0600) and its certificate (0644), neither over a file.
fn write_pair(key: (&Path, &KeyPair), cert: (&Path, &str)) -> Result<(), String> {
    for path in [key.0, cert.0] {
        if path.exists() {
            return Err(format!("{} exists: not overwriting it", path.display()));
        }
    }
    write_file(key.0, key.1.serialize_pem().as_bytes(), 0o600, false)?;
    write_file(cert.0, cert.1.as_bytes(), 0o644, false)
}

/// `dir`/ca.pem and ca-key.pem: a CA for ten years, issuing end entities
/// only.
pub fn init(dir: &Path) -> Result<(), String> {
    let mut params = params(name("Husk API CA"), 3653);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let cert = params.self_signed(&key).map_err(rcgen_error)?;
    ensure_dir(dir)?;
    write_pair(
        (&dir.join("ca-key.pem"), &key),
        (&dir.join("ca.pem"), &cert.pem()),
    )
}

fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, String> {
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{}: no such file; make the CA with `huskctl pki init`, or give --ca-dir",
                path.display()
            ),
            _ => format!("{}: {e}", path.display()),
        })
    };
    let (cert, key) = (read("ca.pem")?, read("ca-key.pem")?);
    let shown = |file: &str| dir.join(file).display().to_string();
    let key = KeyPair::from_pem(&key).map_err(|e| format!("{}: {e}", shown("ca-key.pem")))?;
    Issuer::from_ca_cert_pem(&cert, key).map_err(|e| format!("{}: {e}", shown("ca.pem")))
}

/// `out`/cert.pem and key.pem: a client's certificate with `role`.
/// Returns the last day it is valid.
pub fn issue(
    ca_dir: &Path,
    out: &Path,
    common_name: &str,
    role: Role,
    days: u32,
) -> Result<time::Date, String> {
    if common_name.is_empty() {
        return Err("a client needs a name".to_owned());
    }
    let issuer = load_ca(ca_dir)?;
    let mut subject = name(common_name);
    subject.push(DnType::OrganizationName, role.organization());
    let mut params = params(subject, days);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_error)?;
    ensure_dir(out)?;
    write_pair(
        (&out.join("key.pem"), &key),
        (&out.join("cert.pem"), &cert.pem()),
    )?;
    Ok(params.not_after.date())
}

/// `out`/server-cert.pem and server-key.pem: a machine's certificate for
/// `common_name` and the other names and addresses. Returns its
/// fingerprint.
pub fn server(
    ca_dir: &Path,
    out: &Path,
    common_name: &str,
    ips: &[IpAddr],
    dns: &[String],
    days: u32,
) -> Result<Fingerprint, String> {
    let issuer = load_ca(ca_dir)?;
    let mut params = params(name(common_name), days);
    let dns_name = |name: &str| {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        host::is_dns_name(bare)
            .then(|| name.try_into().ok())
            .flatten()
            .map(SanType::DnsName)
            .ok_or_else(|| format!("`{name}` is not a DNS name"))
    };
    let first = match common_name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => dns_name(common_name)?,
    };
    let others = ips.iter().map(|&ip| Ok(SanType::IpAddress(ip)));
    let others = others.chain(dns.iter().map(|name| dns_name(name)));
    params.subject_alt_names = vec![first];
    for san in others {
        let san = san?;
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_error)?;
    if !out.exists() {
        ensure_dir(out)?;
    }
    write_pair(
        (&out.join("server-key.pem"), &key),
        (&out.join("server-cert.pem"), &cert.pem()),
    )?;
    Ok(Fingerprint::of(cert.der()))
}

/// The fingerprint of the first certificate in a PEM file.
pub fn fingerprint(file: &Path) -> Result<Fingerprint, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let certs = husk_api::tls::certificates(&pem, &file.display().to_string())
        .map_err(|e| e.to_string())?;
    Ok(Fingerprint::of(&certs[0]))
}

#[cfg(test)]
mod tests;
