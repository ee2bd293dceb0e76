//! How to reach registries: which may be plain HTTP, which CAs to trust
//! beyond Mozilla's, mirrors, credentials. The agent reads it from
//! agent.toml's `[registry]` (user-data adds to it); credentials are in
//! `~/.docker/config.json`'s `auths` format, so a file made by
//! `docker login` can be pasted in.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Docker's own limit on parallel layer downloads.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Registries (`host` or `host:port`) reached over plain HTTP. No
    /// other registry is.
    pub insecure: Vec<String>,
    /// PEM files of CAs trusted besides Mozilla's roots.
    pub ca_files: Vec<String>,
    /// PEM text of more CAs (user-data carries them inline).
    pub ca_pems: Vec<String>,
    /// Per registry, mirrors tried in order before it
    /// (`"docker.io" = ["https://mirror.example"]`).
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Per registry, credentials (`docker login`'s `auths`).
    pub auths: BTreeMap<String, AuthEntry>,
    /// How many layers download at once (default 3).
    pub max_concurrent_downloads: Option<usize>,
}

/// One registry's credentials, as `~/.docker/config.json` has them:
/// `auth` is base64 of `user:password`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthEntry {
    pub auth: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(rename = "identitytoken")]
    pub identity_token: Option<String>,
}

impl fmt::Debug for AuthEntry {
    // Never a secret in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("registry.auths.\"{registry}\": {reason}")]
    Auth { registry: String, reason: String },
    #[error("registry.mirrors.\"{registry}\": mirror `{mirror}`: {reason}")]
    Mirror {
        registry: String,
        mirror: String,
        reason: String,
    },
    #[error("registry.max_concurrent_downloads must be 1 to 32")]
    Concurrency,
}

impl AuthEntry {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, ConfigError> {
        let bad = |reason: &str| ConfigError::Auth {
            registry: registry.into(),
            reason: reason.into(),
        };
        if let Some(token) = &self.identity_token
            && !token.is_empty()
        {
            // An OAuth2 refresh token: sent as the password with the
            // user name `<token>`, as Docker does.
            return Ok(Some(Credentials {
                username: "<token>".into(),
                password: token.clone(),
            }));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("`auth` is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("`auth` is not UTF-8"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| bad("`auth` must be base64 of `user:password`"))?;
            return Ok(Some(Credentials {
                username: username.into(),
                password: password.into(),
            }));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err(bad("give both `username` and `password`, or `auth`")),
        }
    }
}

/// `https://index.docker.io/v1/`, `docker.io` and `registry-1.docker.io`
/// are all Docker Hub; a scheme and a path are dropped.
pub fn registry_key(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    super::reference::canonical_host(host)
}

impl RegistryConfig {
    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (registry, entry) in &self.auths {
            entry.credentials(registry)?;
        }
        for (registry, mirrors) in &self.mirrors {
            for mirror in mirrors {
                let bad = |reason: String| ConfigError::Mirror {
                    registry: registry.clone(),
                    mirror: mirror.clone(),
                    reason,
                };
                let url = url::Url::parse(mirror).map_err(|e| bad(e.to_string()))?;
                if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                    return Err(bad("expected an https:// (or http://) URL".into()));
                }
            }
        }
        if let Some(n) = self.max_concurrent_downloads
            && !(1..=32).contains(&n)
        {
            return Err(ConfigError::Concurrency);
        }
        Ok(())
    }

    /// The credentials for a registry (`docker.io`, `host:port`).
    pub fn credentials(&self, registry: &str) -> Option<Credentials> {
        let wanted = registry_key(registry);
        self.auths
            .iter()
            .find(|(key, _)| registry_key(key) == wanted)
            .and_then(|(key, entry)| entry.credentials(key).ok().flatten())
    }

    pub fn is_insecure(&self, host: &str) -> bool {
        let host = registry_key(host);
        self.insecure.iter().any(|h| registry_key(h) == host)
    }

    /// The mirrors configured for a registry, in order.
    pub fn mirrors_of(&self, registry: &str) -> Vec<String> {
        let wanted = registry_key(registry);
        self.mirrors
            .iter()
            .filter(|(key, _)| registry_key(key) == wanted)
            .flat_map(|(_, m)| m.iter().cloned())
            .collect()
    }

    pub fn concurrent_downloads(&self) -> usize {
        self.max_concurrent_downloads
            .unwrap_or(DEFAULT_CONCURRENT_DOWNLOADS)
            .clamp(1, 32)
    }

    /// Adds `other` (user-data's) to this: more insecure registries,
    /// CAs, mirrors and credentials; a registry's credentials in `other`
    /// replace this one's.
    pub fn extend(&mut self, other: &RegistryConfig) {
        for host in &other.insecure {
            if !self.is_insecure(host) {
                self.insecure.push(host.clone());
            }
        }
        self.ca_files.extend(other.ca_files.iter().cloned());
        self.ca_pems.extend(other.ca_pems.iter().cloned());
        for (registry, mirrors) in &other.mirrors {
            self.mirrors
                .entry(registry.clone())
                .or_default()
                .extend(mirrors.iter().cloned());
        }
        for (registry, entry) in &other.auths {
            self.auths.insert(registry.clone(), entry.clone());
        }
        if other.max_concurrent_downloads.is_some() {
            self.max_concurrent_downloads = other.max_concurrent_downloads;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auths_are_read() {
        let config: RegistryConfig = serde_json::from_str(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
                "ghcr.io": {"username": "o", "password": "p"},
                "quay.io": {"identitytoken": "refresh"}
            }}"#,
        )
        .unwrap();
        config.validate().unwrap();
        let hub = config.credentials("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(
            config.credentials("registry-1.docker.io"),
            Some(hub.clone())
        );
        assert_eq!(config.credentials("INDEX.docker.io:443"), Some(hub));
        assert_eq!(config.credentials("GHCR.io").unwrap().password, "p");
        assert_eq!(config.credentials("quay.io").unwrap().username, "<token>");
        assert_eq!(config.credentials("example.com"), None);
        let debug = format!("{:?}", config.credentials("ghcr.io").unwrap());
        assert!(!debug.contains("\"p\""), "{debug}");
    }

    #[test]
    fn bad_entries_are_named() {
        let config: RegistryConfig =
            serde_json::from_str(r#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("r.example") && err.contains("user:password"),
            "{err}"
        );
        let config: RegistryConfig =
            serde_json::from_str(r#"{"mirrors": {"docker.io": ["ftp://m"]}}"#).unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("ftp://m")
        );
        assert!(serde_json::from_str::<RegistryConfig>(r#"{"mirror": {}}"#).is_err());
    }

    #[test]
    fn user_data_adds_and_replaces_credentials() {
        let mut base: RegistryConfig = serde_json::from_str(
            r#"{"insecure": ["a:5000"], "auths": {"a:5000": {"username": "x", "password": "1"}}}"#,
        )
        .unwrap();
        let more: RegistryConfig =
            serde_json::from_str(r#"{"insecure": ["b"], "mirrors": {"docker.io": ["https://m"]}, "auths": {"a:5000": {"username": "x", "password": "2"}}}"#)
                .unwrap();
        base.extend(&more);
        assert!(base.is_insecure("a:5000") && base.is_insecure("b") && !base.is_insecure("c"));
        assert_eq!(base.credentials("a:5000").unwrap().password, "2");
        assert_eq!(
            base.mirrors_of("index.docker.io"),
            vec!["https://m".to_string()]
        );
    }
}
