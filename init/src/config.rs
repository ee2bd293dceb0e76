//! `/etc/husk/init.toml`: hostname, shutdown grace, modules to always
//! load, and the services. A missing or broken file never stops the boot:
//! the error is logged with file:line:col and the built-in defaults apply.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use thiserror::Error;
use toml::Spanned;

/// At most this many services (the supervisor's table is fixed-size).
pub const MAX_SERVICES: usize = 16;
/// Longest service name (it becomes a socket file name and a log prefix).
pub const NAME_MAX: usize = 32;
/// Longest hostname the kernel accepts.
pub const HOSTNAME_MAX: usize = 64;
/// init.toml larger than this is refused unread.
const FILE_MAX: u64 = 1024 * 1024;

pub type ServiceName = heapless::String<NAME_MAX>;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_hostname", deserialize_with = "hostname")]
    pub hostname: heapless::String<HOSTNAME_MAX>,
    #[serde(default = "default_timeout")]
    pub shutdown_timeout_secs: u64,
    #[serde(default = "default_modules")]
    pub modules: Vec<String>,
    #[serde(default = "default_services", rename = "service")]
    pub services: heapless::Vec<ServiceConfig, MAX_SERVICES>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(deserialize_with = "service_name")]
    pub name: Spanned<ServiceName>,
    #[serde(deserialize_with = "command")]
    pub command: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub notify: bool,
    #[serde(default, deserialize_with = "env")]
    pub env: Vec<String>,
    /// What a crash loop of this service means for the machine.
    #[serde(default)]
    pub on_crash_loop: OnCrashLoop,
}

/// After a service gave up (crash loop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnCrashLoop {
    /// The machine stays up without it.
    #[default]
    Stay,
    /// On a trial boot (systemd-boot's boot counting), reboot so the
    /// boot loader spends a try; otherwise stay.
    RebootOnTrial,
}

impl ServiceConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref().as_str()
    }

    /// The `env` entries split into (key, value).
    pub fn env_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().filter_map(|kv| kv.split_once('='))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl Config {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: default_hostname(),
            shutdown_timeout_secs: default_timeout(),
            modules: default_modules(),
            services: default_services(),
        }
    }
}

fn default_hostname() -> heapless::String<HOSTNAME_MAX> {
    let mut s = heapless::String::new();
    let _ = s.push_str("husk");
    s
}

fn default_timeout() -> u64 {
    10
}

/// Containers (overlay), the power button (evdev), the filesystems
/// config drives use (FAT and ISO 9660, NoCloud's `cidata`): the agent
/// mounts those at first boot and there is no modprobe to load them then;
/// efivarfs, where systemd-boot says whether this boot is on trial; and
/// containers' networks (bridge, veth, the nftables expressions of the
/// agent's table): the kernel would ask a modprobe there is not for them.
fn default_modules() -> Vec<String> {
    DEFAULT_MODULES.iter().map(|m| (*m).into()).collect()
}

const DEFAULT_MODULES: [&str; 15] = [
    "overlay",
    "evdev",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "isofs",
    "efivarfs",
    "bridge",
    "veth",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib_inet",
];

fn default_services() -> heapless::Vec<ServiceConfig, MAX_SERVICES> {
    let mut name = ServiceName::new();
    let _ = name.push_str("husk-agent");
    let agent = ServiceConfig {
        name: Spanned::new(0..0, name),
        command: vec![husk_common::paths::AGENT_BIN.into()],
        restart: Restart::Always,
        notify: true,
        env: Vec::new(),
        on_crash_loop: OnCrashLoop::RebootOnTrial,
    };
    let mut v = heapless::Vec::new();
    let _ = v.push(agent);
    v
}

fn hostname<'de, D: Deserializer<'de>>(d: D) -> Result<heapless::String<HOSTNAME_MAX>, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !ok {
        return Err(de::Error::custom(format_args!(
            "invalid hostname {s:?}: use letters, digits, '-' and '.'"
        )));
    }
    heapless::String::try_from(s.as_str())
        .map_err(|_| de::Error::custom(format_args!("hostname longer than {HOSTNAME_MAX} bytes")))
}

fn service_name<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<ServiceName>, D::Error> {
    let s = Spanned::<String>::deserialize(d)?;
    let span = s.span();
    let s = s.into_inner();
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(de::Error::custom(format_args!(
            "invalid service name {s:?}: use letters, digits, '-', '_' and '.'"
        )));
    }
    let name = ServiceName::try_from(s.as_str()).map_err(|_| {
        de::Error::custom(format_args!(
            "service name {s:?} longer than {NAME_MAX} bytes"
        ))
    })?;
    Ok(Spanned::new(span, name))
}

fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    match v.first() {
        None => Err(de::Error::custom("command must not be empty")),
        Some(p) if p.is_empty() => Err(de::Error::custom("command[0] must not be empty")),
        Some(p) if p.contains('\0') => Err(de::Error::custom("command contains a NUL byte")),
        Some(_) => Ok(v),
    }
}

fn env<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    for kv in &v {
        match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() && !kv.contains('\0') => {}
            _ => {
                return Err(de::Error::custom(format_args!(
                    "env entry {kv:?} is not KEY=VALUE"
                )));
            }
        }
    }
    Ok(v)
}

/// Why the configuration could not be used. Displays as
/// `PATH:LINE:COL: message` (or `PATH: message` without a position).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: file larger than {FILE_MAX} bytes")]
    TooLarge { path: String },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// Converts a byte offset into 1-based line and column (in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, col)
}

/// Parses the text of an init.toml; `path` only names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
    let invalid = |offset: usize, message: String| {
        let (line, col) = line_col(text, offset);
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            col,
            message,
        }
    };
    let config: Config = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        invalid(offset, e.message().trim_end().to_owned())
    })?;
    for (i, svc) in config.services.iter().enumerate() {
        let dup = config
            .services
            .iter()
            .take(i)
            .any(|other| other.name() == svc.name());
        if dup {
            return Err(invalid(
                svc.name.span().start,
                format!("duplicate service name `{}`", svc.name()),
            ));
        }
    }
    Ok(config)
}

/// Reads and parses the file at `path`. `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Config>, ConfigError> {
    let name = path.display().to_string();
    let read_err = |source| ConfigError::Read {
        path: name.clone(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    if meta.len() > FILE_MAX {
        return Err(ConfigError::TooLarge { path: name });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    parse_bytes(&name, &bytes).map(Some)
}

/// Parses the bytes of an init.toml as [`read`] does, invalid UTF-8
/// included; `path` only names it in errors. Public for the fuzz target
/// `init_toml` (fuzz/), which feeds it what the file could hold.
pub fn parse_bytes(path: &str, bytes: &[u8]) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(e) => {
            let valid = e.valid_up_to();
            let prefix = String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default());
            let (line, col) = line_col(&prefix, valid);
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                line,
                col,
                message: "invalid UTF-8".into(),
            })
        }
    }
}

/// The configuration to boot with: the file's, or the defaults (logging
/// why) when it is missing or invalid.
pub fn load(path: &Path) -> Config {
    match read(path) {
        Ok(Some(config)) => config,
        Ok(None) => {
            log::info!(
                "config {}: not found, using built-in defaults",
                path.display()
            );
            Config::default()
        }
        Err(e) => {
            log::error!("config {e}");
            log::error!("config: using built-in defaults");
            Config::default()
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/husk/init.toml";

    fn err(text: &str) -> String {
        parse(PATH, text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_parses() {
        // docs/ARCHITECTURE.md's init.toml, as it is written there.
        let doc = include_str!("../../docs/ARCHITECTURE.md");
        let section = doc.split("## init.toml").nth(1).unwrap();
        let text = section.split("```toml").nth(1).unwrap();
        let text = text.split("```").next().unwrap();
        assert!(text.contains("[[service]]"), "{text}");
        let c = parse(PATH, text).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.shutdown_timeout(), Duration::from_secs(10));
    }

    /// husk-image writes its own default init.toml into every image: it
    /// must load what init would (a module left out there is a feature
    /// missing on every machine, as the containers' bridge once was).
    #[test]
    fn the_image_builders_default_is_inits_default() {
        let text = include_str!("../../image-build/src/default-init.toml");
        let c = parse(PATH, text).unwrap();
        assert_eq!(c.modules, DEFAULT_MODULES);
        assert_eq!(c, Config::default());
    }

    #[test]
    fn every_field_is_optional_at_top_level() {
        let c = parse(PATH, "").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.hostname.as_str(), "husk");
        assert_eq!(c.modules, DEFAULT_MODULES);
        assert_eq!(c.services.len(), 1);
        let agent = &c.services[0];
        assert_eq!(agent.name(), "husk-agent");
        assert_eq!(agent.command, ["/usr/bin/husk-agent"]);
        assert_eq!(agent.restart, Restart::Always);
        assert!(agent.notify);
    }

    #[test]
    fn services_with_env_and_policies() {
        let text = r#"
hostname = "node-1"
shutdown_timeout_secs = 3
modules = []

[[service]]
name = "a"
command = ["/bin/a", "--flag"]
restart = "on-failure"
env = ["RUST_LOG=debug", "EMPTY="]

[[service]]
name = "b"
command = ["/bin/b"]
restart = "never"
"#;
        let c = parse(PATH, text).unwrap();
        assert_eq!(c.hostname.as_str(), "node-1");
        assert!(c.modules.is_empty());
        assert_eq!(c.services.len(), 2);
        let a = &c.services[0];
        assert_eq!(a.restart, Restart::OnFailure);
        assert!(!a.notify);
        assert_eq!(
            a.env_pairs().collect::<Vec<_>>(),
            [("RUST_LOG", "debug"), ("EMPTY", "")]
        );
        assert_eq!(c.services[1].restart, Restart::Never);
    }

    #[test]
    fn an_explicitly_empty_service_list_means_no_services() {
        let c = parse(PATH, "service = []").unwrap();
        assert!(c.services.is_empty());
    }

    #[test]
    fn unknown_fields_are_named_with_line_and_column() {
        let text = "hostname = \"h\"\n\n[[service]]\nname = \"a\"\ncomand = [\"/bin/a\"]\n";
        let e = err(text);
        assert!(e.starts_with("/etc/husk/init.toml:5:1: "), "{e}");
        assert!(e.contains("unknown field `comand`"), "{e}");

        let e = err("hostnme = \"x\"\n");
        assert!(e.starts_with("/etc/husk/init.toml:1:1: "), "{e}");
        assert!(e.contains("hostnme"), "{e}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let e = err("[[service]]\nname = \"a\"\n");
        assert!(e.contains("missing field `command`"), "{e}");
        assert!(e.starts_with("/etc/husk/init.toml:1:"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_point_at_the_value() {
        let e = err("hostname = \"h\"\nshutdown_timeout_secs = \"ten\"\n");
        assert!(e.starts_with("/etc/husk/init.toml:2:25: "), "{e}");

        let e = err("[[service]]\nname = \"a\"\ncommand = [\"/a\"]\nrestart = \"sometimes\"\n");
        assert!(e.starts_with("/etc/husk/init.toml:4:11: "), "{e}");
        assert!(e.contains("sometimes"), "{e}");

        let e = err("[[service]]\nname = \"a\"\ncommand = []\n");
        assert!(e.contains("command must not be empty"), "{e}");

        let e = err("[[service]]\nname = \"a/b\"\ncommand = [\"/a\"]\n");
        assert!(e.starts_with("/etc/husk/init.toml:2:8: "), "{e}");

        let e = err("[[service]]\nname = \"a\"\ncommand = [\"/a\"]\nenv = [\"NOEQUALS\"]\n");
        assert!(e.contains("NOEQUALS"), "{e}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = err("hostname = \"h\"\nmodules = [\n");
        assert!(e.starts_with("/etc/husk/init.toml:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn long_names_and_too_many_services_are_rejected() {
        let name = "x".repeat(33);
        let e = err(&format!(
            "[[service]]\nname = \"{name}\"\ncommand = [\"/a\"]\n"
        ));
        assert!(e.contains("longer than 32"), "{e}");

        let mut text = String::new();
        for i in 0..17 {
            text.push_str(&format!(
                "[[service]]\nname = \"s{i}\"\ncommand = [\"/a\"]\n"
            ));
        }
        parse(PATH, &text).unwrap_err();
    }

    #[test]
    fn duplicate_names_point_at_the_second() {
        let text = "[[service]]\nname = \"a\"\ncommand = [\"/a\"]\n[[service]]\nname = \"a\"\ncommand = [\"/a\"]\n";
        let e = err(text);
        assert!(
            e.starts_with("/etc/husk/init.toml:5:8: duplicate service name `a`"),
            "{e}"
        );
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\ncé d\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn read_reports_missing_and_invalid_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init.toml");
        assert!(read(&path).unwrap().is_none());
        assert_eq!(load(&path), Config::default());

        std::fs::write(&path, b"hostname = \"h\"\nx = \xff\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.ends_with(":2:5: invalid UTF-8"), "{e}");
        assert_eq!(load(&path), Config::default());

        std::fs::write(&path, "hostname = \"box\"\n").unwrap();
        assert_eq!(load(&path).hostname.as_str(), "box");
    }
}
