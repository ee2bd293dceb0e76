//! The admission policy: which images may be pulled, and what they must
//! prove first. agent.toml's `[policy]` is the machine's; user-data's is
//! a second policy that must also admit an image, so it can forbid more
//! and require more but never loosen what the image forbids.
//!
//! ```toml
//! [policy]
//! default = "deny"                     # a reference no rule allows is refused
//! [[policy.rules]]
//! registry = "registry.example"        # host[:port], or "*"
//! repository = "team/*"                # exact, or a prefix ending in `*`; default every one
//! action = "allow"                     # or "deny"
//! require_digest = true                # only `…@sha256:` references
//! require_signature = ["/etc/husk/keys/team.pub"]   # one of these keys (files or PEM text)
//! require_fresh = { repository = "https://tags.example/", root = "/etc/husk/tags/root.json" }
//! ```
//!
//! Every rule that matches applies: a `deny` among them refuses; each
//! one's requirements must be met (a signature by one of *its* keys,
//! the digest its tag repository says). A refusal names the rule.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::registry_key;
use super::reference::Reference;
use super::trust::cosign::PublicKey;
use super::trust::tags::TagRepository;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

/// `[policy]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// For references no rule matches (default: allow).
    pub default: Action,
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    pub registry: String,
    pub repository: Option<String>,
    pub action: Action,
    pub require_digest: bool,
    /// Public keys (cosign's `cosign.pub`): PEM files, or PEM text.
    pub require_signature: Vec<String>,
    pub require_fresh: Option<FreshConfig>,
}

/// A TUF repository of trusted tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshConfig {
    pub repository: String,
    /// Its pinned root.json.
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {reason}")]
pub struct PolicyError {
    pub rule: String,
    pub reason: String,
}

/// One rule, its keys loaded.
#[derive(Debug, Clone)]
pub struct Rule {
    /// How a refusal names it: `agent.toml policy.rules[2] (registry.example/team/*)`.
    pub label: String,
    registry: String,
    repository: Option<String>,
    action: Action,
    require_digest: bool,
    keys: Vec<PublicKey>,
    fresh: Option<TagRepository>,
}

/// One source's policy (agent.toml's or user-data's).
#[derive(Debug, Clone, Default)]
pub struct Layer {
    source: String,
    default: Action,
    rules: Vec<Rule>,
}

/// The machine's policy: every layer must admit an image.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    layers: Vec<Layer>,
}

/// What an image must prove to be admitted.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// The rule that allows only digests, if any.
    pub digest_only: Option<String>,
    /// Per rule: a signature by one of these keys.
    pub signatures: Vec<(String, Vec<PublicKey>)>,
    /// Per rule: the tag's digest as this repository says.
    pub fresh: Vec<(String, TagRepository)>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self.digest_only.is_none() && self.signatures.is_empty() && self.fresh.is_empty()
    }
}

/// Why an image was refused: the rule, and what it wanted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by the admission policy: {rule}: {reason}")]
pub struct Refused {
    pub rule: String,
    pub reason: String,
}

impl PolicyConfig {
    /// Loads the keys and checks every rule. `datastores`: where each
    /// tag repository's last trusted metadata is kept (the agent's state
    /// directory).
    pub fn load(&self, source: &str, datastores: &Path) -> Result<Layer, PolicyError> {
        let mut rules = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let scope = match &rule.repository {
                Some(repository) => format!("{}/{repository}", rule.registry),
                None => rule.registry.clone(),
            };
            let label = format!("{source} policy.rules[{i}] ({scope})");
            let bad = |reason: String| PolicyError {
                rule: label.clone(),
                reason,
            };
            if rule.registry.is_empty() {
                return Err(bad("`registry` is required (a host, or \"*\")".into()));
            }
            if let Some(repository) = &rule.repository
                && (repository.is_empty()
                    || repository
                        .strip_suffix('*')
                        .unwrap_or(repository)
                        .contains('*'))
            {
                return Err(bad(format!(
                    "repository `{repository}`: exact, or a prefix ending in `*`"
                )));
            }
            if rule.action == Action::Deny
                && (rule.require_digest
                    || !rule.require_signature.is_empty()
                    || rule.require_fresh.is_some())
            {
                return Err(bad("a deny rule has no requirements to meet".into()));
            }
            let keys = rule
                .require_signature
                .iter()
                .map(|key| {
                    if key.trim_start().starts_with("-----BEGIN") {
                        PublicKey::from_pem(key)
                    } else {
                        PublicKey::from_file(Path::new(key))
                    }
                    .map_err(|e| bad(format!("require_signature: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let fresh = match &rule.require_fresh {
                None => None,
                Some(fresh) => {
                    let url = url::Url::parse(&fresh.repository)
                        .map_err(|e| bad(format!("require_fresh.repository: {e}")))?;
                    if !matches!(url.scheme(), "https" | "http" | "file") {
                        return Err(bad(
                            "require_fresh.repository: an https://, http:// or file:// URL".into(),
                        ));
                    }
                    let root = PathBuf::from(&fresh.root);
                    if !root.is_file() {
                        return Err(bad(format!(
                            "require_fresh.root {}: no such file",
                            root.display()
                        )));
                    }
                    let root_bytes = std::fs::read(&root)
                        .map_err(|e| bad(format!("require_fresh.root {}: {e}", root.display())))?;
                    Some(TagRepository {
                        url: fresh.repository.clone(),
                        datastore: datastores.join(datastore_name(&fresh.repository, &root_bytes)),
                        root,
                    })
                }
            };
            rules.push(Rule {
                label,
                registry: registry_key(&rule.registry),
                repository: rule.repository.clone(),
                action: rule.action,
                require_digest: rule.require_digest,
                keys,
                fresh,
            });
        }
        Ok(Layer {
            source: source.into(),
            default: self.default,
            rules,
        })
    }
}

/// A directory name for a repository's datastore: its URL (without a
/// trailing `/`) and its pinned root, hashed, so two rules trusting one
/// URL with different roots never share what they remember.
fn datastore_name(url: &str, root: &[u8]) -> String {
    let mut both = url.trim_end_matches('/').as_bytes().to_vec();
    both.push(0);
    both.extend_from_slice(husk_store::Digest::of(root).hex().as_bytes());
    husk_store::Digest::of(&both).hex()
}

impl Rule {
    fn matches(&self, reference: &Reference) -> bool {
        let registry_ok =
            self.registry == "*" || self.registry == registry_key(&reference.registry);
        let repository_ok = match self.repository.as_deref() {
            None => true,
            Some(pattern) => match pattern.strip_suffix('*') {
                Some(prefix) => reference.repository.starts_with(prefix),
                None => reference.repository == pattern,
            },
        };
        registry_ok && repository_ok
    }
}

impl Policy {
    pub fn new(layers: Vec<Layer>) -> Self {
        Self { layers }
    }

    /// Whether anything is refused or required (a policy of no rules
    /// and `default = "allow"` admits everything as it is).
    pub fn constrains(&self) -> bool {
        self.layers
            .iter()
            .any(|l| l.default == Action::Deny || !l.rules.is_empty())
    }

    /// Adds a layer (user-data's): it must admit an image too.
    pub fn with(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Whether `reference` may be pulled, and what it must prove.
    pub fn admit(&self, reference: &Reference) -> Result<Requirements, Refused> {
        let mut requirements = Requirements::default();
        for layer in &self.layers {
            let matching: Vec<&Rule> = layer
                .rules
                .iter()
                .filter(|r| r.matches(reference))
                .collect();
            if let Some(deny) = matching.iter().find(|r| r.action == Action::Deny) {
                return Err(Refused {
                    rule: deny.label.clone(),
                    reason: format!("{} is denied", reference.familiar_name()),
                });
            }
            if matching.is_empty() && layer.default == Action::Deny {
                return Err(Refused {
                    rule: format!("{} policy.default", layer.source),
                    reason: format!("no rule allows {}", reference.familiar_name()),
                });
            }
            for rule in matching {
                if rule.require_digest && requirements.digest_only.is_none() {
                    requirements.digest_only = Some(rule.label.clone());
                }
                if !rule.keys.is_empty() {
                    requirements
                        .signatures
                        .push((rule.label.clone(), rule.keys.clone()));
                }
                if let Some(fresh) = &rule.fresh {
                    requirements.fresh.push((rule.label.clone(), fresh.clone()));
                }
            }
        }
        if let Some(rule) = &requirements.digest_only
            && reference.digest.is_none()
        {
            return Err(Refused {
                rule: rule.clone(),
                reason: format!(
                    "only references by digest are allowed (`{}@sha256:…`)",
                    reference.familiar_name()
                ),
            });
        }
        Ok(requirements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(source: &str, toml_text: &str) -> Layer {
        let config: PolicyConfig = toml::from_str(toml_text).unwrap();
        config.load(source, Path::new("/nonexistent")).unwrap()
    }

    fn r(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn deny_wins_and_names_the_rule() {
        let policy = Policy::new(vec![layer(
            "agent.toml",
            "[[rules]]\nregistry = \"docker.io\"\n[[rules]]\nregistry = \"docker.io\"\nrepository = \"library/bad*\"\naction = \"deny\"\n",
        )]);
        policy.admit(&r("nginx")).unwrap();
        let refused = policy.admit(&r("badapp:1")).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("agent.toml policy.rules[1] (docker.io/library/bad*)"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("badapp is denied"),
            "{refused}"
        );
    }

    #[test]
    fn a_default_deny_admits_only_what_a_rule_allows() {
        let policy = Policy::new(vec![layer(
            "agent.toml",
            "default = \"deny\"\n[[rules]]\nregistry = \"registry.example\"\nrepository = \"team/*\"\n",
        )]);
        policy.admit(&r("registry.example/team/app:1")).unwrap();
        let refused = policy.admit(&r("registry.example/other/app")).unwrap_err();
        assert_eq!(refused.rule, "agent.toml policy.default");
        assert!(policy.admit(&r("nginx")).is_err());
    }

    #[test]
    fn user_data_adds_to_the_policy_but_cannot_loosen_it() {
        let image = layer(
            "agent.toml",
            "default = \"deny\"\n[[rules]]\nregistry = \"registry.example\"\n",
        );
        // user-data allows everything, and denies one repository.
        let user = layer(
            "user-data",
            "[[rules]]\nregistry = \"*\"\n[[rules]]\nregistry = \"registry.example\"\nrepository = \"team/old\"\naction = \"deny\"\n",
        );
        let policy = Policy::new(vec![image]).with(user);
        assert!(
            policy.admit(&r("nginx")).is_err(),
            "the image's default deny stands"
        );
        policy.admit(&r("registry.example/team/new")).unwrap();
        let refused = policy.admit(&r("registry.example/team/old")).unwrap_err();
        assert!(refused.rule.starts_with("user-data"), "{refused}");
    }

    #[test]
    fn digests_only() {
        let policy = Policy::new(vec![layer(
            "agent.toml",
            "[[rules]]\nregistry = \"*\"\nrequire_digest = true\n",
        )]);
        let refused = policy.admit(&r("nginx:1")).unwrap_err();
        assert!(refused.reason.contains("nginx@sha256:"), "{refused}");
        policy.admit(&r(&format!("nginx@{D}"))).unwrap();
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, says) in [
            ("[[rules]]\nrepository = \"x\"\n", "`registry` is required"),
            (
                "[[rules]]\nregistry = \"r\"\nrepository = \"a*b\"\n",
                "prefix ending in `*`",
            ),
            (
                "[[rules]]\nregistry = \"r\"\nrepository = \"**\"\n",
                "prefix ending in `*`",
            ),
            (
                "[[rules]]\nregistry = \"r\"\naction = \"deny\"\nrequire_digest = true\n",
                "deny rule",
            ),
            (
                "[[rules]]\nregistry = \"r\"\nrequire_signature = [\"/nonexistent.pub\"]\n",
                "require_signature",
            ),
            (
                "[[rules]]\nregistry = \"r\"\nrequire_fresh = { repository = \"ftp://x\", root = \"/r\" }\n",
                "require_fresh.repository",
            ),
            (
                "[[rules]]\nregistry = \"r\"\nrequire_fresh = { repository = \"https://x/\", root = \"/nonexistent\" }\n",
                "no such file",
            ),
        ] {
            let config: PolicyConfig = toml::from_str(text).unwrap();
            let err = config
                .load("agent.toml", Path::new("/tmp"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("policy.rules[0]"),
                "{text}: {err}"
            );
        }
        assert!(
            toml::from_str::<PolicyConfig>("[[rules]]\nregistry = \"r\"\naction = \"maybe\"\n")
                .is_err()
        );
        assert!(
            toml::from_str::<PolicyConfig>(
                "[[rules]]\nregistry = \"r\"\nrequire_signatures = []\n"
            )
            .is_err()
        );
    }
}
