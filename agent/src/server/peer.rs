//! Who may talk to the agent: every connection's peer is checked by its
//! kernel credentials (`SO_PEERCRED`), not by the socket file's mode
//! alone: a socket bind-mounted into a container, or a mode changed by
//! hand, would otherwise hand the machine to whoever reaches it.

use tokio::net::{UnixListener, UnixStream};

use super::ApiSettings;

impl ApiSettings {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || self.allow_uids.contains(&uid)
    }
}

/// The API socket's listener: only allowed peers come out of it.
pub struct PeerCheckedListener {
    listener: UnixListener,
    settings: ApiSettings,
}

impl PeerCheckedListener {
    pub fn new(listener: UnixListener, settings: ApiSettings) -> Self {
        Self { listener, settings }
    }

    /// The next connection from an allowed peer; the others are closed
    /// (and logged) on the way. Cancel-safe: no accepted connection is
    /// held across an await.
    pub async fn accept(&mut self) -> UnixStream {
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("API: accept: {e}");
                    // EMFILE and friends: give the machine a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if self.settings.allows(cred.uid()) => return stream,
                Ok(cred) => log::warn!(
                    "API: refused a connection from uid {} (pid {}): not root nor in [api] allow_uids",
                    cred.uid(),
                    cred.pid().map_or_else(|| "?".to_owned(), |p| p.to_string())
                ),
                Err(e) => log::warn!("API: refused a connection: its credentials: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_listed_uids_only() {
        let settings = ApiSettings {
            allow_uids: vec![1000],
            ..ApiSettings::default()
        };
        assert!(settings.allows(0) && settings.allows(1000));
        assert!(!settings.allows(65534));
        assert!(!ApiSettings::default().allows(1000));
    }
}
