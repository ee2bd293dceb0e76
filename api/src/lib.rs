//! The contract between Husk's agent and its clients (docs/API.md): every
//! request and answer as a serde type, the paths, the error body, and
//! [`client::Client`], which speaks it over the agent's unix socket.
//!
//! The agent's server and huskctl both use these types and nothing else
//! of each other. This crate knows the wire and nothing behind it: no
//! store, no runtime, no container manager, no HTTP server. Domain crates
//! keep their own typed values (digests, records) and the agent turns
//! them into these; identifiers here are the strings that travel.

pub mod client;
pub mod containers;
pub mod images;
pub mod networks;
pub mod roles;
pub mod tls;
pub mod update;
pub mod volumes;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::client::{Client, ClientError, Method};

/// Where the agent serves the API on a machine.
pub const DEFAULT_SOCKET: &str = husk_common::paths::AGENT_SOCKET;

/// Request bodies are small JSON documents (an archive is named by its
/// path, never sent); anything larger is refused before it is read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `GET /v1/health`.
pub const HEALTH_PATH: &str = "/v1/health";
/// `GET /v1/system`: the machine's state (the data partition).
pub const SYSTEM_PATH: &str = "/v1/system";

/// The `GET /v1/system` answer. `data` is init's data.json as it is, or
/// `{"state":"unknown"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub data: serde_json::Value,
    /// `/run/husk/user-data.json`, or `{"state":"unknown"}`.
    #[serde(default)]
    pub user_data: serde_json::Value,
    /// `/run/husk/net.json`: links, addresses, leases.
    #[serde(default)]
    pub network: serde_json::Value,
    /// `/run/husk/time.json`: the time service's last sync (server,
    /// offset_ms, delay_ms, stratum, correction, at), its servers, mode,
    /// `clock_set`, last success and error; `{"state":"unknown"}`.
    #[serde(default)]
    pub time: serde_json::Value,
    /// The remote API: `state` (`off`, `serving`, `failed` with
    /// `error`), `listen`, `certificate` (`machine` or `operator`),
    /// `fingerprint`, and the counts of `connections`,
    /// `handshake_failures` and `refused_requests`.
    #[serde(default)]
    pub api: serde_json::Value,
}

/// The health answer: the agent is up and serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// The body of every error answer: 4xx when the client is at fault, 5xx
/// for the agent's own failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A path segment for clients: slashes kept (image references contain
/// them and the routes take them), everything that would break the URL
/// percent-encoded.
pub fn encode_path_segment(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    for b in reference.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One line for people of `System::data` (init's data partition
/// outcome): what `huskctl status` prints and the agent logs.
pub fn describe_data(data: &Value) -> String {
    let field = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or("?");
    match field("state") {
        "mounted" => {
            let mib = data.get("size_bytes").and_then(Value::as_u64).unwrap_or(0) >> 20;
            let grown = if data.get("grown").and_then(Value::as_bool) == Some(true) {
                ", grown this boot"
            } else {
                ""
            };
            format!(
                "mounted {} on {} ({mib} MiB, fsck {}{grown})",
                field("device"),
                husk_common::paths::STATE_DIR,
                field("fsck")
            )
        }
        "absent" => format!(
            "absent (no {} partition; {} is a tmpfs)",
            husk_common::paths::DATA_PARTITION_NAME,
            husk_common::paths::STATE_DIR
        ),
        "failed" => format!(
            "FAILED {}: {} ({} is a tmpfs; the partition was left untouched)",
            field("device"),
            field("error"),
            husk_common::paths::STATE_DIR
        ),
        other => format!("{other} ({})", field("error")),
    }
}

/// `GET /v1/system`'s `api` (the remote API) in one line, as `huskctl
/// status` prints it.
pub fn describe_api(api: &Value) -> String {
    let text = |key: &str| api.get(key).and_then(Value::as_str).unwrap_or_default();
    let count = |key: &str| api.get(key).and_then(Value::as_u64).unwrap_or(0);
    match text("state") {
        "serving" => {
            let listen: Vec<&str> = api
                .get("listen")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "serving on {} (TLS; {} certificate {}), {} connection(s), {} failed handshake(s), {} refused request(s)",
                listen.join(", "),
                text("certificate"),
                text("fingerprint"),
                count("connections"),
                count("handshake_failures"),
                count("refused_requests")
            )
        }
        "failed" => format!(
            "FAILED: {} (only the machine's own socket serves)",
            text("error")
        ),
        _ => "off (only the machine's own socket serves)".into(),
    }
}

/// A size as Docker's flags write it: `512`, `64k`, `256m`, `2g`
/// (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 256m)"))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("unknown unit in `{text}` (b, k, m, g)")),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_api_in_one_line() {
        let serving = serde_json::json!({"state": "serving", "listen": ["0.0.0.0:7443"],
            "certificate": "machine", "fingerprint": "sha256:ab", "connections": 2,
            "handshake_failures": 1, "refused_requests": 0});
        assert_eq!(
            describe_api(&serving),
            "serving on 0.0.0.0:7443 (TLS; machine certificate sha256:ab), 2 connection(s), 1 failed handshake(s), 0 refused request(s)"
        );
        let failed = serde_json::json!({"state": "failed", "error": "api.listen x: in use"});
        assert!(describe_api(&failed).starts_with("FAILED: api.listen x: in use"));
        assert!(describe_api(&serde_json::json!({"state": "off"})).starts_with("off"));
        assert!(describe_api(&Value::Null).starts_with("off"));
    }

    #[test]
    fn sizes_as_docker_writes_them() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("256m").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
        assert!(parse_bytes("99999999999999g").is_err());
    }

    #[test]
    fn the_data_partition_in_one_line() {
        let failed = serde_json::json!({"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4","fsck":"failed","grown":false,"size_bytes":0});
        assert_eq!(
            describe_data(&failed),
            "FAILED /dev/vda2: e2fsck: exit status 4 (/var/lib/husk is a tmpfs; the partition was left untouched)"
        );
        let mounted = serde_json::json!({"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":true,"size_bytes":2u64<<30});
        assert_eq!(
            describe_data(&mounted),
            "mounted /dev/vda2 on /var/lib/husk (2048 MiB, fsck clean, grown this boot)"
        );
        let unknown = serde_json::json!({"state":"unknown","error":"/run/husk/data.json: missing"});
        assert_eq!(
            describe_data(&unknown),
            "unknown (/run/husk/data.json: missing)"
        );
    }
}
