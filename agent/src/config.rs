//! The agent's configuration file (`/etc/husk/agent.toml`, in the image):
//! what the operator allows containers to do, and how much of their logs
//! is kept. A missing file means the defaults; an invalid one is an error
//! that names the line, and the agent does not start with half of it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::containers::logs::{DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE};
use husk_spec::SecurityPolicy;

pub const DEFAULT_PATH: &str = "/etc/husk/agent.toml";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub api: crate::server::ApiSettings,
    pub security: SecurityPolicy,
    pub logs: LogSettings,
    pub update: crate::update::UpdateSettings,
    pub limits: Limits,
    /// `[registry]`: insecure registries, CAs, mirrors, credentials.
    pub registry: husk_registry::RegistryConfig,
    /// `[policy]`: which images may be pulled, and what they must prove.
    pub policy: husk_registry::policy::PolicyConfig,
    /// `[network]`: the containers' bridge.
    pub network: crate::bridge::NetworkSettings,
    /// `[time]`: the NTP servers, step threshold, on/off.
    pub time: crate::timesync::TimeSettings,
}

/// `[limits.containers]`: defaults and maxima of memory, CPUs and pids;
/// `[limits.images]`: what one image layer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub containers: husk_spec::ResourceLimits,
    pub images: husk_store::Limits,
}

/// Per container: Docker's json-file `max-size` and `max-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub max_size: u64,
    pub max_files: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl AgentConfig {
    /// The file at `path`, or the defaults when there is none.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| locate(text, &e))?;
        if config.logs.max_files == 0 || config.logs.max_size < 4096 {
            return Err("logs: max_files must be at least 1 and max_size at least 4096".into());
        }
        config.api.validate()?;
        config.security.validate()?;
        config.update.validate()?;
        config.limits.containers.validate()?;
        config.registry.validate().map_err(|e| e.to_string())?;
        config.network.check()?;
        config.time.check()?;
        Ok(config)
    }
}

/// toml's message with the line and column of the mistake (`L:C: …`).
fn locate(text: &str, error: &toml::de::Error) -> String {
    match position(text, error) {
        Some((line, column)) => format!("{line}:{column}: {}", error.message()),
        None => error.message().to_string(),
    }
}

/// Where in `text` toml found its mistake: (line, column), from 1.
pub(crate) fn position(text: &str, error: &toml::de::Error) -> Option<(usize, usize)> {
    let span = error.span()?;
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/NETWORK.md's `[network]`, as it is written there.
    #[test]
    fn the_documented_network_settings_parse() {
        let doc = include_str!("../../docs/NETWORK.md");
        let text = doc.split("```toml").nth(1).unwrap();
        let text = text.split("```").next().unwrap();
        let config = AgentConfig::parse(text).unwrap();
        assert_eq!(config.network, crate::bridge::NetworkSettings::default());
    }

    #[test]
    fn defaults_values_and_errors() {
        assert_eq!(AgentConfig::parse("").unwrap(), AgentConfig::default());
        let config = AgentConfig::parse(
            "[security]\nallow_privileged = true\n[logs]\nmax_size = 65536\nmax_files = 2\n",
        )
        .unwrap();
        assert!(config.security.allow_privileged);
        assert!(!config.security.allow_host_network);
        assert_eq!(config.logs.max_size, 65536);
        let err = AgentConfig::parse("[security]\nallow_privileged = \"yes\"\n").unwrap_err();
        assert!(err.starts_with("2:20:"), "{err}");
        let err = AgentConfig::parse("[security]\nallow_everything = true\n").unwrap_err();
        assert!(err.contains("allow_everything"), "{err}");
        assert!(AgentConfig::parse("[logs]\nmax_files = 0\n").is_err());
        let config = AgentConfig::parse(
            "[limits.containers]\nmax_memory = 1073741824\n[limits.images]\nmax_layer_entries = 10\n",
        )
        .unwrap();
        assert_eq!(config.limits.containers.max_memory, Some(1 << 30));
        assert_eq!(
            config.limits.containers.default_pids,
            Some(husk_spec::DEFAULT_PIDS)
        );
        assert_eq!(config.limits.images.max_layer_entries, 10);
        let err = AgentConfig::parse("[limits.containers]\ndefault_pids = 0\n").unwrap_err();
        assert!(err.contains("pids"), "{err}");
        let config =
            AgentConfig::parse("[network]\nsubnet = \"10.99.0.0/24\"\nmtu = 1400\n").unwrap();
        assert_eq!(config.network.subnet.to_string(), "10.99.0.0/24");
        let err = AgentConfig::parse("[network]\nsubnet = \"10.99.0.1/24\"\n").unwrap_err();
        assert!(err.contains("host bits"), "{err}");
        let err = AgentConfig::parse("[network]\nsubnet = \"nonsense\"\n").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
        let config = AgentConfig::parse(
            "[time]\nservers = [\"169.254.169.123\", \"time.example:123\"]\nstep_threshold_ms = 250\n",
        )
        .unwrap();
        assert_eq!(config.time.servers.len(), 2);
        assert_eq!(config.time.step_threshold_ms, 250);
        assert!(config.time.enabled);
        let config = AgentConfig::parse("[time]\nenabled = false\n").unwrap();
        assert!(!config.time.enabled);
        let err = AgentConfig::parse("[time]\nserver = \"x\"\n").unwrap_err();
        assert!(err.starts_with("2:1:") && err.contains("server"), "{err}");
        let err = AgentConfig::parse("[time]\nservers = [\"time.example:x\"]\n").unwrap_err();
        assert!(err.starts_with("time.servers[0]:"), "{err}");
        let missing = AgentConfig::load(Path::new("/nonexistent/agent.toml")).unwrap();
        assert_eq!(missing, AgentConfig::default());
    }
}
