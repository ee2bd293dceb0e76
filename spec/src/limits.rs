//! The operator's bounds on what a container may take: agent.toml
//! `[limits.containers]`. A default applies to a container that asks for
//! nothing; a maximum refuses a container that asks for more (and bounds
//! one that asks for nothing, which would otherwise be unlimited).
//!
//! Unlike Docker, the pids default is not unlimited: one container's fork
//! bomb would otherwise exhaust the machine's pids for every tenant and
//! for Husk's own agent. 2048 is Podman's default (containers.conf
//! `pids_limit`).

use serde::{Deserialize, Serialize};

use super::{RunOptions, SpecError};

/// Podman's default `pids_limit`.
pub const DEFAULT_PIDS: i64 = 2048;

/// `default_pids = -1`: no default (Docker's `--pids-limit -1`).
const UNLIMITED: i64 = -1;

/// ```toml
/// [limits.containers]
/// default_pids = 2048      # -1: unlimited (Docker's default)
/// max_pids = 32768
/// default_memory = 1073741824
/// max_memory = 8589934592
/// default_cpus = 1.0
/// max_cpus = 4.0
/// default_storage = 10737418240   # a writable layer's size
/// max_storage = 107374182400
/// storage_reserve = 1073741824    # kept free on the data partition
///                                 # (default: 10% of it, at most 1 GiB)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    /// `pids.max` of a container that asks none; -1: unlimited (TOML has
    /// no null to say "none").
    pub default_pids: Option<i64>,
    pub max_pids: Option<i64>,
    /// `memory.max` in bytes of a container that asks none.
    pub default_memory: Option<u64>,
    pub max_memory: Option<u64>,
    /// CPUs (`--cpus`) of a container that asks none.
    pub default_cpus: Option<f64>,
    pub max_cpus: Option<f64>,
    /// `storage_size` in bytes of a container that asks none (none: it
    /// shares what the data partition has left beyond the reserve).
    pub default_storage: Option<u64>,
    pub max_storage: Option<u64>,
    /// What containers' writable layers, all together, leave free on the
    /// data partition for the images, the logs and an update; none: 10%
    /// of the partition, at most 1 GiB.
    pub storage_reserve: Option<u64>,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            default_pids: Some(DEFAULT_PIDS),
            max_pids: None,
            default_memory: None,
            max_memory: None,
            default_cpus: None,
            max_cpus: None,
            default_storage: None,
            max_storage: None,
            storage_reserve: None,
        }
    }
}

/// One resource's default and maximum applied to a request.
fn bound<T: PartialOrd + Copy + std::fmt::Display>(
    asked: Option<T>,
    default: Option<T>,
    max: Option<T>,
    option: &'static str,
    key: &str,
) -> Result<Option<T>, SpecError> {
    let value = asked.or(default).or(max);
    match (value, max) {
        (Some(v), Some(m)) if v > m => Err(SpecError::Forbidden(format!(
            "{option} {v} is above the agent's limit of {m} (limits.containers.{key})"
        ))),
        _ => Ok(value),
    }
}

impl ResourceLimits {
    /// A default above its maximum is a mistake in the file.
    pub fn validate(&self) -> Result<(), String> {
        fn check<T: PartialOrd + std::fmt::Display>(
            default: Option<T>,
            max: Option<T>,
            what: &str,
        ) -> Result<(), String> {
            match (default, max) {
                (Some(d), Some(m)) if d > m => Err(format!(
                    "limits.containers: default_{what} {d} is above max_{what} {m}"
                )),
                _ => Ok(()),
            }
        }
        check(self.default_pids, self.max_pids, "pids")?;
        check(self.default_memory, self.max_memory, "memory")?;
        check(self.default_cpus, self.max_cpus, "cpus")?;
        check(self.default_storage, self.max_storage, "storage")?;
        if self.default_pids.is_some_and(|p| p < 1 && p != UNLIMITED)
            || self.max_pids.is_some_and(|p| p < 1)
        {
            return Err(
                "limits.containers: pids limits must be at least 1 (default_pids: or -1, unlimited)"
                    .into(),
            );
        }
        Ok(())
    }

    /// `opts` with the defaults filled in, or the maximum it exceeds.
    pub fn apply(&self, mut opts: RunOptions) -> Result<RunOptions, SpecError> {
        opts.pids_limit = bound(
            opts.pids_limit,
            self.default_pids.filter(|p| *p != UNLIMITED),
            self.max_pids,
            "pids_limit",
            "max_pids",
        )?;
        opts.memory = bound(
            opts.memory,
            self.default_memory,
            self.max_memory,
            "memory",
            "max_memory",
        )?;
        opts.cpus = bound(
            opts.cpus,
            self.default_cpus,
            self.max_cpus,
            "cpus",
            "max_cpus",
        )?;
        opts.storage_size = bound(
            opts.storage_size,
            self.default_storage,
            self.max_storage,
            "storage_size",
            "max_storage",
        )?;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RunOptions {
        serde_json::from_value(serde_json::json!({"image": "busybox"})).unwrap()
    }

    #[test]
    fn the_default_pids_limit_is_not_unlimited() {
        let applied = ResourceLimits::default().apply(opts()).unwrap();
        assert_eq!(applied.pids_limit, Some(DEFAULT_PIDS));
        assert_eq!((applied.memory, applied.cpus), (None, None));
        let mut asked = opts();
        asked.pids_limit = Some(100_000);
        assert_eq!(
            ResourceLimits::default().apply(asked).unwrap().pids_limit,
            Some(100_000)
        );
    }

    #[test]
    fn maxima_refuse_and_bound() {
        let limits = ResourceLimits {
            default_pids: Some(100),
            max_pids: Some(1000),
            default_memory: None,
            max_memory: Some(1 << 30),
            default_cpus: Some(0.5),
            max_cpus: Some(2.0),
            ..Default::default()
        };
        limits.validate().unwrap();
        let applied = limits.apply(opts()).unwrap();
        // No memory asked, no default: the maximum, not unlimited.
        assert_eq!(applied.memory, Some(1 << 30));
        assert_eq!((applied.pids_limit, applied.cpus), (Some(100), Some(0.5)));
        let mut asked = opts();
        asked.memory = Some(2 << 30);
        let e = limits.apply(asked).unwrap_err().to_string();
        assert!(e.contains("memory 2147483648 is above"), "{e}");
        assert!(e.contains("limits.containers.max_memory"), "{e}");
        let mut asked = opts();
        asked.cpus = Some(3.0);
        assert!(limits.apply(asked).is_err());
        let mut asked = opts();
        asked.pids_limit = Some(1000);
        assert_eq!(limits.apply(asked).unwrap().pids_limit, Some(1000));
    }

    #[test]
    fn a_default_above_its_maximum_is_refused() {
        let limits = ResourceLimits {
            default_memory: Some(2 << 30),
            max_memory: Some(1 << 30),
            ..Default::default()
        };
        let e = limits.validate().unwrap_err();
        assert!(e.contains("default_memory"), "{e}");
        let limits = ResourceLimits {
            default_pids: Some(0),
            ..Default::default()
        };
        assert!(limits.validate().is_err());
        let unlimited = ResourceLimits {
            default_pids: Some(-1),
            ..Default::default()
        };
        unlimited.validate().unwrap();
        assert_eq!(unlimited.apply(opts()).unwrap().pids_limit, None);
    }
}
