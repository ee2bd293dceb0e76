//! `linux.sysctl`: only keys that belong to a namespace the container
//! does not share with the host, as runc allows. The init writes them
//! with the host's root privileges before dropping them, so a
//! `kernel.core_pattern` or a `net.*` key in the host's network
//! namespace would change the host itself.

use std::path::PathBuf;

use super::error::{Result, RuntimeError};
use super::namespaces::Plan;

/// IPC-namespaced keys besides `fs.mqueue.*`.
const IPC_KEYS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The file under /proc/sys for `key`: `a.b.c` is `a/b/c`; a key
/// written with slashes keeps its dots (`net/ipv4/conf/eth0.100/…`,
/// sysctl(8)'s rule). Refused: empty parts, `..`, anything but
/// letters, digits, `_`, `-` and the separators.
pub fn proc_path(key: &str) -> Result<PathBuf> {
    let bad = |why: &str| RuntimeError::Config(format!("sysctl {key:?}: {why}"));
    let parts: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else {
        key.split('.').collect()
    };
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(bad("empty or relative path component"));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad("not a sysctl name"));
        }
    }
    Ok(parts.iter().collect())
}

/// Checks every key against the namespaces the container has.
pub fn validate(sysctls: &std::collections::HashMap<String, String>, plan: &Plan) -> Result<()> {
    for key in sysctls.keys() {
        proc_path(key)?;
        let dotted = key.replace('/', ".");
        let (kind, needs) =
            if IPC_KEYS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
                ("ipc", libc::CLONE_NEWIPC)
            } else if dotted.starts_with("net.") {
                ("network", libc::CLONE_NEWNET)
            } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
                ("uts", libc::CLONE_NEWUTS)
            } else {
                return Err(RuntimeError::Config(format!(
                    "sysctl {key:?} is not namespaced: it would change the host"
                )));
            };
        if !plan.separates(needs as u64)? {
            return Err(RuntimeError::Config(format!(
                "sysctl {key:?} needs the container's own {kind} namespace; it shares the host's"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan(flags: i32) -> Plan {
        Plan {
            clone_flags: flags as u64,
            ..Plan::default()
        }
    }

    fn one(key: &str) -> HashMap<String, String> {
        HashMap::from([(key.to_string(), "1".to_string())])
    }

    #[test]
    fn keys_need_their_namespace() {
        let all = plan(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS);
        for key in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            validate(&one(key), &all).unwrap();
            assert!(
                validate(&one(key), &plan(0)).is_err(),
                "{key} without its namespace"
            );
        }
        let e = validate(&one("kernel.core_pattern"), &all).unwrap_err();
        assert!(e.to_string().contains("not namespaced"), "{e}");
    }

    #[test]
    fn paths_stay_under_proc_sys() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in [
            "net/../../sysrq-trigger",
            "/net/x",
            "net..x",
            "net.ipv4.a b",
        ] {
            assert!(proc_path(bad).is_err(), "{bad}");
        }
    }
}
