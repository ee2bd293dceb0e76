//! What the remote API reports (`api` of `GET /v1/system`): where it
//! listens, with which certificate, and what it refused. Handshake
//! failures come from anyone who reaches the port, so their log lines
//! are rationed; the counts are exact.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Log lines of handshake failures per [`WINDOW`]; the rest are counted.
const LINES_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct RemoteStatus {
    setup: Mutex<Setup>,
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    refused_requests: AtomicU64,
    ration: Mutex<Ration>,
}

/// `off`, `serving` or `failed`, and how.
#[derive(Debug, Clone, Default, Serialize)]
struct Setup {
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listen: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Ration {
    window_start: Option<Instant>,
    lines: u32,
    unlogged: u64,
}

impl RemoteStatus {
    pub fn serving(&self, listen: Vec<String>, certificate: &'static str, fingerprint: String) {
        self.set(Setup {
            state: "serving",
            listen,
            certificate: Some(certificate),
            fingerprint: Some(fingerprint),
            error: None,
        });
    }

    pub fn failed(&self, error: String) {
        self.set(Setup {
            state: "failed",
            error: Some(error),
            ..Setup::default()
        });
    }

    fn set(&self, setup: Setup) {
        if let Ok(mut current) = self.setup.lock() {
            *current = setup;
        }
    }

    pub fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_request(&self) {
        self.refused_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed handshake; logs it unless this minute has had its
    /// lines (then the next line says how many went unlogged).
    pub fn handshake_failed(&self, peer: std::net::SocketAddr, why: &str) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
        let Ok(mut ration) = self.ration.lock() else {
            return;
        };
        let now = Instant::now();
        if ration
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW)
        {
            ration.window_start = Some(now);
            ration.lines = 0;
        }
        if ration.lines >= LINES_PER_WINDOW {
            ration.unlogged += 1;
            return;
        }
        ration.lines += 1;
        let unlogged = std::mem::take(&mut ration.unlogged);
        let more = if unlogged > 0 {
            format!(" ({unlogged} more before it not logged)")
        } else {
            String::new()
        };
        log::warn!("API: TLS handshake with {peer} failed: {why}{more}");
    }

    /// The JSON of `GET /v1/system`'s `api`.
    pub fn to_json(&self) -> serde_json::Value {
        let setup = self.setup.lock().map(|s| s.clone()).unwrap_or_default();
        let mut value = serde_json::to_value(Setup {
            state: if setup.state.is_empty() {
                "off"
            } else {
                setup.state
            },
            ..setup
        })
        .unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            let count = |n: &AtomicU64| serde_json::Value::from(n.load(Ordering::Relaxed));
            object.insert("connections".into(), count(&self.connections));
            object.insert("handshake_failures".into(), count(&self.handshake_failures));
            object.insert("refused_requests".into(), count(&self.refused_requests));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_when_lines_are_rationed() {
        let status = RemoteStatus::default();
        assert_eq!(status.to_json()["state"], "off");
        let peer = "192.0.2.1:5555".parse().unwrap();
        for _ in 0..50 {
            status.handshake_failed(peer, "no certificate");
        }
        let ration = status.ration.lock().unwrap();
        assert_eq!(ration.lines, LINES_PER_WINDOW);
        assert_eq!(ration.unlogged, 40);
        drop(ration);
        status.refused_request();
        status.serving(vec!["0.0.0.0:7443".into()], "machine", "sha256:ab".into());
        let json = status.to_json();
        assert_eq!(json["handshake_failures"], 50);
        assert_eq!(json["refused_requests"], 1);
        assert_eq!(json["state"], "serving");
        assert_eq!(json["certificate"], "machine");
    }
}
