//! The fake registry's authentication: Basic, or Bearer tokens from its
//! own `/token` endpoint, scoped to repositories.

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use super::State;
use super::http::{Request, Response, base64_decode, base64_encode};

/// The `service` of the token challenge, which `/token` wants back.
pub const SERVICE: &str = "fake-registry";

/// Which field `/token` puts the token in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenField {
    /// `{"token": …}` (Docker Hub has both).
    #[default]
    Token,
    /// `{"access_token": …}` only (the OAuth2 name, which clients must
    /// take too).
    AccessToken,
    /// Both fields, the same token.
    Both,
}

/// How the registry wants clients to authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// Every `/v2/` request needs `Authorization: Basic` with these;
    /// otherwise 401 and `WWW-Authenticate: Basic realm="fake"`.
    Basic { user: String, pass: String },
    /// Every `/v2/` request needs `Authorization: Bearer` with a token from
    /// `/token` whose scope has the repository (pull); otherwise 401 and
    /// `WWW-Authenticate: Bearer realm="http://HOST/token",
    /// service="fake-registry",scope="repository:NAME:pull"`. `/token`
    /// wants `service=fake-registry`, and these credentials by Basic if
    /// given (anonymous tokens otherwise).
    Token {
        user_pass: Option<(String, String)>,
        field: TokenField,
    },
}

impl Auth {
    pub fn basic(user: &str, pass: &str) -> Self {
        Auth::Basic {
            user: user.to_string(),
            pass: pass.to_string(),
        }
    }

    /// Anonymous tokens, in `token`.
    pub fn token() -> Self {
        Auth::Token {
            user_pass: None,
            field: TokenField::Token,
        }
    }

    /// Tokens for these credentials only, in `token`.
    pub fn token_for(user: &str, pass: &str) -> Self {
        Auth::Token {
            user_pass: Some((user.to_string(), pass.to_string())),
            field: TokenField::Token,
        }
    }
}

/// `Basic <base64 of user:pass>`, an Authorization header's value.
pub fn basic_authorization(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{pass}").as_bytes())
    )
}

pub(crate) fn random_token() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let (a, b) = (
        RandomState::new().hash_one(n),
        RandomState::new().hash_one(!n),
    );
    format!("fake-{a:016x}{b:016x}")
}

/// The credentials of a `Basic` Authorization header.
pub(crate) fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = authorization?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

pub(crate) fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The repositories a `/token` request's `scope`s ask to pull
/// (`repository:NAME:pull`, or `*`; several scopes in one parameter,
/// space-separated, or in several).
pub(crate) fn pull_repositories(request: &Request) -> BTreeSet<String> {
    request
        .query_all("scope")
        .flat_map(|scopes| scopes.split(' '))
        .filter_map(|scope| {
            let (resource, actions) = scope.rsplit_once(':')?;
            let name = resource.strip_prefix("repository:")?;
            let pull = actions.split(',').any(|a| a == "pull" || a == "*");
            pull.then(|| name.to_string())
        })
        .collect()
}

impl State {
    /// The 401 a request for repository `name` (or the ping) gets, if any.
    pub(super) fn authorize(&self, request: &Request, name: Option<&str>) -> Result<(), Response> {
        let authorization = request.header("authorization");
        let unauthorized = || Response::error(401, "UNAUTHORIZED", "authentication required");
        match &self.auth {
            Auth::None => Ok(()),
            Auth::Basic { user, pass } => match basic_credentials(authorization) {
                Some((u, p)) if u == *user && p == *pass => Ok(()),
                _ => Err(unauthorized().header("WWW-Authenticate", "Basic realm=\"fake\"")),
            },
            Auth::Token { .. } => {
                let scopes = bearer_token(authorization).map(|t| self.tokens.get(t));
                let error = match scopes {
                    Some(Some(repos)) if name.is_none_or(|n| repos.contains(n)) => return Ok(()),
                    Some(Some(_)) => ",error=\"insufficient_scope\"",
                    Some(None) => ",error=\"invalid_token\"",
                    None => "",
                };
                let mut challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"",
                    self.host
                );
                if let Some(name) = name {
                    challenge.push_str(&format!(",scope=\"repository:{name}:pull\""));
                }
                challenge.push_str(error);
                Err(unauthorized().header("WWW-Authenticate", challenge))
            }
        }
    }

    /// `GET /token`: a token for the scopes asked (the pull ones).
    pub(super) fn token(&mut self, request: &Request) -> Response {
        let Auth::Token { user_pass, field } = &self.auth else {
            return Response::error(404, "NOT_FOUND", "no token service");
        };
        if let Some((user, pass)) = user_pass {
            match basic_credentials(request.header("authorization")) {
                Some((u, p)) if u == *user && p == *pass => {}
                _ => {
                    return Response::error(401, "UNAUTHORIZED", "bad credentials")
                        .header("WWW-Authenticate", "Basic realm=\"fake\"");
                }
            }
        }
        if request.query_all("service").next() != Some(SERVICE) {
            return Response::error(400, "DENIED", &format!("service must be {SERVICE}"));
        }
        let repositories = pull_repositories(request);
        let token = random_token();
        let body = match field {
            TokenField::Token => json!({"token": token, "expires_in": 300}),
            TokenField::AccessToken => json!({"access_token": token, "expires_in": 300}),
            TokenField::Both => json!({"token": token, "access_token": token, "expires_in": 300}),
        };
        self.tokens.insert(token, repositories);
        Response::json(200, &body)
    }
}
