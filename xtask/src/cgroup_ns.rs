//! The container benchmarks run as root in a private mount namespace
//! with cgroup2 on /sys/fs/cgroup (this host's cgroups are v1 hybrid):
//! the xtask binary re-executes itself there, marked by an environment
//! variable.

use std::process::Command;

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

const IN_NAMESPACE: &str = "HUSK_BENCH_IN_CGROUP2_NS";

/// True when the caller should measure now (inside the namespace);
/// false when it ran in the child. Not root: an error, never a silent
/// skip.
pub fn enter(what: &str, args: &[&str]) -> Result<bool> {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return Ok(true);
    }
    if !rustix::process::geteuid().is_root() {
        bail!("bench {what} needs root (namespaces, mounts, cgroups): run it with sudo");
    }
    // Build first, outside the namespace, so cargo's output is not mixed
    // with the figures.
    Artifacts::get()?;
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe()?)
        .args(args)
        .env(IN_NAMESPACE, "1")
        .status()
        .context("running unshare (util-linux)")?;
    if !status.success() {
        bail!("the {what} benchmark failed ({status})");
    }
    Ok(false)
}
