//! What a pull can fail on, each naming the registry, reference or
//! digest at fault.

use husk_store::StoreError;

use super::config::ConfigError;
use super::http::HttpError;
use super::reference::ReferenceError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        url: String,
        status: u16,
        /// The registry's error codes and messages, if it sent any.
        message: String,
    },
    #[error("{registry}: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("{reference}: not found in the registry{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    NotFound { reference: String, message: String },
    #[error("{reference}: {reason}")]
    BadManifest { reference: String, reason: String },
    #[error("{reference}: no image for {wanted} in its index (it has: {available})")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: {}", .errors.join("; "))]
    AllEndpoints {
        reference: String,
        errors: Vec<String>,
    },
    #[error(transparent)]
    Refused(#[from] super::policy::Refused),
    #[error("refused by the admission policy: {rule}: {reason}")]
    Untrusted {
        rule: String,
        reason: String,
        /// The proof could not be fetched (the network's failure), not
        /// found wanting: a later try may succeed.
        transient: bool,
    },
    #[error("blob {digest}: {reason}")]
    Transfer { digest: String, reason: String },
    #[error("image store: {0}")]
    Store(#[from] StoreError),
    #[error("pull cancelled: {0}")]
    Cancelled(String),
}

impl RegistryError {
    /// Whether another endpoint (a mirror's origin) or a later try may
    /// succeed: the network or the server failed, not the request.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http(e) => e.is_transient(),
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::AllEndpoints { .. } | Self::Transfer { .. } => true,
            Self::Untrusted { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether a mirror's failure should send the request on to the next
    /// endpoint: anything but a bad answer from the origin itself.
    pub fn falls_through(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                Self::NotFound { .. } | Self::Unauthorized { .. } | Self::Status { .. }
            )
    }
}

/// The registry's JSON error body (`{"errors":[{"code","message"}]}`),
/// shortened to one line.
pub fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<Body>(body) {
        Ok(parsed) => parsed
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean
}
