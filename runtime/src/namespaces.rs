//! Which namespaces the container gets: new ones made by the clone itself
//! (so a new user namespace owns the others), cgroup unshared by the init
//! once it is in its cgroup (the namespace's root is the cgroup it is made
//! in), and existing ones joined by path.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};
use rustix::process::Pid;
use rustix::thread::UnshareFlags;

use super::error::{Result, RuntimeError, Step};
use super::sys;

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// CLONE_NEW* flags for clone3.
    pub clone_flags: u64,
    /// New namespaces the init unshares itself (after joining a user
    /// namespace by path, and the cgroup namespace).
    pub unshare_flags: u64,
    /// Namespaces joined by path in the init, user first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// A PID namespace joined by path: the parent enters it for its children.
    pub join_pid: Option<PathBuf>,
    /// A network namespace joined by path by a container with a new user
    /// namespace: the parent joins it before the clone, while it still
    /// has CAP_SYS_ADMIN over the namespace's owner (the init, already in
    /// its new user namespace, has none there), and the init inherits it
    /// — runc's nsexec joins path namespaces before it unshares the user
    /// namespace for the same reason. How a bridged container of Husk's
    /// agent gets its network in a user namespace.
    pub join_net_before_clone: Option<PathBuf>,
    pub new_user: bool,
    pub new_net: bool,
    pub new_uts: bool,
    pub new_cgroup: bool,
    /// A new time namespace (unshared by the init, entered by its execve)
    /// and the `timens_offsets` lines to write before that.
    pub time_offsets: Option<String>,
}

fn flag(t: LinuxNamespaceType) -> Result<u64> {
    use LinuxNamespaceType as T;
    Ok(match t {
        T::Mount => libc::CLONE_NEWNS,
        T::Cgroup => libc::CLONE_NEWCGROUP,
        T::Uts => libc::CLONE_NEWUTS,
        T::Ipc => libc::CLONE_NEWIPC,
        T::User => libc::CLONE_NEWUSER,
        T::Pid => libc::CLONE_NEWPID,
        T::Network => libc::CLONE_NEWNET,
        T::Time => libc::CLONE_NEWTIME,
    } as u64)
}

fn flag_of(t: LinuxNamespaceType) -> Option<u64> {
    flag(t).ok()
}

/// The name of a `CLONE_NEW*` kind under /proc/PID/ns.
fn proc_name(flag: u64) -> &'static str {
    match flag as i32 {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWNET => "net",
        other => kind_name(other as u64),
    }
}

/// The spec's name of a `CLONE_NEW*` kind, for messages.
fn kind_name(flag: u64) -> &'static str {
    match flag as i32 {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

impl Plan {
    /// True when the container will not share the host's namespace of
    /// kind `flag` (`CLONE_NEW*`): a new one, or a joined one that is
    /// not this process's own.
    pub fn separates(&self, flag: u64) -> Result<bool> {
        if (self.clone_flags | self.unshare_flags) & flag != 0 {
            return Ok(true);
        }
        let joined = self.join.iter().find(|(t, _)| flag_of(*t) == Some(flag));
        let Some((_, path)) = joined else {
            return Ok(false);
        };
        use std::os::unix::fs::MetadataExt;
        let ours = format!("/proc/self/ns/{}", proc_name(flag));
        let (theirs, ours) = (
            std::fs::metadata(path).step(|| format!("reading {}", path.display()))?,
            std::fs::metadata(&ours).step(|| format!("reading {ours}"))?,
        );
        Ok((theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()))
    }

    pub fn from_spec(linux: Option<&Linux>) -> Result<Self> {
        let mut plan = Plan::default();
        let namespaces = linux
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let user_joined = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
        let mut has_mount = false;
        for ns in &namespaces {
            let t = ns.typ();
            let f = flag(t)?;
            has_mount |= t == LinuxNamespaceType::Mount;
            match ns.path() {
                Some(path) if t == LinuxNamespaceType::Pid => plan.join_pid = Some(path.clone()),
                Some(path) => plan.join.push((t, path.clone())),
                None => {
                    match t {
                        LinuxNamespaceType::User => plan.new_user = true,
                        LinuxNamespaceType::Network => plan.new_net = true,
                        LinuxNamespaceType::Uts => plan.new_uts = true,
                        LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                        LinuxNamespaceType::Time => {
                            plan.time_offsets = Some(time_offsets(linux)?);
                        }
                        _ => {}
                    }
                    // The PID namespace can only be made by the clone; the
                    // others are unshared after a joined user namespace so
                    // that it owns them.
                    // A time namespace must be unshared: offsets can only be
                    // written while no process is in it yet (the init
                    // enters it with its execve).
                    if t == LinuxNamespaceType::Cgroup
                        || t == LinuxNamespaceType::Time
                        || (user_joined && t != LinuxNamespaceType::Pid)
                    {
                        plan.unshare_flags |= f;
                    } else {
                        plan.clone_flags |= f;
                    }
                }
            }
        }
        let offsets = linux.and_then(|l| l.time_offsets().as_ref());
        if offsets.is_some_and(|o| !o.is_empty()) && plan.time_offsets.is_none() {
            return Err(RuntimeError::Config(
                "linux.timeOffsets need a new time namespace in linux.namespaces".into(),
            ));
        }
        if !has_mount {
            return Err(RuntimeError::Unsupported(
                "a container without a mount namespace (its mounts would be the host's)".into(),
            ));
        }
        if plan.new_user
            && let Some(i) = plan
                .join
                .iter()
                .position(|(t, _)| *t == LinuxNamespaceType::Network)
        {
            plan.join_net_before_clone = Some(plan.join.remove(i).1);
        }
        plan.join
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        Ok(plan)
    }

    /// Every namespace to join by path is one, of the kind the spec says,
    /// checked before anything is made: joining a mount namespace in place
    /// of a network one would set the container up in that namespace (the
    /// host's, for `/proc/1/ns/mnt`).
    pub fn check_paths(&self) -> Result<()> {
        let pid = self.join_pid.iter().map(|p| (LinuxNamespaceType::Pid, p));
        let net = self
            .join_net_before_clone
            .iter()
            .map(|p| (LinuxNamespaceType::Network, p));
        for (t, path) in self.join.iter().map(|(t, p)| (*t, p)).chain(pid).chain(net) {
            let want = flag(t)?;
            let got = sys::namespace_kind(path).map_err(|e| {
                RuntimeError::Config(format!(
                    "linux.namespaces: the {} namespace path {} is no namespace: {e}",
                    kind_name(want),
                    path.display()
                ))
            })?;
            if got != want {
                return Err(RuntimeError::Config(format!(
                    "linux.namespaces: {} is a {} namespace, not a {} one",
                    path.display(),
                    kind_name(got),
                    kind_name(want)
                )));
            }
        }
        Ok(())
    }

    /// In the init: join namespaces by path, then unshare the rest.
    pub fn enter(&self) -> Result<()> {
        for (t, path) in &self.join {
            sys::setns(path, flag(*t)?)
                .step(|| format!("joining the {t} namespace {}", path.display()))?;
        }
        if self.unshare_flags != 0 {
            sys::unshare(UnshareFlags::from_bits_retain(self.unshare_flags as u32))
                .step(|| "unsharing namespaces")?;
        }
        if let Some(offsets) = self.time_offsets.as_deref().filter(|o| !o.is_empty()) {
            std::fs::write("/proc/self/timens_offsets", offsets)
                .step(|| format!("writing the time offsets {offsets:?}"))?;
        }
        Ok(())
    }
}

/// linux.timeOffsets as `timens_offsets` lines (`monotonic SECS NSECS`);
/// only the two clocks a time namespace offsets.
fn time_offsets(linux: Option<&Linux>) -> Result<String> {
    let mut lines = String::new();
    let offsets = linux.and_then(|l| l.time_offsets().as_ref());
    let mut sorted: Vec<_> = offsets.iter().flat_map(|o| o.iter()).collect();
    sorted.sort_by_key(|(clock, _)| clock.as_str());
    for (clock, offset) in sorted {
        if clock != "monotonic" && clock != "boottime" {
            return Err(RuntimeError::Config(format!(
                "linux.timeOffsets: {clock:?} is not a clock a time namespace offsets (monotonic, boottime)"
            )));
        }
        let nanos = offset.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(RuntimeError::Config(format!(
                "linux.timeOffsets.{clock}.nanosecs {nanos} is not below one second"
            )));
        }
        lines.push_str(&format!("{clock} {} {nanos}\n", offset.secs().unwrap_or(0)));
    }
    Ok(lines)
}

/// Writes uid_map and gid_map of the init from the parent (root in the
/// parent namespace, so setgroups can stay allowed and additionalGids work).
pub fn write_id_maps(pid: Pid, linux: &Linux) -> Result<()> {
    let pid = pid.as_raw_nonzero();
    let format = |maps: &Option<Vec<LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let text = format(maps);
        if text.is_empty() {
            return Err(RuntimeError::Config(format!(
                "a new user namespace needs linux.{}",
                if file == "uid_map" {
                    "uidMappings"
                } else {
                    "gidMappings"
                }
            )));
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).step(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// The parent enters a PID namespace for its next child (setns on a pid
/// namespace only changes pid_for_children).
pub fn join_pid_for_children(path: &Path) -> Result<()> {
    sys::setns(path, libc::CLONE_NEWPID as u64)
        .step(|| format!("joining the pid namespace {}", path.display()))
}

/// The parent enters a network namespace its next child inherits (see
/// [`Plan::join_net_before_clone`]).
pub fn join_net_for_children(path: &Path) -> Result<()> {
    sys::setns(path, libc::CLONE_NEWNET as u64)
        .step(|| format!("joining the network namespace {}", path.display()))
}

/// True if the id mapping maps container id 0.
pub fn maps_root(maps: &Option<Vec<LinuxIdMapping>>) -> bool {
    maps.iter()
        .flatten()
        .any(|m| m.container_id() == 0 && m.size() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_time_namespace_is_unshared_with_its_offsets() {
        let l = linux(
            r#"{"namespaces":[{"type":"mount"},{"type":"time"}],
                "timeOffsets":{"monotonic":{"secs":10},"boottime":{"secs":20,"nanosecs":5}}}"#,
        );
        let plan = Plan::from_spec(Some(&l)).unwrap();
        assert_eq!(
            plan.unshare_flags & libc::CLONE_NEWTIME as u64,
            libc::CLONE_NEWTIME as u64
        );
        assert_eq!(plan.clone_flags & libc::CLONE_NEWTIME as u64, 0);
        assert_eq!(
            plan.time_offsets.as_deref(),
            Some("boottime 20 5\nmonotonic 10 0\n")
        );
    }

    #[test]
    fn bad_offsets_are_refused() {
        for json in [
            r#"{"namespaces":[{"type":"mount"}],"timeOffsets":{"monotonic":{"secs":1}}}"#,
            r#"{"namespaces":[{"type":"mount"},{"type":"time"}],"timeOffsets":{"realtime":{"secs":1}}}"#,
            r#"{"namespaces":[{"type":"mount"},{"type":"time"}],"timeOffsets":{"boottime":{"nanosecs":1000000000}}}"#,
        ] {
            assert!(Plan::from_spec(Some(&linux(json))).is_err(), "{json}");
        }
    }
}
