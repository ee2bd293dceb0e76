//! Docker's restart policies, written as Docker's `--restart` strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// When the container manager restarts a container that exited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never (`no`).
    #[default]
    No,
    /// After a non-zero exit, at most `max_retries` times when given
    /// (`on-failure[:N]`).
    OnFailure { max_retries: Option<u32> },
    /// Whatever the exit status, also after the agent restarts (`always`).
    Always,
    /// As `always`, except after the user stopped it (`unless-stopped`).
    UnlessStopped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid restart policy `{0}`: expected no, on-failure, on-failure:N (N ≥ 1), always or unless-stopped"
)]
pub struct ParseRestartPolicyError(pub String);

impl FromStr for RestartPolicy {
    type Err = ParseRestartPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseRestartPolicyError(s.to_owned());
        match s.split_once(':') {
            None => match s {
                "no" => Ok(Self::No),
                "on-failure" => Ok(Self::OnFailure { max_retries: None }),
                "always" => Ok(Self::Always),
                "unless-stopped" => Ok(Self::UnlessStopped),
                _ => Err(bad()),
            },
            // Docker accepts a count with on-failure only; 0 would mean
            // "restart never", which `no` says better.
            // (digits only: Rust's parse would also take "+3")
            Some(("on-failure", n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                match n.parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Self::OnFailure {
                        max_retries: Some(n),
                    }),
                    _ => Err(bad()),
                }
            }
            Some(_) => Err(bad()),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::OnFailure { max_retries: None } => f.write_str("on-failure"),
            Self::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl Serialize for RestartPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_strings_round_trip() {
        for (text, policy) in [
            ("no", RestartPolicy::No),
            ("on-failure", RestartPolicy::OnFailure { max_retries: None }),
            (
                "on-failure:5",
                RestartPolicy::OnFailure {
                    max_retries: Some(5),
                },
            ),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
        ] {
            assert_eq!(text.parse::<RestartPolicy>().unwrap(), policy);
            assert_eq!(policy.to_string(), text);
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<RestartPolicy>(&json).unwrap(),
                policy
            );
        }
        for bad in [
            "",
            "yes",
            "always:3",
            "on-failure:",
            "on-failure:0",
            "on-failure:-1",
            "on-failure:x",
            "on-failure:+3",
            "Always",
        ] {
            let err = bad.parse::<RestartPolicy>().unwrap_err();
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        assert!(serde_json::from_str::<RestartPolicy>("\"sometimes\"").is_err());
    }
}
