//! The `[update]` section of agent.toml, which user-data may override
//! (repository, channel, window).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The root metadata pinned in the image.
pub const DEFAULT_ROOT: &str = "/etc/husk/update/root.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateSettings {
    /// The repository's base URL (`https://…`, `http://…` or `file://…`): metadata
    /// under `metadata/`, targets under `targets/`. None: no updates.
    pub repository: Option<String>,
    /// The trusted root.json, shipped in the image.
    pub root: PathBuf,
    pub channel: String,
    /// Apply new releases by themselves, within this daily window
    /// (`HH:MM-HH:MM`, UTC). None: only `huskctl update apply`.
    pub apply_window: Option<String>,
    /// How often to check the repository (0: only on request).
    pub check_interval_secs: u64,
    /// How long a new version may take to prove itself after boot
    /// before it is judged bad and the machine reboots (spending a try).
    pub assessment_timeout_secs: u64,
    /// What must pass before a new version is blessed, besides the agent
    /// being up and the containers with a restart policy running.
    pub health_checks: Vec<HealthCheck>,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        Self {
            repository: None,
            root: DEFAULT_ROOT.into(),
            channel: "stable".into(),
            apply_window: None,
            check_interval_secs: 6 * 3600,
            assessment_timeout_secs: 300,
            health_checks: Vec::new(),
        }
    }
}

/// One health check: an HTTP GET that must answer 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub name: String,
    /// `http(s)://host:port/path`.
    pub http: String,
}

impl UpdateSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(repository) = &self.repository {
            let url = url::Url::parse(repository)
                .map_err(|e| format!("update.repository {repository:?}: {e}"))?;
            if !matches!(url.scheme(), "https" | "http" | "file") {
                return Err(format!(
                    "update.repository {repository:?}: use https://, http:// or file://"
                ));
            }
        }
        if self.channel.is_empty() || self.channel.contains(['/', ' ']) {
            return Err(format!("update.channel {:?} is not a name", self.channel));
        }
        if let Some(window) = &self.apply_window {
            parse_window(window).map_err(|e| format!("update.apply_window: {e}"))?;
        }
        for check in &self.health_checks {
            let url = url::Url::parse(&check.http)
                .map_err(|e| format!("update.health_checks {:?}: {e}", check.name))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "update.health_checks {:?}: only http:// and https:// checks are supported",
                    check.name
                ));
            }
        }
        Ok(())
    }
}

/// `HH:MM-HH:MM` as minutes of the day (UTC); the window may wrap
/// midnight.
pub fn parse_window(text: &str) -> Result<(u32, u32), String> {
    let minutes = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        // `then`, not `then_some`: the sum only once the hour is one
        // (an hour of 462438208 overflowed it, found by fuzzing).
        (h < 24 && m < 60).then(|| h * 60 + m)
    };
    let (start, end) = text
        .split_once('-')
        .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
        .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
    if start == end {
        return Err(format!("{text:?} is empty"));
    }
    Ok((start, end))
}

/// Whether `minute` (of the day, UTC) is inside the window.
pub fn in_window((start, end): (u32, u32), minute: u32) -> bool {
    if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let night = parse_window("22:30-04:00").unwrap();
        assert!(in_window(night, 23 * 60));
        assert!(in_window(night, 60));
        assert!(!in_window(night, 12 * 60));
        let day = parse_window("02:00-04:00").unwrap();
        assert!(in_window(day, 3 * 60));
        assert!(!in_window(day, 4 * 60));
        for bad in [
            "2-4",
            "25:00-01:00",
            "02:00-02:00",
            "02:00",
            "462438208:0-01:00",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_validated() {
        let mut settings = UpdateSettings {
            repository: Some("ftp://x/".into()),
            ..Default::default()
        };
        assert!(
            settings
                .validate()
                .unwrap_err()
                .contains("update.repository")
        );
        settings.repository = Some("http://10.0.2.2:8080/repo/".into());
        settings.validate().unwrap();
        settings.repository = Some("https://updates.example/husk/".into());
        settings.validate().unwrap();
        settings.health_checks.push(HealthCheck {
            name: "tls".into(),
            http: "https://x/".into(),
        });
        settings.validate().unwrap();
        settings.health_checks.push(HealthCheck {
            name: "web".into(),
            http: "gopher://x/".into(),
        });
        assert!(settings.validate().unwrap_err().contains("\"web\""));
    }
}
