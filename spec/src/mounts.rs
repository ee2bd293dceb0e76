//! The user's mounts (`-v`, `--mount`, `--tmpfs`) in the spec: checked
//! against the request's own rules and the operator's policy here, made
//! into OCI mounts once the agent has found their sources (a volume's
//! directory, a host path resolved and checked again). Their
//! destinations are resolved inside the container's root by the
//! runtime, never followed out of it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use husk_api::containers::{Mount, MountKind};
use oci_spec::runtime::Mount as OciMount;

use super::{RunOptions, SecurityPolicy, SpecError, UsernsPolicy};

/// Where no mount may go: the kernel's own filesystems, which a volume
/// over `/proc` would replace with files the container wrote (runc's
/// CVE-2019-16884 and CVE-2019-19921 class), and the mounts every
/// container gets.
const RESERVED_TARGETS: [&str; 3] = ["/proc", "/sys", "/dev/pts"];

/// The request's mounts, before anything is looked up: each valid, no
/// target twice, none over the kernel's filesystems, host paths only
/// where the policy allows them.
pub fn check(opts: &RunOptions, policy: &SecurityPolicy) -> Result<(), SpecError> {
    let mut targets = BTreeSet::new();
    for mount in &opts.mounts {
        mount.check().map_err(|e| SpecError::invalid("mounts", e))?;
        let target = clean(&mount.target);
        if !targets.insert(target.clone()) {
            return Err(SpecError::invalid(
                "mounts",
                format!("{} is the target of two mounts", target.display()),
            ));
        }
        if let Some(reserved) = RESERVED_TARGETS
            .iter()
            .find(|r| target == Path::new(r) || target.starts_with(r))
        {
            return Err(SpecError::invalid(
                "mounts",
                format!(
                    "{} is under {reserved}, which the kernel's filesystem holds",
                    target.display()
                ),
            ));
        }
        if mount.kind == MountKind::Bind {
            check_bind(&clean(&mount.source), policy)?;
        }
    }
    Ok(())
}

/// Whether the policy lets a container bind `source`, a path as the agent
/// resolved it (no symlinks, no `..`): never where every container must
/// be in a user namespace (a machine shared by tenants), else only under
/// one of `bind_mounts`.
pub fn check_bind(source: &Path, policy: &SecurityPolicy) -> Result<(), SpecError> {
    if policy.userns == UsernsPolicy::Required {
        return Err(SpecError::Forbidden(format!(
            "binding the host path {} is refused: host paths are never shared with containers \
             on a machine where every container runs in a user namespace \
             (security policy: userns = \"required\")",
            source.display()
        )));
    }
    if policy.bind_mounts.is_empty() {
        return Err(SpecError::Forbidden(format!(
            "binding the host path {} is refused: bind mounts of host paths are disabled \
             by the agent's configuration (security policy: bind_mounts = [])",
            source.display()
        )));
    }
    if policy
        .bind_mounts
        .iter()
        .any(|allowed| source.starts_with(allowed))
    {
        Ok(())
    } else {
        Err(SpecError::Forbidden(format!(
            "binding the host path {} is refused: it is under none of the security policy's \
             bind_mounts ({})",
            source.display(),
            policy
                .bind_mounts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// `/a//b/./c/` as `/a/b/c`.
fn clean(path: &str) -> PathBuf {
    Path::new(path).components().collect()
}

/// A user's mount with its source found: `source` is the host directory
/// or file of a volume or bind (None for a tmpfs).
pub fn oci_mount(mount: &Mount, source: Option<&Path>) -> OciMount {
    let mut options: Vec<String> = Vec::new();
    let mut m = OciMount::default();
    m.set_destination(clean(&mount.target));
    match (mount.kind, source) {
        (MountKind::Tmpfs, _) | (_, None) => {
            // Docker's: no devices, no setuid, no executables; world
            // writable and sticky unless told.
            options.extend(["nosuid", "nodev", "noexec"].map(String::from));
            options.push(format!("mode={:o}", mount.tmpfs_mode.unwrap_or(0o1777)));
            if let Some(size) = mount.tmpfs_size {
                options.push(format!("size={size}"));
            }
            m.set_typ(Some("tmpfs".into()))
                .set_source(Some("tmpfs".into()));
        }
        (_, Some(source)) => {
            // A volume or host path brings no devices or setuid programs
            // into the container, and does not see mounts made in it
            // later (private).
            options.extend(["rbind", "rprivate", "nosuid", "nodev"].map(String::from));
            m.set_typ(Some("bind".into()))
                .set_source(Some(source.to_owned()));
        }
    }
    if mount.read_only {
        options.push("ro".into());
    }
    m.set_options(Some(options));
    m
}

/// Appends the user's mounts (already given their sources) to `spec`'s,
/// parents before what is mounted inside them, as Docker orders them.
pub fn add_to_spec(spec: &mut oci_spec::runtime::Spec, mut user: Vec<OciMount>) {
    user.sort_by_key(|m| m.destination().components().count());
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(user);
    spec.set_mounts(Some(mounts));
}
