//! From an image's config and the user's flags to an OCI runtime spec
//! (`config.json`): what containerd's `oci.WithDefaultSpec` and Docker's
//! `daemon/oci_linux.go` produce, as data and small functions. Nothing
//! here touches the system besides reading the image's /etc/passwd and
//! /etc/group; the runtime (husk-runtime) applies the spec.
//!
//! It knows the user's request (husk-api's `RunOptions`), the image's OCI
//! config and the operator's [`SecurityPolicy`], and nothing of where the
//! image lives, how the container is run or who asked: the agent's
//! container manager calls it, and so does the QEMU tests' guest checker.

mod limits;
mod linux;
pub mod mounts;
mod policy;
mod process;
mod seccomp;
mod user;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Linux, Process, Root, Spec, User};

pub use self::limits::{DEFAULT_PIDS, ResourceLimits};
pub use self::linux::{CPU_PERIOD, MASKED_PATHS, READONLY_PATHS, device_rules};
pub use self::policy::{SecurityPolicy, UsernsPolicy};
pub use self::process::{
    ALL_CAPABILITIES, DEFAULT_CAPABILITIES, DEFAULT_PATH, NOFILE_LIMIT, merge_env,
};
pub use self::seccomp::{SeccompProfileError, default_profile as default_seccomp_profile};
pub use self::user::{ResolvedUser, UserError, read_rootfs_file, reopen_if_regular, resolve_user};
pub use husk_api::containers::{
    NetworkMode, ParseRestartPolicyError, RestartPolicy, RunOptions, UserNamespace,
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The agent's [`SecurityPolicy`] refuses what was asked.
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    #[error("no command: the image has no entrypoint or cmd, and none was given")]
    NoCommand,
    #[error(transparent)]
    User(#[from] UserError),
    #[error("the rootfs path {} is not absolute", .0.display())]
    RootfsNotAbsolute(PathBuf),
    #[error("reading the image's /{file}: {source}")]
    Rootfs {
        file: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    Seccomp(#[from] SeccompProfileError),
    /// oci-spec's builders refused a value (they validate little).
    #[error("building the spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

impl SpecError {
    fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}

/// Docker's container name rule, shortened to a hostname's length so the
/// name can be the default hostname.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(SpecError::invalid(
            "name",
            format!("`{name}`: 1 to 63 of [a-zA-Z0-9_.-], starting with a letter or digit"),
        ))
    }
}

fn check_hostname(hostname: &str) -> Result<(), SpecError> {
    let valid = (1..=64).contains(&hostname.len())
        && hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(SpecError::invalid(
            "hostname",
            format!("`{hostname}`: 1 to 64 of [a-zA-Z0-9_.-]"),
        ))
    }
}

fn check_policy(opts: &RunOptions, policy: &SecurityPolicy) -> Result<(), SpecError> {
    if opts.privileged && !policy.allow_privileged {
        return Err(SpecError::Forbidden(
            "privileged containers are disabled by the agent's configuration \
             (security policy: allow_privileged = false)"
                .into(),
        ));
    }
    if policy.userns == UsernsPolicy::Required && opts.userns.is_none() {
        return Err(SpecError::Forbidden(
            "containers must run in a user namespace on this machine \
             (security policy: userns = \"required\")"
                .into(),
        ));
    }
    if opts.metadata_access && !policy.allow_metadata_access {
        return Err(SpecError::Forbidden(
            "reaching the cloud's metadata service is disabled by the agent's configuration \
             (security policy: allow_metadata_access = false)"
                .into(),
        ));
    }
    if opts.network == NetworkMode::Host && !policy.allow_host_network {
        return Err(SpecError::Forbidden(
            "the host network is disabled by the agent's configuration \
             (security policy: allow_host_network = false)"
                .into(),
        ));
    }
    Ok(())
}

/// Reads a file of the image (`etc/passwd`), None when it has none.
pub type ImageFiles<'a> = dyn Fn(&str) -> io::Result<Option<String>> + 'a;

fn read_db(files: &ImageFiles, file: &'static str) -> Result<Option<String>, SpecError> {
    files(file).map_err(|source| SpecError::Rootfs { file, source })
}

/// The process's user, and its home for $HOME.
fn process_user(
    image_user: Option<&str>,
    opts: &RunOptions,
    files: &ImageFiles,
) -> Result<ResolvedUser, SpecError> {
    let spec = opts.user.as_deref().or(image_user).unwrap_or("");
    let passwd = read_db(files, "etc/passwd")?;
    let group = read_db(files, "etc/group")?;
    let user = resolve_user(spec, passwd.as_deref(), group.as_deref())?;
    if let Some(userns) = &opts.userns {
        // An id outside the mapping cannot be switched to in the namespace.
        let outside = |id: u32| id >= userns.size;
        if outside(user.uid)
            || outside(user.gid)
            || user.additional_gids.iter().any(|&g| outside(g))
        {
            return Err(SpecError::invalid(
                "user",
                format!(
                    "uid {} / gid {} is outside the user namespace's {} ids",
                    user.uid, user.gid, userns.size
                ),
            ));
        }
    }
    Ok(user)
}

/// The OCI runtime spec for running `image_config` with `opts`, its root
/// filesystem at `rootfs` (absolute; the image's /etc/passwd and
/// /etc/group are read from it), within what `policy` allows.
pub fn build_spec(
    image_config: &ImageConfiguration,
    opts: &RunOptions,
    rootfs: &Path,
    policy: &SecurityPolicy,
) -> Result<Spec, SpecError> {
    build_spec_reading(image_config, opts, rootfs, policy, &|file| {
        read_rootfs_file(rootfs, file)
    })
}

/// [`build_spec`] for a rootfs that is not there yet (an overlay the
/// shim mounts later): the image's files are read through `files`.
pub fn build_spec_reading(
    image_config: &ImageConfiguration,
    opts: &RunOptions,
    rootfs: &Path,
    policy: &SecurityPolicy,
    files: &ImageFiles,
) -> Result<Spec, SpecError> {
    check_policy(opts, policy)?;
    mounts::check(opts, policy)?;
    check_name(&opts.name)?;
    if !rootfs.is_absolute() {
        return Err(SpecError::RootfsNotAbsolute(rootfs.to_owned()));
    }
    let config = image_config.config().as_ref();

    let args = process::command(config, opts)?;
    let image_user = config.and_then(|c| c.user().as_deref());
    let user = process_user(image_user, opts, files)?;
    let hostname = opts.hostname.clone().unwrap_or_else(|| opts.name.clone());
    check_hostname(&hostname)?;
    let env = process::environment(config, opts, &hostname, &user.home)?;
    let cwd = opts
        .workdir
        .as_deref()
        .or_else(|| config.and_then(|c| c.working_dir().as_deref()))
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') || cwd.contains('\0') {
        return Err(SpecError::invalid(
            "workdir",
            format!("`{cwd}` is not an absolute path"),
        ));
    }

    let mut process_user = User::default();
    process_user.set_uid(user.uid).set_gid(user.gid);
    if !user.additional_gids.is_empty() {
        process_user.set_additional_gids(Some(user.additional_gids.clone()));
    }
    let mut process = Process::default();
    process
        .set_terminal(Some(opts.tty))
        .set_user(process_user)
        .set_args(Some(args))
        .set_env(Some(env))
        .set_cwd(cwd.into())
        .set_capabilities(Some(process::capabilities(opts.privileged)))
        .set_rlimits(Some(process::rlimits()?))
        // As Docker's default: written explicitly, since the container
        // would otherwise inherit the shim's, which shields Husk's own
        // processes from the OOM killer.
        .set_oom_score_adj(Some(0))
        // Docker leaves no_new_privileges off unless asked; Husk turns it
        // on, so setuid binaries cannot regain what was dropped. Not for
        // privileged containers, whose sudo and ping must keep working.
        .set_no_new_privileges(Some(!opts.privileged));

    let mut root = Root::default();
    root.set_path(rootfs.to_owned())
        .set_readonly(Some(opts.read_only));

    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(linux::namespaces(opts)))
        .set_resources(Some(linux::resources(opts)?))
        .set_cgroups_path(Some(PathBuf::from(format!("/husk/{}", opts.name))));
    if let Some(userns) = &opts.userns {
        let [uids, gids] = linux::id_mappings(userns)?;
        linux
            .set_uid_mappings(Some(vec![uids]))
            .set_gid_mappings(Some(vec![gids]));
    }
    if opts.privileged {
        linux
            .set_masked_paths(None)
            .set_readonly_paths(None)
            .set_seccomp(None);
    } else {
        let strings = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
        linux
            .set_masked_paths(Some(strings(&MASKED_PATHS)))
            .set_readonly_paths(Some(strings(&READONLY_PATHS)))
            .set_seccomp(Some(seccomp::default_profile()?));
    }

    if opts.labels.keys().any(|k| k.is_empty()) {
        return Err(SpecError::invalid("labels", "a label's key is empty"));
    }
    let annotations: HashMap<String, String> = opts.labels.clone().into_iter().collect();

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.into())
        .set_hostname(Some(hostname))
        .set_root(Some(root))
        .set_mounts(Some(linux::mounts(opts.privileged)))
        .set_process(Some(process))
        .set_linux(Some(linux))
        .set_annotations((!annotations.is_empty()).then_some(annotations));
    Ok(spec)
}
