//! Capabilities: the bounding set is cut first (it needs CAP_SETPCAP, which
//! setuid may take away), the other sets are applied after the uid change
//! in one `capset`, ambient last (it must be a subset of permitted and
//! inheritable).

use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::error::{Result, RuntimeError, Step};

pub(crate) const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capability's number, from its spec name (`CAP_SYS_ADMIN`).
pub fn number(name: &str) -> Option<u32> {
    let name = name.strip_prefix("CAP_").unwrap_or(name);
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// A spec set as a bit mask.
fn mask(set: &Option<Capabilities>) -> Result<u64> {
    let mut bits = 0u64;
    for cap in set.iter().flatten() {
        // The spec's names are its serde names ("CAP_CHOWN").
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let n = number(&name)
            .ok_or_else(|| RuntimeError::Config(format!("unknown capability {name}")))?;
        bits |= 1 << n;
    }
    Ok(bits)
}

/// The five sets of process.capabilities as masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapMasks {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self> {
        let Some(c) = caps else {
            return Ok(Self::default());
        };
        Ok(Self {
            bounding: mask(c.bounding())?,
            effective: mask(c.effective())?,
            permitted: mask(c.permitted())?,
            inheritable: mask(c.inheritable())?,
            ambient: mask(c.ambient())?,
        })
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn one(n: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << n)
}

/// Drops from the bounding set every capability the spec does not keep.
pub fn drop_bounding(masks: &CapMasks) -> Result<()> {
    for n in 0..=last_cap().min(63) {
        if masks.bounding & (1 << n) == 0 {
            rustix::thread::remove_capability_from_bounding_set(one(n))
                .step(|| format!("dropping capability {n} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable at once, then ambient.
pub fn apply(masks: &CapMasks) -> Result<()> {
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::from_bits_retain(masks.effective),
            permitted: CapabilitySet::from_bits_retain(masks.permitted),
            inheritable: CapabilitySet::from_bits_retain(masks.inheritable),
        },
    )
    .step(|| "setting capabilities (capset)")?;
    for n in 0..=last_cap().min(63) {
        if masks.ambient & (1 << n) != 0 {
            // Like runc: a cap missing from permitted or inheritable cannot
            // be ambient; warn and go on.
            if let Err(e) = rustix::thread::configure_capability_in_ambient_set(one(n), true) {
                log::debug!("cannot raise ambient capability {}: {e}", NAMES[n as usize]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_capability_has_a_number() {
        for name in NAMES {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(format!("CAP_{name}"))).unwrap();
            let set: Option<Capabilities> = Some([cap].into_iter().collect());
            assert_eq!(mask(&set).unwrap().count_ones(), 1, "{name}");
        }
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
    }
}
