//! One registry session: the endpoints a reference is fetched from (its
//! mirrors, then the registry itself), requests with the credentials
//! and tokens each endpoint asks for, and the answers read within
//! limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue, RANGE, WWW_AUTHENTICATE};
use url::Url;

use super::auth::{self, Challenge, MAX_TOKEN_RESPONSE, TokenResponse};
use super::config::{Credentials, RegistryConfig, registry_key};
use super::error::{RegistryError, registry_message};
use super::http::{self, HttpClient, HttpError, Response};
use super::reference::Reference;

/// Most of an error body that is read to name the problem.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Where a repository's content can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port][/prefix]/`; `v2/<repository>/…` is joined to it.
    pub base: Url,
    /// The registry whose credentials it takes (a mirror's own host).
    pub host: String,
    pub plain_http: bool,
    pub mirror: bool,
}

impl Endpoint {
    fn url(&self, repository: &str, rest: &str) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("v2/{repository}/{rest}"))
            .map_err(|e| RegistryError::BadManifest {
                reference: repository.into(),
                reason: format!("cannot make a URL of it: {e}"),
            })
    }
}

/// A client of registries with one configuration. Cheap to share.
pub struct Registries {
    http: HttpClient,
    config: RegistryConfig,
    /// What answered a challenge (`Basic …`, `Bearer …`) by (endpoint
    /// host, scope).
    tokens: Mutex<HashMap<(String, String), Arc<str>>>,
}

impl std::fmt::Debug for Registries {
    // Never the cached `Authorization` values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Registries {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        config.validate()?;
        let tls = http::tls_config(&config.ca_files, &config.ca_pems)?;
        Ok(Self::with_http(config, HttpClient::new(tls)))
    }

    pub fn with_http(config: RegistryConfig, http: HttpClient) -> Self {
        Self {
            http,
            config,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The mirrors of the reference's registry, then the registry.
    pub fn endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for mirror in self.config.mirrors_of(&reference.registry) {
            let Ok(mut base) = Url::parse(&mirror) else {
                continue;
            };
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            let host = match base.port() {
                Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
                None => base.host_str().unwrap_or_default().to_owned(),
            };
            let plain_http = base.scheme() == "http";
            out.push(Endpoint {
                base,
                host,
                plain_http,
                mirror: true,
            });
        }
        let host = reference.api_host().to_owned();
        let plain_http =
            self.config.is_insecure(&reference.registry) || self.config.is_insecure(&host);
        let scheme = if plain_http { "http" } else { "https" };
        if let Ok(base) = Url::parse(&format!("{scheme}://{host}/")) {
            out.push(Endpoint {
                base,
                host: reference.registry.clone(),
                plain_http,
                mirror: false,
            });
        }
        out
    }

    /// GETs `v2/<repository>/<rest>` from `endpoint`, answering a 401
    /// with credentials or a token once. Returns any 2xx response; other
    /// statuses are errors that name the registry's complaint.
    pub async fn get(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        rest: &str,
        accept: Option<&str>,
        from: u64,
    ) -> Result<Response, RegistryError> {
        let url = endpoint.url(repository, rest)?;
        let scope = auth::pull_scope(repository);
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        if let Some(accept) = accept {
            headers.push((ACCEPT, header_value(accept)?));
        }
        if from > 0 {
            headers.push((RANGE, header_value(&format!("bytes={from}-"))?));
        }
        // What answered the last challenge (Basic credentials or a
        // token) goes with the first try: no 401 round trip per request.
        let mut authorization = self
            .cached_authorization(&endpoint.host, &scope)
            .map(|a| a.to_string());
        for attempt in 0..2 {
            let mut sent = headers.clone();
            if let Some(value) = &authorization {
                sent.push((AUTHORIZATION, header_value(value)?));
            }
            let response = self
                .http
                .get(&url, &sent, endpoint.plain_http)
                .await
                .map_err(|e| plain_http_named(e, endpoint))?;
            if response.status == 401 && attempt == 1 {
                self.forget_authorization(&endpoint.host, &scope);
                if authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Basic "))
                {
                    let user = self
                        .credentials(&endpoint.host)
                        .map(|c| c.username)
                        .unwrap_or_default();
                    return Err(RegistryError::Unauthorized {
                        registry: endpoint.host.clone(),
                        reason: format!("the registry refused the credentials of `{user}`"),
                    });
                }
            }
            if response.status != 401 || attempt == 1 {
                return check_status(response).await;
            }
            // Only the registry's own 401 is answered with its
            // credentials, not one from where it redirected (a CDN, an
            // open redirect) naming a realm of its choosing.
            let same_origin = response.url.host_str() == url.host_str()
                && response.url.port_or_known_default() == url.port_or_known_default();
            if !same_origin {
                return Err(RegistryError::Unauthorized {
                    registry: endpoint.host.clone(),
                    reason: format!(
                        "{} (where it redirected) asks for credentials: not given",
                        response.url
                    ),
                });
            }
            let challenge = response
                .header(WWW_AUTHENTICATE.as_str())
                .and_then(auth::parse_challenge);
            let answer = self.answer(endpoint, challenge, &scope).await?;
            self.tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    (endpoint.host.clone(), scope.clone()),
                    Arc::from(answer.as_str()),
                );
            authorization = Some(answer);
        }
        unreachable_auth(endpoint)
    }

    /// The Authorization value that answers a 401's challenge.
    async fn answer(
        &self,
        endpoint: &Endpoint,
        challenge: Option<Challenge>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let credentials = self.credentials(&endpoint.host);
        let unauthorized = |reason: String| RegistryError::Unauthorized {
            registry: endpoint.host.clone(),
            reason,
        };
        match challenge {
            Some(Challenge::Basic) => {
                credentials.map(|c| auth::basic_header(&c)).ok_or_else(|| {
                    unauthorized(
                        "it asks for a user name and password; give them in registry.auths (or `docker login` for Docker's API)".into(),
                    )
                })
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let token = self
                    .fetch_token(
                        endpoint,
                        &realm,
                        service.as_deref(),
                        asked.as_deref().unwrap_or(scope),
                        credentials.as_ref(),
                    )
                    .await?;
                Ok(format!("Bearer {token}"))
            }
            None => Err(unauthorized(
                "401 without a challenge this client knows (Basic or Bearer)".into(),
            )),
        }
    }

    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let unauthorized = |reason: String| RegistryError::Unauthorized {
            registry: endpoint.host.clone(),
            reason,
        };
        let mut url =
            Url::parse(realm).map_err(|e| unauthorized(format!("token realm `{realm}`: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut headers = Vec::new();
        if let Some(credentials) = credentials {
            // Credentials travel to the realm only over TLS, unless the
            // registry itself is one the configuration lets be plain.
            if url.scheme() != "https" && !endpoint.plain_http {
                return Err(unauthorized(format!(
                    "token realm `{realm}` is not https: credentials are not sent to it"
                )));
            }
            headers.push((
                AUTHORIZATION,
                header_value(&auth::basic_header(credentials))?,
            ));
        }
        let response = self.http.get(&url, &headers, endpoint.plain_http).await?;
        if response.status == 401 || response.status == 403 {
            let reason = match credentials {
                Some(c) => format!(
                    "the token service refused the credentials of `{}`",
                    c.username
                ),
                None => "the token service wants credentials; give them in registry.auths (or `docker login` for Docker's API)".into(),
            };
            return Err(unauthorized(reason));
        }
        let response = check_status(response).await?;
        let body = response.bytes(MAX_TOKEN_RESPONSE).await?;
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| unauthorized(format!("token service answer: {e}")))?;
        token
            .into_token()
            .ok_or_else(|| unauthorized("the token service answered no token".into()))
    }

    fn cached_authorization(&self, host: &str, scope: &str) -> Option<Arc<str>> {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(host.to_owned(), scope.to_owned()))
            .cloned()
    }

    /// A cached answer the registry refused (an expired token).
    fn forget_authorization(&self, host: &str, scope: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(host.to_owned(), scope.to_owned()));
    }

    fn credentials(&self, host: &str) -> Option<Credentials> {
        self.config.credentials(&registry_key(host))
    }
}

fn unreachable_auth(endpoint: &Endpoint) -> Result<Response, RegistryError> {
    Err(RegistryError::Unauthorized {
        registry: endpoint.host.clone(),
        reason: "still 401 after authenticating".into(),
    })
}

/// A registry that answers TLS in plain HTTP (to rustls, a record of no
/// TLS content type) is named as such, with what to do about it. A
/// mirror's error stays as it is (its URL's scheme says what it speaks,
/// and a failing mirror is passed over).
fn plain_http_named(error: HttpError, endpoint: &Endpoint) -> HttpError {
    let HttpError::Transport { url, source } = error else {
        return error;
    };
    // rustls's error is inside io::Errors (tokio-rustls's, hyper-rustls's),
    // whose `source` skips it.
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    let mut plain = false;
    while let Some(cause) = next {
        plain |= matches!(
            cause.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        );
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    if !plain || endpoint.mirror {
        return HttpError::Transport { url, source };
    }
    HttpError::Refused {
        url,
        reason:
            "it does not speak TLS (plain HTTP?): list the registry as insecure to allow plain HTTP"
                .into(),
    }
}

fn header_value(text: &str) -> Result<HeaderValue, RegistryError> {
    HeaderValue::from_str(text).map_err(|_| RegistryError::Unauthorized {
        registry: String::new(),
        reason: "a header value has characters HTTP cannot carry".into(),
    })
}

/// A 2xx response as it is; anything else as an error with the
/// registry's message.
async fn check_status(response: Response) -> Result<Response, RegistryError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let url = response.url.to_string();
    let body = response.bytes(MAX_ERROR_BODY).await.unwrap_or_default();
    let message = registry_message(&body);
    Err(match status {
        404 => RegistryError::NotFound {
            reference: url,
            message,
        },
        401 | 403 => RegistryError::Unauthorized {
            registry: url,
            reason: format!("{status}: {message}"),
        },
        _ => RegistryError::Status {
            url,
            status,
            message,
        },
    })
}
