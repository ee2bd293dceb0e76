//! Docker's `X-Registry-Auth` header (what `docker pull` sends from the
//! client's `docker login`): base64url of a JSON `AuthConfig`. As
//! dockerd, a header that cannot be read is taken as no credentials
//! (the pull then goes with agent.toml's, or none); it is logged, never
//! its contents.

use axum::http::HeaderMap;
use base64::Engine as _;
use husk_registry::config::AuthEntry;
use serde::Deserialize;

/// The fields of Docker's `AuthConfig` a pull uses.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    auth: String,
    #[serde(rename = "identitytoken")]
    identity_token: String,
}

/// The client's credentials, if it sent any.
pub fn from_headers(headers: &HeaderMap) -> Option<AuthEntry> {
    let value = headers.get("x-registry-auth")?.to_str().ok()?.trim();
    let decoded = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(value).ok());
    let Some(config) = decoded.and_then(|d| serde_json::from_slice::<AuthConfig>(&d).ok()) else {
        log::warn!("Docker API: an X-Registry-Auth header that is not base64 JSON: ignored");
        return None;
    };
    let given = |s: String| (!s.is_empty()).then_some(s);
    let entry = AuthEntry {
        auth: given(config.auth),
        username: given(config.username),
        password: given(config.password),
        identity_token: given(config.identity_token),
    };
    (entry != AuthEntry::default()).then_some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-registry-auth", value.parse().unwrap());
        headers
    }

    fn encoded(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    #[test]
    fn the_clis_credentials_are_read_and_nothing_else_counts_as_some() {
        let entry = from_headers(&header(&encoded(
            r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#,
        )))
        .unwrap();
        assert_eq!(entry.username.as_deref(), Some("u"));
        assert_eq!(entry.password.as_deref(), Some("p?>"));
        let token = from_headers(&header(&encoded(r#"{"identitytoken":"t"}"#))).unwrap();
        assert_eq!(token.identity_token.as_deref(), Some("t"));
        // What the CLI sends when it has nothing: `{}`.
        assert!(from_headers(&header("e30=")).is_none());
        assert!(from_headers(&header("not base64!")).is_none());
        assert!(from_headers(&header(&encoded("[1]"))).is_none());
        assert!(from_headers(&HeaderMap::new()).is_none());
    }
}
