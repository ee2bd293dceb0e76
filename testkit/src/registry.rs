//! A real registry for tests: Debian's docker-registry on loopback, with TLS from a CA the test makes and htpasswd auth, and images pushed into it with skopeo.
//!
//! - [`TestCa`]: a throwaway certificate authority (rcgen) that issues
//!   server certificates for `127.0.0.1` and `localhost`.
//! - [`Registry`]: `/usr/bin/docker-registry serve` (distribution 2.8)
//!   on a free loopback port, storing in a temporary directory, with
//!   optional TLS and htpasswd basic auth; killed when dropped.
//! - [`skopeo_copy`] and [`skopeo_inspect_raw`]: pushing into it and
//!   reading manifests back the way users' tools do, in the manifest
//!   format and layer compression asked for.
//! - [`image_layout`], [`multi_arch_layout`] and [`random_layers`]: OCI
//!   image layout directories to push from (`oci:DIR:NAME`), including
//!   an image index of several architectures, and large incompressible
//!   layers for benchmarks.
//!
//! The tests that use these need the Debian packages `docker-registry`
//! and `skopeo` (listed in xtask's prerequisites); without them, [`Registry::start`] and
//! [`skopeo_copy`] fail with an error naming the package, so that a
//! missing package fails the tests rather than skipping them.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;

use crate::oci::{self, config_and_manifest, descriptor, sha256};

/// Where Debian's docker-registry package puts the registry.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// skopeo, as found on `PATH` (Debian's package puts it in /usr/bin).
pub const SKOPEO: &str = "skopeo";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How long [`Registry::start`] waits for the registry to answer.
const START_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A certificate authority made for one test: a self-signed ECDSA P-256
/// CA certificate and its key, kept in memory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A fresh CA ("Husk test CA"), valid from 1975 to 4096 (rcgen's
    /// defaults: no clock makes it expire during a test).
    pub fn new() -> Self {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Husk test CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate the test CA's key");
        let issuer =
            CertifiedIssuer::self_signed(params, key).expect("self-sign the test CA's certificate");
        Self { issuer }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate and its private key, both PEM, for `hosts`:
    /// each one that parses as an IP address becomes an IP address SAN
    /// (`"127.0.0.1"`), any other a DNS name SAN (`"localhost"`). The
    /// first host is also the subject's common name.
    pub fn issue(&self, hosts: &[&str]) -> (String, String) {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names)
            .unwrap_or_else(|e| panic!("certificate parameters for {hosts:?}: {e}"));
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, hosts.first().copied().unwrap_or("husk"));
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign a server certificate for {hosts:?}: {e}"));
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_ca(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.ca_pem())
    }

    /// Writes `dir/ca.crt`, making `dir` first: a certificate directory
    /// as skopeo's `--cert-dir` and the containers `certs.d` convention
    /// read it (every `*.crt` is a trusted CA).
    pub fn write_cert_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.write_ca(&dir.join("ca.crt"))
    }
}

/// What [`Registry::start`] sets up.
#[derive(Default)]
pub struct RegistryOptions<'a> {
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost`
    /// issued by this CA (plain HTTP when `None`).
    pub tls: Option<&'a TestCa>,
    /// Require HTTP basic auth for this user and password (htpasswd,
    /// bcrypt); anonymous when `None`.
    pub basic_auth: Option<(String, String)>,
}

/// A running docker-registry on `127.0.0.1`, storing in a temporary
/// directory; killed (and waited for) when dropped, and its log printed
/// if the dropping thread is panicking.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    tls: bool,
    basic_auth: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Writes a config, starts `docker-registry serve` on a free port and
    /// waits (10 s at most) until it answers: `GET /v2/` with 200 or 401
    /// over plain HTTP, or a port that accepts connections for HTTPS.
    /// A port taken between picking and binding it is retried on another.
    pub fn start(opts: RegistryOptions<'_>) -> io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("husk-registry-")
            .tempdir()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage)?;
        let mut tls_files = None;
        if let Some(ca) = opts.tls {
            let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]);
            let cert_path = dir.path().join("server.crt");
            let key_path = dir.path().join("server.key");
            std::fs::write(&cert_path, cert)?;
            std::fs::write(&key_path, key)?;
            ca.write_cert_dir(&dir.path().join("certs.d"))?;
            tls_files = Some((cert_path, key_path));
        }
        let htpasswd = match &opts.basic_auth {
            Some((user, password)) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, htpasswd_line(user, password))?;
                Some(path)
            }
            None => None,
        };

        let log_path = dir.path().join("registry.log");
        let tls = opts.tls.is_some();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let addr = free_port()?;
            let config = config_yaml(addr, &storage, tls_files.as_ref(), htpasswd.as_deref());
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config)?;
            let log = File::create(&log_path)?;
            let mut command = Command::new(DOCKER_REGISTRY);
            command
                .arg("serve")
                .arg(&config_path)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            // The registry reads REGISTRY_* variables over its config.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(key);
                }
            }
            let mut child = command.spawn().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot run {DOCKER_REGISTRY} ({e}): the registry tests need the Debian \
                         package docker-registry (apt-get install docker-registry)"
                    ),
                )
            })?;
            match wait_ready(&mut child, addr, tls, &log_path) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        addr,
                        tls,
                        basic_auth: opts.basic_auth,
                        dir,
                    });
                }
                Err(e) => {
                    kill_and_wait(&mut child);
                    // Someone took the port between free_port and the
                    // registry's bind: try another.
                    if attempts < 3 && read_log(&log_path).contains("address already in use") {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Where the registry listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// skopeo's reference to `repository[:tag|@digest]` in this
    /// registry: `docker://127.0.0.1:PORT/repository…`.
    pub fn docker_ref(&self, repository: &str) -> String {
        format!("docker://{}/{repository}", self.addr)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user and password it requires, if it requires any.
    pub fn basic_auth(&self) -> Option<&(String, String)> {
        self.basic_auth.as_ref()
    }

    /// The CA certificate directory (`ca.crt`) for skopeo's
    /// `--cert-dir`, when it serves HTTPS.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("certs.d"))
    }

    /// The CA certificate file (PEM), when it serves HTTPS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.cert_dir().map(|dir| dir.join("ca.crt"))
    }

    /// The filesystem storage root (`docker/registry/v2/…` below it),
    /// for tests that tamper with stored blobs.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry has written to its stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("registry.log"))
    }

    /// [`PushOptions`] that reach this registry: its credentials, and
    /// its CA (or no TLS verification for plain HTTP); single image,
    /// source's format and compression.
    pub fn push_options(&self) -> PushOptions {
        PushOptions {
            tls: match self.cert_dir() {
                Some(dir) => Tls::CertDir(dir),
                None => Tls::Insecure,
            },
            creds: self.basic_auth.clone(),
            ..PushOptions::default()
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let exited = self.child.try_wait().ok().flatten();
        kill_and_wait(&mut self.child);
        if std::thread::panicking() {
            eprintln!(
                "docker-registry on {} (test panicked); its log:\n{}",
                self.addr,
                self.log()
            );
        } else if let Some(status) = exited {
            eprintln!(
                "docker-registry on {} had exited by itself ({status}); its log:\n{}",
                self.addr,
                self.log()
            );
        }
    }
}

/// Polls until the registry on `addr` answers, exits, or the deadline
/// passes.
fn wait_ready(child: &mut Child, addr: SocketAddr, tls: bool, log: &Path) -> io::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "docker-registry exited at start ({status}); its log:\n{}",
                read_log(log)
            )));
        }
        if answers(addr, tls) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "docker-registry did not answer on {addr} within {START_DEADLINE:?}; its log:\n{}",
                    read_log(log)
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// One readiness probe: for plain HTTP, `GET /v2/` answered 200 (open)
/// or 401 (auth); for HTTPS, a port that accepts connections (the TLS
/// listener is only up with its certificate loaded).
fn answers(addr: SocketAddr, tls: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if tls {
        // (The registry logs the dropped connection as a TLS handshake
        // error "EOF": harmless.)
        return true;
    }
    let timeout = Some(Duration::from_secs(1));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 256];
    while !response.contains(&b'\n') && response.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let response = String::from_utf8_lossy(&response);
    let status = response
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1));
    matches!(status, Some("200" | "401"))
}

/// Kills `child` unless it has exited, and reaps it.
fn kill_and_wait(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|log| String::from_utf8_lossy(&log).into_owned())
        .unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

/// A loopback address with a port nobody listens on (yet): bound to
/// port 0, then released for the registry to bind.
fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// An htpasswd line for `user`: bcrypt at cost 4 (fast), as `$2y$`,
/// what Apache's `htpasswd -B` writes. (distribution 2.8 checks with
/// Go's bcrypt, which takes `$2a$` and `$2b$` as well: all three work.)
fn htpasswd_line(user: &str, password: &str) -> String {
    let hash = bcrypt::hash_with_result(password, 4).expect("bcrypt a password");
    format!(
        "{user}:{}\n",
        hash.format_for_version(bcrypt::Version::TwoY)
    )
}

/// A YAML string: JSON's quoting is valid YAML.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn yaml_path(path: &Path) -> String {
    yaml_str(path.to_str().expect("temporary paths are UTF-8"))
}

/// distribution's configuration for a registry on `addr`.
fn config_yaml(
    addr: SocketAddr,
    storage: &Path,
    tls: Option<&(PathBuf, PathBuf)>,
    htpasswd: Option<&Path>,
) -> String {
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {}\n  secret: husk-test-secret\n",
        yaml_path(storage),
        yaml_str(&addr.to_string()),
    );
    if let Some((cert, key)) = tls {
        yaml += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_path(cert),
            yaml_path(key)
        );
    }
    if let Some(htpasswd) = htpasswd {
        yaml += &format!(
            "auth:\n  htpasswd:\n    realm: husk-test\n    path: {}\n",
            yaml_path(htpasswd)
        );
    }
    yaml
}

/// The manifest type skopeo writes at the destination (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifests (and indexes): `--format oci`.
    Oci,
    /// Docker schema 2 manifests (and manifest lists): `--format v2s2`.
    DockerV2S2,
}

/// How skopeo compresses layers it pushes (`--dest-compress-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`tar+gzip` layers).
    Gzip,
    /// zstd (`tar+zstd` layers; OCI manifests only).
    Zstd,
}

/// How skopeo treats the registry's TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tls {
    /// `--tls-verify=false`: plain HTTP, or HTTPS unverified.
    #[default]
    Insecure,
    /// Verify against the CAs (`*.crt`) in this directory (`--cert-dir`).
    CertDir(PathBuf),
    /// Verify against the system's CAs only (`--tls-verify=true`).
    System,
}

/// How [`skopeo_copy`] pushes (and [`skopeo_inspect_raw`] reads).
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Copy every image of an index (`--all`), not just the host's.
    pub all: bool,
    /// The destination's manifest type; the source's when `None`.
    pub format: Option<ManifestFormat>,
    /// Compress layers so (`--dest-compress --dest-compress-format`);
    /// skopeo's default (gzip for uncompressed sources) when `None`.
    pub compression: Option<Compression>,
    /// TLS at the registry.
    pub tls: Tls,
    /// `user`, `password` (`--dest-creds`); anonymous when `None`.
    pub creds: Option<(String, String)>,
}

/// `skopeo --insecure-policy copy …` from `src` (e.g. `oci:DIR:NAME`,
/// `oci-archive:FILE:NAME`) to `dest` (e.g. [`Registry::docker_ref`]),
/// as `opts` say; the error carries skopeo's output.
pub fn skopeo_copy(src: &str, dest: &str, opts: &PushOptions) -> io::Result<()> {
    let mut command = skopeo();
    command.arg("copy").arg("--retry-times=0");
    if opts.all {
        command.arg("--all");
    }
    if let Some(format) = opts.format {
        command.arg("--format").arg(match format {
            ManifestFormat::Oci => "oci",
            ManifestFormat::DockerV2S2 => "v2s2",
        });
    }
    if let Some(compression) = opts.compression {
        command
            .arg("--dest-compress")
            .arg("--dest-compress-format")
            .arg(match compression {
                Compression::Gzip => "gzip",
                Compression::Zstd => "zstd",
            });
    }
    tls_args(&mut command, "--dest-", &opts.tls);
    match &opts.creds {
        Some((user, password)) => command.arg(format!("--dest-creds={user}:{password}")),
        None => command.arg("--dest-no-creds"),
    };
    command.arg(src).arg(dest);
    // A blob info cache of this copy's own. skopeo's (root's) is
    // /var/lib/containers/cache, shared by every run: it remembers the
    // compressed blobs of each layer pushed to each registry, and skopeo
    // 1.9 then mounts such a blob from another repository of the same
    // registry in place of compressing the layer as asked (a gzip push
    // after a zstd one gets the zstd blob, and v2s2 then fails). Only a
    // non-root user's cache moves with XDG_DATA_HOME, and containers/image
    // takes the user from _CONTAINERS_ROOTLESS_UID when set.
    let cache = tempfile::Builder::new().prefix("husk-skopeo-").tempdir()?;
    command
        .env("_CONTAINERS_ROOTLESS_UID", "65534")
        .env("XDG_DATA_HOME", cache.path());
    run_skopeo(command, &format!("copy {src} {dest}")).map(drop)
}

/// `skopeo inspect --raw IMAGE`: the manifest (or index) as stored,
/// reached with `opts`' TLS and credentials.
pub fn skopeo_inspect_raw(image: &str, opts: &PushOptions) -> io::Result<Vec<u8>> {
    let mut command = skopeo();
    command.arg("inspect").arg("--raw").arg("--retry-times=0");
    tls_args(&mut command, "--", &opts.tls);
    if let Some((user, password)) = &opts.creds {
        command.arg(format!("--creds={user}:{password}"));
    } else {
        command.arg("--no-creds");
    }
    command.arg(image);
    run_skopeo(command, &format!("inspect --raw {image}"))
}

fn skopeo() -> Command {
    let mut command = Command::new(SKOPEO);
    // No policy file is read with --insecure-policy: every image is
    // accepted whatever /etc/containers/policy.json says (or if absent).
    command.arg("--insecure-policy").stdin(Stdio::null());
    command
}

fn tls_args(command: &mut Command, prefix: &str, tls: &Tls) {
    match tls {
        Tls::Insecure => {
            command.arg(format!("{prefix}tls-verify=false"));
        }
        Tls::CertDir(dir) => {
            command
                .arg(format!("{prefix}tls-verify=true"))
                .arg(format!("{prefix}cert-dir"))
                .arg(dir);
        }
        Tls::System => {
            command.arg(format!("{prefix}tls-verify=true"));
        }
    }
}

fn run_skopeo(mut command: Command, what: &str) -> io::Result<Vec<u8>> {
    let output = command.output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot run {SKOPEO} ({e}): the registry tests need the Debian package skopeo \
                 (apt-get install skopeo)"
            ),
        )
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(io::Error::other(format!(
        "skopeo {what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    )))
}

/// The variant OCI platforms give an architecture, if any (arm64's
/// `v8`, as the registries' images have it).
fn variant_of(architecture: &str) -> Option<&'static str> {
    (architecture == "arm64").then_some("v8")
}

/// Writes `blob` to `dir/blobs/sha256/<hex>`.
fn write_blob(dir: &Path, blob: &[u8]) -> io::Result<()> {
    let digest = sha256(blob);
    let hex = &digest["sha256:".len()..];
    std::fs::write(dir.join("blobs/sha256").join(hex), blob)
}

/// Makes `dir` an OCI image layout (oci-layout, blobs/sha256/) whose
/// index.json names one descriptor, `top`, as `name`.
fn write_layout(dir: &Path, name: &str, mut top: serde_json::Value) -> io::Result<()> {
    top["annotations"] = json!({ REF_NAME: name });
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]}))
        .expect("index.json serialises");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(dir.join("index.json"), index)
}

/// Writes the blobs of one linux/`architecture` image of uncompressed
/// `layers` into the layout `dir`; returns its manifest's descriptor
/// (with its platform).
fn write_image(
    dir: &Path,
    architecture: &str,
    layers: &[Vec<u8>],
) -> io::Result<serde_json::Value> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    let variant = variant_of(architecture);
    let (config, manifest) = config_and_manifest(architecture, variant, layers);
    for blob in layers.iter().chain([&config, &manifest]) {
        write_blob(dir, blob)?;
    }
    let mut desc = descriptor(OCI_MANIFEST, &manifest);
    let mut platform = json!({"architecture": architecture, "os": "linux"});
    if let Some(variant) = variant {
        platform["variant"] = json!(variant);
    }
    desc["platform"] = platform;
    Ok(desc)
}

/// Writes an OCI image layout directory at `dir` (made if need be) with
/// one linux/amd64 image of uncompressed `layers`, named `name` (push it
/// from `oci:DIR:NAME`). index.json lists that image alone.
pub fn image_layout(dir: &Path, name: &str, layers: &[Vec<u8>]) -> io::Result<()> {
    let mut desc = write_image(dir, "amd64", layers)?;
    if let Some(map) = desc.as_object_mut() {
        map.remove("platform");
    }
    write_layout(dir, name, desc)
}

/// Writes an OCI image layout directory at `dir` (made if need be)
/// whose index.json names, as `name`, an image index
/// (`application/vnd.oci.image.index.v1+json`) of one linux image per
/// `(architecture, uncompressed layers)` of `images`, each with its
/// platform (arm64 with variant `v8`). `skopeo copy --all
/// oci:DIR:NAME docker://…` pushes the index and every image.
pub fn multi_arch_layout(
    dir: &Path,
    name: &str,
    images: &[(&str, Vec<Vec<u8>>)],
) -> io::Result<()> {
    let mut manifests = Vec::with_capacity(images.len());
    for (architecture, layers) in images {
        manifests.push(write_image(dir, architecture, layers)?);
    }
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("an index serialises");
    write_blob(dir, &index)?;
    write_layout(dir, name, descriptor(OCI_INDEX, &index))
}

/// `count` uncompressed tar layers, each holding one file
/// (`random-<i>`) of `bytes_each` pseudo-random bytes: incompressible,
/// every layer different, and the same for the same `seed`.
pub fn random_layers(count: usize, bytes_each: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut state = splitmix64(seed ^ splitmix64(i as u64));
            let mut data = vec![0u8; bytes_each];
            for chunk in data.chunks_mut(8) {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            let mut tar = tar::Builder::new(Vec::with_capacity(bytes_each + 2048));
            let mut header = oci::header(tar::EntryType::Regular, 0o644, bytes_each as u64);
            tar.append_data(&mut header, format!("random-{i}"), &data[..])
                .expect("append to an in-memory tar");
            tar.into_inner().expect("finish an in-memory tar")
        })
        .collect()
}

/// A well-mixed, never-zero xorshift state from `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::busybox_layer;
    use serde_json::Value;

    fn inspect(image: &str, opts: &PushOptions) -> Value {
        let raw = skopeo_inspect_raw(image, opts).expect("skopeo inspect --raw");
        serde_json::from_slice(&raw).expect("the manifest is JSON")
    }

    #[test]
    fn registry_plain_push_oci_zstd_and_v2s2_gzip() {
        let registry = Registry::start(RegistryOptions::default()).expect("start docker-registry");
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("busybox.tar");
        std::fs::write(&archive, crate::oci_archive("busybox", &[busybox_layer()])).unwrap();
        let src = format!("oci-archive:{}:busybox", archive.display());

        let opts = PushOptions {
            format: Some(ManifestFormat::Oci),
            compression: Some(Compression::Zstd),
            ..registry.push_options()
        };
        let dest = registry.docker_ref("husk/busybox:zstd");
        skopeo_copy(&src, &dest, &opts).expect("push as OCI with zstd");
        let manifest = inspect(&dest, &registry.push_options());
        assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
        assert_eq!(
            manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{manifest}"
        );

        // The same layer in another repository of the same registry, in
        // gzip: no zstd blob is mounted from the first (which a shared
        // blob info cache makes skopeo 1.9 do, failing v2s2).
        let opts = PushOptions {
            format: Some(ManifestFormat::DockerV2S2),
            compression: Some(Compression::Gzip),
            ..registry.push_options()
        };
        let dest = registry.docker_ref("husk/busybox-v2s2:gzip");
        skopeo_copy(&src, &dest, &opts).expect("push as Docker v2s2 with gzip");
        let manifest = inspect(&dest, &registry.push_options());
        assert_eq!(
            manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
            "{manifest}"
        );
        assert_eq!(
            manifest["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{manifest}"
        );
    }

    #[test]
    fn registry_tls_auth_multi_arch_index() {
        let ca = TestCa::new();
        let auth = ("husk".to_string(), "s3cret pass".to_string());
        let registry = Registry::start(RegistryOptions {
            tls: Some(&ca),
            basic_auth: Some(auth.clone()),
        })
        .expect("start docker-registry with TLS and htpasswd");
        assert!(registry.url().starts_with("https://127.0.0.1:"));

        let layout = tempfile::tempdir().unwrap();
        multi_arch_layout(
            layout.path(),
            "multi",
            &[
                ("amd64", vec![busybox_layer()]),
                ("arm64", random_layers(1, 4096, 7)),
            ],
        )
        .unwrap();
        let src = format!("oci:{}:multi", layout.path().display());
        let dest = registry.docker_ref("husk/multi:latest");
        let opts = PushOptions {
            all: true,
            format: Some(ManifestFormat::Oci),
            ..registry.push_options()
        };
        assert!(matches!(opts.tls, Tls::CertDir(_)));
        assert_eq!(opts.creds.as_ref(), Some(&auth));

        let wrong = PushOptions {
            creds: Some((auth.0.clone(), "wrong".to_string())),
            ..opts.clone()
        };
        let err = skopeo_copy(&src, &dest, &wrong).expect_err("a wrong password is refused");
        assert!(
            err.to_string().contains("unauthorized"),
            "unexpected error: {err}"
        );
        let anonymous = PushOptions {
            creds: None,
            ..opts.clone()
        };
        skopeo_copy(&src, &dest, &anonymous).expect_err("anonymous pushes are refused");
        let untrusted = PushOptions {
            tls: Tls::System,
            ..opts.clone()
        };
        let err =
            skopeo_copy(&src, &dest, &untrusted).expect_err("the test CA is not the system's");
        assert!(
            err.to_string().contains("certificate"),
            "unexpected error: {err}"
        );

        skopeo_copy(&src, &dest, &opts).expect("push the index with --all");
        let index = inspect(&dest, &registry.push_options());
        assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
        let manifests = index["manifests"].as_array().expect("manifests");
        assert_eq!(manifests.len(), 2, "{index}");
        let platforms: Vec<(&str, Option<&str>)> = manifests
            .iter()
            .map(|m| {
                (
                    m["platform"]["architecture"].as_str().unwrap(),
                    m["platform"]["variant"].as_str(),
                )
            })
            .collect();
        assert_eq!(platforms, [("amd64", None), ("arm64", Some("v8"))]);
        for m in manifests {
            let digest = m["digest"].as_str().unwrap();
            let image = inspect(
                &registry.docker_ref(&format!("husk/multi@{digest}")),
                &registry.push_options(),
            );
            assert_eq!(image["mediaType"], OCI_MANIFEST, "{image}");
        }
    }

    #[test]
    fn registry_plain_basic_auth() {
        let auth = ("reader".to_string(), "pw".to_string());
        let registry = Registry::start(RegistryOptions {
            tls: None,
            basic_auth: Some(auth.clone()),
        })
        .expect("start docker-registry with htpasswd over HTTP");
        let layout = tempfile::tempdir().unwrap();
        image_layout(layout.path(), "one", &[busybox_layer()]).unwrap();
        let src = format!("oci:{}:one", layout.path().display());
        let dest = registry.docker_ref("husk/one:1");
        skopeo_copy(&src, &dest, &registry.push_options()).expect("push with credentials");
        let anonymous = PushOptions::default();
        let err = skopeo_inspect_raw(&dest, &anonymous).expect_err("anonymous reads are refused");
        assert!(err.to_string().contains("unauthorized"), "{err}");
        let manifest = inspect(&dest, &registry.push_options());
        // An uncompressed OCI source is pushed as OCI, in gzip.
        assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
        assert_eq!(
            manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{manifest}"
        );
    }

    #[test]
    fn registry_random_layers_are_deterministic_and_distinct() {
        let a = random_layers(3, 10_001, 42);
        assert_eq!(a, random_layers(3, 10_001, 42));
        assert_ne!(a, random_layers(3, 10_001, 43));
        assert_ne!(a[0][512..], a[1][512..]);
        for layer in &a {
            let mut archive = tar::Archive::new(&layer[..]);
            let mut entries = archive.entries().unwrap();
            let mut entry = entries.next().unwrap().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert_eq!(data.len(), 10_001);
            drop(entry);
            assert!(entries.next().is_none());
        }
    }

    #[test]
    fn registry_image_layout_is_single_manifest() {
        let dir = tempfile::tempdir().unwrap();
        image_layout(dir.path(), "one", &[busybox_layer()]).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST);
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "one");
    }
}
