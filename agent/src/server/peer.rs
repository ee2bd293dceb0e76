//! Who may talk to the agent: every connection's peer is checked by its
//! kernel credentials (`SO_PEERCRED`), not by the socket file's mode
//! alone: a socket bind-mounted into a container, or a mode changed by
//! hand, would otherwise hand the machine to whoever reaches it.
//!
//! Not here yet: a cap on connections and a deadline on request headers
//! (axum's server runs hyper without a timer, so idle connections are
//! held; a cap without the deadline would let idle ones lock everyone
//! out).

use std::io;

use serde::Deserialize;
use tokio::net::{UnixListener, UnixStream};

/// agent.toml `[api]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Users besides root whose processes may use the API (it controls
    /// the machine: grant it only to operators).
    pub allow_uids: Vec<u32>,
}

impl ApiSettings {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || self.allow_uids.contains(&uid)
    }
}

/// The API socket's listener, as axum serves it: only allowed peers.
pub struct PeerCheckedListener {
    listener: UnixListener,
    settings: ApiSettings,
}

impl PeerCheckedListener {
    pub fn new(listener: UnixListener, settings: ApiSettings) -> Self {
        Self { listener, settings }
    }
}

impl axum::serve::Listener for PeerCheckedListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("API: accept: {e}");
                    // EMFILE and friends: give the machine a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if self.settings.allows(cred.uid()) => return (stream, addr),
                Ok(cred) => log::warn!(
                    "API: refused a connection from uid {} (pid {}): not root nor in [api] allow_uids",
                    cred.uid(),
                    cred.pid().map_or_else(|| "?".to_owned(), |p| p.to_string())
                ),
                Err(e) => log::warn!("API: refused a connection: its credentials: {e}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_listed_uids_only() {
        let settings = ApiSettings {
            allow_uids: vec![1000],
        };
        assert!(settings.allows(0) && settings.allows(1000));
        assert!(!settings.allows(65534));
        assert!(!ApiSettings::default().allows(1000));
    }
}
