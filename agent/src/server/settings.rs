//! agent.toml `[api]`: who may use the API, and what one client may hold
//! of the agent.

use std::time::Duration;

use serde::Deserialize;

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
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            allow_uids: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
        }
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
        Ok(())
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
