//! Platforms (`linux/amd64`, `linux/arm64/v8`) and choosing one image of
//! an index, as `docker pull --platform` does.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    /// The machine's: Husk runs on x86-64 only.
    fn default() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok =
            |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self {
                os: os.to_ascii_lowercase(),
                architecture: normalise_arch(arch),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Self {
                os: os.to_ascii_lowercase(),
                architecture: normalise_arch(arch),
                variant: Some(variant.to_ascii_lowercase()),
            }),
            _ => Err(format!(
                "platform `{text}`: expected os/architecture[/variant], as linux/amd64"
            )),
        }
    }
}

/// containerd's platform normalisation of the common aliases.
fn normalise_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

impl Platform {
    /// Whether an index entry's platform is this one. A wanted variant
    /// must match (arm64's default variant is v8); none wanted matches any.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != normalise_arch(architecture) {
            return false;
        }
        match (&self.variant, variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(p, Platform::default());
        assert!(p.matches("linux", "amd64", None));
        assert!(p.matches("linux", "x86_64", None));
        assert!(!p.matches("linux", "arm64", Some("v8")));
        assert!(!p.matches("windows", "amd64", None));
        let arm: Platform = "linux/aarch64/v8".parse().unwrap();
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "arm64", Some("v7")));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert!("linux/../x".parse::<Platform>().is_err());
    }
}
