//! Image references as Docker reads them: `nginx` is
//! `docker.io/library/nginx:latest`, `user/app` is on Docker Hub, and the
//! first component is a registry only when it looks like a host (has a
//! `.` or a `:`, or is `localhost`). The grammar is the distribution
//! project's (`reference/regexp.go`); anything else is refused with the
//! part at fault named.

use std::fmt;

/// Docker Hub, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`: when given, what is pulled, whatever the tag says.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{reference}`: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: String| ReferenceError {
            reference: text.into(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest).map_err(bad)?)),
            None => (text, None),
        };
        // A tag is after the last `:` that follows the last `/` (a `:`
        // before it is a registry's port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_owned()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            check_tag(tag).map_err(bad)?;
        }
        // The host as written is checked before it is shortened to its
        // canonical spelling: `n..:4` is no host, though dropping one
        // trailing dot would make it look like one (and a second parse
        // of the result would drop another).
        let (registry, repository) = split_registry(name);
        check_host(&registry).map_err(bad)?;
        let registry = canonical_host(&registry);
        let repository = match (registry.as_str(), repository.contains('/')) {
            (DOCKER_HUB, false) => format!("library/{repository}"),
            _ => repository,
        };
        check_repository(&repository).map_err(bad)?;
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(bad(format!(
                "the name is longer than {MAX_NAME} characters"
            )));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".into()),
            _ => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry's API is on (`registry-1.docker.io` for
    /// Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What the manifest is fetched by: the digest when there is one.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The name without tag or digest, as Docker shows it (`nginx`,
    /// `user/app`, `ghcr.io/o/app`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.into(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The reference as Docker prints it: familiar, with its tag or
    /// digest (`busybox:latest`, `127.0.0.1:5000/team/app:1`,
    /// `app@sha256:…`).
    pub fn shown(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("{}@{digest}", self.familiar_name()),
            (None, tag) => format!(
                "{}:{}",
                self.familiar_name(),
                tag.as_deref().unwrap_or("latest")
            ),
        }
    }

    /// The same repository at another digest.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            tag: None,
            digest: Some(digest.into()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) || first.starts_with('.') => {
            (first.into(), rest.into())
        }
        _ => (DOCKER_HUB.into(), name.into()),
    }
}

/// One spelling per registry, so that what the policy, the credentials
/// and the trusted tags match is what is fetched: lowercase, no trailing
/// dot, no `:443` (HTTPS's port), Docker Hub's aliases as `docker.io`.
pub fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    // Each shortening only if what is left is still read as a registry
    // (`foo:443/x` is not `foo/x`, which is Docker Hub's).
    let keep = |shorter: Option<String>, host: String| match shorter {
        Some(shorter) if looks_like_registry(&shorter) => shorter,
        _ => host,
    };
    let host = keep(host.strip_suffix(":443").map(str::to_owned), host.clone());
    let without_dot = match host.rsplit_once(':') {
        Some((name, port)) if !host.starts_with('[') => {
            name.strip_suffix('.').map(|name| format!("{name}:{port}"))
        }
        Some(_) => None,
        None => host.strip_suffix('.').map(str::to_owned),
    };
    let host = keep(without_dot, host);
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.into(),
        _ => host,
    }
}

/// What Docker reads as a registry rather than a repository component.
fn looks_like_registry(first: &str) -> bool {
    !first.is_empty()
        && (first.contains('.') || first.contains(':') || first == "localhost")
        && !first.starts_with('.')
}

fn parse_digest(digest: &str) -> Result<String, String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!(
            "digest `{digest}`: only sha256 digests are supported"
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest `{digest}`: expected 64 lowercase hex digits"
        ));
    }
    Ok(digest.into())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}`: 1 to {MAX_TAG} of [A-Za-z0-9_.-], not starting with `.` or `-`"
        ))
    }
}

fn check_host(host: &str) -> Result<(), String> {
    // `[v6]` or `[v6]:port`; otherwise the port is after the last `:`.
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, "")) => (address, None),
            Some((address, rest)) => match rest.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return Err(format!("registry `{host}` is not a host name")),
            },
            None => return Err(format!("registry `{host}` is not a host name")),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("registry `{host}`: port `{port}` is not a number"));
    }
    // Labels of a name (not of a bracketed IPv6 address) are never
    // empty: `..` and `.x` are no hosts.
    let bracketed = host.starts_with('[');
    let labels_ok = bracketed
        || name
            .strip_suffix('.')
            .unwrap_or(name)
            .split('.')
            .all(|label| !label.is_empty());
    let valid = !name.is_empty()
        && labels_ok
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-') || (bracketed && b == b':')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("registry `{host}` is not a host name"))
    }
}

/// Lowercase alphanumeric components separated by `.`, `_`, `__` or
/// dashes, joined by `/`.
fn check_repository(repository: &str) -> Result<(), String> {
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let mut valid = !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric();
        let mut underscores = 0;
        let mut last = b'a';
        for &b in bytes {
            match b {
                b'a'..=b'z' | b'0'..=b'9' => underscores = 0,
                b'_' => {
                    underscores += 1;
                    valid &= underscores <= 2 && last != b'.' && last != b'-';
                }
                b'.' => valid &= last.is_ascii_alphanumeric(),
                b'-' => valid &= last != b'.' && last != b'_',
                _ => valid = false,
            }
            last = b;
        }
        if !valid {
            return Err(format!(
                "repository `{repository}`: component `{component}` must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(text).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_normalisation() {
        let hub = |repo: &str, tag: &str| {
            (
                DOCKER_HUB.to_string(),
                repo.to_string(),
                Some(tag.to_string()),
                None,
            )
        };
        assert_eq!(parsed("nginx"), hub("library/nginx", "latest"));
        assert_eq!(parsed("nginx:1.27"), hub("library/nginx", "1.27"));
        assert_eq!(parsed("user/app"), hub("user/app", "latest"));
        assert_eq!(
            parsed("docker.io/library/nginx"),
            hub("library/nginx", "latest")
        );
        assert_eq!(
            parsed("index.docker.io/nginx"),
            hub("library/nginx", "latest")
        );
        assert_eq!(
            parsed("localhost:5000/a/b:v1"),
            (
                "localhost:5000".into(),
                "a/b".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(
            parsed("localhost/app"),
            (
                "localhost".into(),
                "app".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(
            parsed(&format!("ghcr.io/o/app@{D}")),
            ("ghcr.io".into(), "o/app".into(), None, Some(D.into()))
        );
        assert_eq!(
            parsed(&format!("busybox:1.36@{D}")),
            (
                DOCKER_HUB.into(),
                "library/busybox".into(),
                Some("1.36".into()),
                Some(D.into())
            )
        );
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(r.familiar_name(), "nginx");
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(
            Reference::parse("127.0.0.1:5000/x")
                .unwrap()
                .familiar_name(),
            "127.0.0.1:5000/x"
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("a//b", "component ``"),
            ("a/../b", "component `..`"),
            ("nginx:-x", "tag `-x`"),
            ("nginx:", "tag ``"),
            ("nginx@sha256:abc", "64 lowercase hex"),
            ("nginx@md5:abc", "only sha256"),
            ("host:port/x", "port `port`"),
            ("ex ample.com/x", "not a host"),
            ("a__-b", "component"),
        ] {
            let err = Reference::parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        // One spelling per registry: what rules match is what is fetched.
        for (spelt, canonical) in [
            ("GHCR.io", "ghcr.io"),
            ("ghcr.io:443", "ghcr.io"),
            ("ghcr.io.", "ghcr.io"),
            ("ghcr.io.:5000", "ghcr.io:5000"),
            ("INDEX.DOCKER.IO", "docker.io"),
            ("registry-1.docker.io:443", "docker.io"),
        ] {
            let r = Reference::parse(&format!("{spelt}/o/app")).unwrap();
            assert_eq!(r.registry, canonical, "{spelt}");
        }
        assert_eq!(Reference::parse("[::1]/a:b").unwrap().registry, "[::1]");
        assert_eq!(
            Reference::parse("[::1]:5000/a").unwrap().registry,
            "[::1]:5000"
        );
        assert!(Reference::parse("[::1]x/a").is_err());
        // Single-label hosts keep what makes them registries.
        assert_eq!(Reference::parse("foo:443/x").unwrap().registry, "foo:443");
        assert_eq!(Reference::parse("foo./x").unwrap().registry, "foo.");
        assert_eq!(
            Reference::parse("localhost.:443/x").unwrap().registry,
            "localhost"
        );
        for no_host in [
            "../x:1",
            "./a/b:1",
            ".x/a",
            "a..b/c",
            "ap[ion./kw",
            "a]b.c/x",
            // Two trailing dots: dropping one left `n.:4`, which a
            // second parse shortened again (found by the fuzzer).
            "n..:4/z",
            "n../z",
        ] {
            let err = Reference::parse(no_host).unwrap_err().to_string();
            assert!(err.contains("not a host name"), "{no_host}: {err}");
        }
        let long = format!("{}/x", "a".repeat(300));
        assert!(Reference::parse(&long).is_err());
    }
}
