//! agent.toml `[api]`: who may use the API, what one client may hold of
//! the agent, and the remote API (user-data's `[api]` has the remote
//! keys only: [`RemoteSettings`]).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Connections served at once. The agent's descriptors are shared with
/// the store, the containers' logs and their shims; a runaway client
/// must not take them all, and operators rarely hold more than a few
/// (a `logs --follow` or an `exec` each).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;

/// How long a client may take to send a request's headers: far more
/// than any client on the same machine needs, short enough that idle
/// connections give their slots back.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Users besides root whose processes may use the API (it controls
    /// the machine: grant it only to operators).
    pub allow_uids: Vec<u32>,
    /// Connections from allowed peers served at once; more are closed
    /// as soon as they are accepted.
    pub max_connections: u32,
    /// The deadline for a request's headers, from the connection's start
    /// or the previous response's end: a connection that has not sent
    /// them all by then is closed.
    pub header_timeout_secs: u64,
    /// The remote API's addresses (`0.0.0.0:7443`); none: no remote API.
    pub listen: Vec<SocketAddr>,
    /// PEM: the CAs whose client certificates may connect.
    pub client_ca: Option<String>,
    /// PEM: the machine's certificate (chain) and key, issued by the
    /// operator; absent: a certificate the machine makes at first boot.
    pub server_cert: Option<String>,
    pub server_key: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            allow_uids: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            listen: Vec::new(),
            client_ca: None,
            server_cert: None,
            server_key: None,
        }
    }
}

/// The remote API: agent.toml's `[api]` keys of it, or user-data's `[api]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
}

impl RemoteSettings {
    /// `over`'s keys where it has them, these elsewhere (user-data's
    /// `[api]` over agent.toml's).
    pub fn overridden_by(&self, over: &RemoteSettings) -> RemoteSettings {
        RemoteSettings {
            listen: if over.listen.is_empty() {
                self.listen.clone()
            } else {
                over.listen.clone()
            },
            client_ca: over.client_ca.clone().or_else(|| self.client_ca.clone()),
            server_cert: over
                .server_cert
                .clone()
                .or_else(|| self.server_cert.clone()),
            server_key: over.server_key.clone().or_else(|| self.server_key.clone()),
        }
    }

    /// What one document can be held to alone: a certificate comes with
    /// its key, and the PEM texts hold what they should. (A `listen`
    /// in agent.toml may wait for user-data's `client_ca`.)
    pub fn validate_parts(&self) -> Result<(), String> {
        if self.server_cert.is_some() != self.server_key.is_some() {
            return Err("api.server_cert and api.server_key go together".into());
        }
        if let Some(ca) = &self.client_ca {
            husk_api::tls::certificates(ca.as_bytes(), "api.client_ca")
                .map_err(|e| e.to_string())?;
        }
        if let (Some(cert), Some(key)) = (&self.server_cert, &self.server_key) {
            super::remote::identity::Identity::from_pem(cert, key).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// What the remote API needs to start: its parts, and a client CA
    /// (there are no anonymous clients).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_parts()?;
        if !self.listen.is_empty() && self.client_ca.is_none() {
            return Err(
                "api.listen needs api.client_ca: the CA whose client certificates may connect"
                    .into(),
            );
        }
        Ok(())
    }
}

impl ApiSettings {
    /// Checks what serde cannot: a zero would lock every client out.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("api.max_connections must be at least 1".into());
        }
        if self.header_timeout_secs == 0 {
            return Err("api.header_timeout_secs must be at least 1".into());
        }
        self.remote().validate_parts()
    }

    /// The remote API's keys.
    pub fn remote(&self) -> RemoteSettings {
        RemoteSettings {
            listen: self.listen.clone(),
            client_ca: self.client_ca.clone(),
            server_cert: self.server_cert.clone(),
            server_key: self.server_key.clone(),
        }
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused() {
        assert!(ApiSettings::default().validate().is_ok());
        let no_connections = ApiSettings {
            max_connections: 0,
            ..ApiSettings::default()
        };
        assert!(
            no_connections
                .validate()
                .unwrap_err()
                .contains("max_connections")
        );
        let no_time = ApiSettings {
            header_timeout_secs: 0,
            ..ApiSettings::default()
        };
        assert!(
            no_time
                .validate()
                .unwrap_err()
                .contains("header_timeout_secs")
        );
    }
}
