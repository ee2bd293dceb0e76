//! The release manifest: a TUF target (`manifest.json`) listing every
//! release of the repository. The agent trusts it only through TUF (its
//! hash is in the signed targets metadata), and trusts each UKI through
//! its own target entry; the digest and size here must agree with it.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::version::{check_version, compare_versions};

/// The manifest's target name.
pub const MANIFEST_TARGET: &str = "manifest.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub releases: Vec<Release>,
}

/// One release: a UKI for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    pub channel: String,
    /// The oldest running version this release may be applied over
    /// (migrations it does not carry); `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// The UKI's target name.
    pub target: String,
    /// Lower-case hex SHA-256 of the UKI.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest.json is not a valid manifest: {0}")]
    Parse(String),
    #[error("manifest.json, release {index}: {message}")]
    Release { index: usize, message: String },
}

/// Lower-case hex, as manifests and TUF metadata write digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the manifest offers a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<'a> {
    /// The newest release of the channel is the running version (or older).
    UpToDate,
    /// A newer release that may be applied.
    Update(&'a Release),
    /// The newest release cannot be applied over the running version.
    TooOld {
        release: &'a Release,
        min_version: &'a str,
    },
}

impl Manifest {
    /// Parses and checks every release.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        for (index, release) in manifest.releases.iter().enumerate() {
            release
                .check()
                .map_err(|message| ManifestError::Release { index, message })?;
        }
        Ok(manifest)
    }

    /// The releases of `channel`, newest first.
    pub fn channel(&self, channel: &str) -> Vec<&Release> {
        let mut releases: Vec<&Release> = self
            .releases
            .iter()
            .filter(|r| r.channel == channel)
            .collect();
        releases.sort_by(|a, b| compare_versions(&b.version, &a.version));
        releases
    }

    /// The release of `channel` with this exact version.
    pub fn find(&self, channel: &str, version: &str) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.channel == channel && r.version == version)
    }

    /// What a machine running `running` on `channel` should do.
    pub fn offer(&self, channel: &str, running: &str) -> Offer<'_> {
        let Some(newest) = self.channel(channel).into_iter().next() else {
            return Offer::UpToDate;
        };
        if compare_versions(&newest.version, running) != Ordering::Greater {
            return Offer::UpToDate;
        }
        match &newest.min_version {
            Some(min) if compare_versions(running, min) == Ordering::Less => Offer::TooOld {
                release: newest,
                min_version: min,
            },
            _ => Offer::Update(newest),
        }
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl Release {
    fn check(&self) -> Result<(), String> {
        check_version(&self.version)?;
        if let Some(min) = &self.min_version {
            check_version(min).map_err(|e| format!("min_version: {e}"))?;
        }
        if self.channel.is_empty() || self.channel.contains(['/', ' ']) {
            return Err(format!("channel {:?} is not a name", self.channel));
        }
        if self.target.is_empty() || self.target.contains(['/', '\\']) || self.target == ".." {
            return Err(format!("target {:?} is not a file name", self.target));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("sha256 {:?} is not a hex SHA-256", self.sha256));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, channel: &str, min: Option<&str>) -> Release {
        Release {
            version: version.into(),
            channel: channel.into(),
            min_version: min.map(Into::into),
            target: format!("husk-{version}.efi"),
            sha256: "a".repeat(64),
            size: 1,
        }
    }

    #[test]
    fn offers_the_newest_of_the_channel() {
        let manifest = Manifest {
            releases: vec![
                release("1.10", "stable", None),
                release("1.9", "stable", None),
                release("2.0", "beta", None),
            ],
        };
        let parsed = Manifest::parse(manifest.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, manifest);
        assert_eq!(
            manifest.offer("stable", "1.9"),
            Offer::Update(&manifest.releases[0])
        );
        assert_eq!(manifest.offer("stable", "1.10"), Offer::UpToDate);
        assert_eq!(manifest.offer("stable", "3.0"), Offer::UpToDate);
        assert_eq!(manifest.offer("nightly", "1.0"), Offer::UpToDate);
        assert!(manifest.find("beta", "2.0").is_some());
    }

    #[test]
    fn min_version_is_enforced() {
        let manifest = Manifest {
            releases: vec![release("3.0", "stable", Some("2.0"))],
        };
        assert!(matches!(
            manifest.offer("stable", "1.5"),
            Offer::TooOld {
                min_version: "2.0",
                ..
            }
        ));
        assert!(matches!(manifest.offer("stable", "2.0"), Offer::Update(_)));
    }

    #[test]
    fn bad_releases_are_named() {
        let mut bad = release("1.0", "stable", None);
        bad.target = "../../etc/passwd".into();
        let text = Manifest {
            releases: vec![release("0.9", "stable", None), bad],
        }
        .to_json();
        let err = Manifest::parse(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("release 1: target"), "{err}");
        assert!(matches!(
            Manifest::parse(b"{\"releases\": 3}"),
            Err(ManifestError::Parse(_))
        ));
    }
}
