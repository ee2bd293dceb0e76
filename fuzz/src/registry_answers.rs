//! `registry_answers`: what a registry (or whoever answers in its
//! place) sends the pull client, through the client's own readers: the
//! manifest answer (an index resolved to a platform, or an image
//! manifest checked for what can run), a 401's `WWW-Authenticate`
//! challenge, a token service's answer, an error body, and references
//! as a user or a user-data document writes them.
//!
//! The input's first line is the `Content-Type` the answer came with; the
//! rest is the body. Every line is also read as a challenge and as a
//! reference.

use husk_registry::auth::{TokenResponse, parse_challenge};
use husk_registry::manifest::{self, Answer};
use husk_registry::{Platform, Reference};

pub fn run(data: &[u8]) {
    let (media_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let media_type = String::from_utf8_lossy(media_type);
    let reference = Reference::parse("registry.example/team/app:1").expect("a valid reference");
    for platform in [
        Platform::default(),
        "linux/arm64/v8".parse().expect("a platform"),
    ] {
        match manifest::read(&reference, &media_type, body, &platform) {
            Ok(Answer::Manifest(m)) => {
                // What the pull reads of an accepted manifest next.
                let _ = m
                    .config()
                    .digest()
                    .to_string()
                    .parse::<husk_store::Digest>();
                for layer in m.layers() {
                    let _ = layer.digest().to_string().parse::<husk_store::Digest>();
                }
            }
            Ok(Answer::Index(chosen)) => {
                let _ = chosen.digest().to_string();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let _ = serde_json::from_slice::<TokenResponse>(body).map(TokenResponse::into_token);
    let _ = husk_registry::error::registry_message(body);
    for line in String::from_utf8_lossy(data).lines() {
        let _ = parse_challenge(line);
        if let Ok(r) = Reference::parse(line) {
            // A parsed reference prints and reparses as itself.
            let again = Reference::parse(&r.to_string()).expect("a reference reparses");
            assert_eq!(again, r, "{line:?}");
            let _ = husk_registry::pull::store_name(&r);
        }
    }
}
