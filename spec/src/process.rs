//! The container's process: its command line (Docker's entrypoint and cmd
//! rules), environment, capabilities and rlimits.

use oci_spec::image::Config;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
};

use super::{RunOptions, SpecError};

/// Docker's (and containerd's) PATH when neither the image nor the user
/// sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// RLIMIT_NOFILE, soft and hard: what a Docker container gets (dockerd
/// and containerd run with LimitNOFILE=infinity, i.e. the kernel's
/// nr_open, 1048576).
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// The command line: the entrypoint followed by the cmd, with Docker's
/// override rules:
///
/// | `--entrypoint` | cmd given | args |
/// |---|---|---|
/// | — | — | image entrypoint + image cmd |
/// | — | C | image entrypoint + C |
/// | E | — | E (the image's cmd is dropped) |
/// | E | C | E + C |
/// | `""` (empty) | — | image cmd |
/// | `""` (empty) | C | C |
pub fn command(image: Option<&Config>, opts: &RunOptions) -> Result<Vec<String>, SpecError> {
    let image_entrypoint = image.and_then(|c| c.entrypoint().clone());
    let image_cmd = image.and_then(|c| c.cmd().clone());
    // An empty cmd is no cmd (Docker tests `len(Cmd) == 0`).
    let user_cmd = opts.cmd.clone().filter(|c| !c.is_empty());
    let (entrypoint, cmd) = match &opts.entrypoint {
        None => (image_entrypoint, user_cmd.or(image_cmd)),
        // `--entrypoint ""` clears the entrypoint but keeps the image's cmd.
        Some(e) if e.is_empty() => (None, user_cmd.or(image_cmd)),
        Some(e) => (Some(e.clone()), user_cmd),
    };
    let args: Vec<String> = entrypoint
        .into_iter()
        .flatten()
        .chain(cmd.into_iter().flatten())
        .collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    if args.iter().any(|a| a.contains('\0')) {
        return Err(SpecError::invalid("cmd", "an argument contains a NUL byte"));
    }
    Ok(args)
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// `base` with each of `overrides` replacing the entry of the same key in
/// place, or appended (Docker's `ReplaceOrAppendEnvValues`).
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut env = base.to_vec();
    for entry in overrides {
        match env.iter_mut().find(|e| env_key(e) == env_key(entry)) {
            Some(slot) => slot.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
    env
}

/// Checks the user's `-e` entries: `KEY=VALUE`, a non-empty key.
pub fn check_env(entries: &[String], what: &'static str) -> Result<(), SpecError> {
    for entry in entries {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() && !entry.contains('\0') => {}
            _ => {
                return Err(SpecError::invalid(
                    what,
                    format!("`{entry}` is not KEY=VALUE"),
                ));
            }
        }
    }
    Ok(())
}

/// The process's environment as Docker builds it: PATH and HOSTNAME
/// (and TERM=xterm with a terminal) first, overridden by the image's and then the user's entries; HOME
/// (the user's passwd home) when nothing set it, as runc adds it.
pub fn environment(
    image: Option<&Config>,
    opts: &RunOptions,
    hostname: &str,
    home: &str,
) -> Result<Vec<String>, SpecError> {
    let image_env = image.and_then(|c| c.env().clone()).unwrap_or_default();
    check_env(&image_env, "the image's Env")?;
    check_env(&opts.env, "env")?;
    let mut base = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    // Docker's default for a terminal, under the image's and the user's.
    if opts.tty {
        base.push("TERM=xterm".to_string());
    }
    let mut env = merge_env(&base, &merge_env(&image_env, &opts.env));
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={home}"));
    }
    Ok(env)
}

/// Docker's default capabilities (moby's `caps.DefaultCapabilities`).
/// CAP_MKNOD is among them because the device cgroup (`device_rules`, a
/// BPF filter the runtime attaches on cgroup v2) refuses to open any
/// node it makes but the default devices: a node for the host's disk can
/// be made, not read. Images keep their device nodes only when the store
/// allows them, and the overlay root is mounted nodev besides.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows: what a privileged container gets.
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// The capability sets: bounding, effective and permitted hold the set;
/// inheritable and ambient are empty. Docker ≥ 20.10 stopped filling the
/// inheritable set (CVE-2022-24769: with file capabilities, an inheritable
/// set lets a non-root exec gain capabilities), and never sets ambient.
pub fn capabilities(privileged: bool) -> LinuxCapabilities {
    let set: Capabilities = if privileged {
        ALL_CAPABILITIES.into_iter().collect()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    caps
}

pub fn rlimits() -> Result<Vec<PosixRlimit>, SpecError> {
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(NOFILE_LIMIT)
        .soft(NOFILE_LIMIT)
        .build()?;
    Ok(vec![nofile])
}
