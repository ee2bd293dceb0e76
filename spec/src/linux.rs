//! The Linux part of the spec: namespaces, mounts, masked paths, cgroup
//! resources — containerd's `WithDefaultSpec` and Docker's
//! `daemon/oci_linux.go` defaults.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids,
    LinuxResources, Mount,
};

use super::{NetworkMode, RunOptions, SpecError, UserNamespace};

/// The cgroup v2 CPU period (`cpu.max`'s second field), in µs: Docker's.
pub const CPU_PERIOD: u64 = 100_000;

/// Paths hidden from the container (bind-mounted over with /dev/null or
/// an empty read-only tmpfs): runc's and containerd's list, which Docker
/// uses. They expose host hardware, kernel memory or timing side channels.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only: writing them would reconfigure the host's kernel.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub fn namespaces(opts: &RunOptions) -> Vec<LinuxNamespace> {
    let mut types = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    // A bridged container's namespace is made by the agent, which sets
    // its path; `none` gets a fresh one from the runtime.
    if opts.network != NetworkMode::Host {
        types.push(LinuxNamespaceType::Network);
    }
    if opts.userns.is_some() {
        types.push(LinuxNamespaceType::User);
    }
    types
        .into_iter()
        .map(|typ| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns
        })
        .collect()
}

/// The uid and gid mappings of a user namespace.
pub fn id_mappings(userns: &UserNamespace) -> Result<[LinuxIdMapping; 2], SpecError> {
    let overflows = |start: u32| start.checked_add(userns.size).is_none();
    if userns.size == 0 || overflows(userns.host_uid) || overflows(userns.host_gid) {
        return Err(SpecError::invalid(
            "userns",
            "size must be at least 1 and the host ranges must fit in 32 bits",
        ));
    }
    let map = |host_id: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host_id)
            .size(userns.size)
            .build()
    };
    Ok([map(userns.host_uid)?, map(userns.host_gid)?])
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into())
        .set_typ(Some(typ.into()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// The kernel filesystems every container gets. `privileged` makes /sys
/// and the cgroup tree writable, as Docker does.
pub fn mounts(privileged: bool) -> Vec<Mount> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        mount(
            "/sys/fs/cgroup",
            "cgroup2",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        ),
    ]
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major_minor: Option<(i64, i64)>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(Some(typ))
        .set_access(Some("rwm".into()));
    if let Some((major, minor)) = major_minor {
        rule.set_major(Some(major)).set_minor(Some(minor));
    }
    rule
}

/// The device cgroup: deny everything, then allow the devices runc
/// creates in every container and `mknod` of any (creating a node is
/// harmless when it cannot be opened). Privileged: everything.
pub fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    if privileged {
        return vec![device_rule(true, LinuxDeviceType::A, None)];
    }
    let mut rules = vec![device_rule(false, LinuxDeviceType::A, None)];
    for typ in [LinuxDeviceType::C, LinuxDeviceType::B] {
        let mut mknod = device_rule(true, typ, None);
        mknod.set_access(Some("m".into()));
        rules.push(mknod);
    }
    // null, zero, full, random, urandom, tty, console, ptmx, /dev/pts/*
    // (-1: any minor).
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (136, -1),
    ] {
        let mut rule = device_rule(true, LinuxDeviceType::C, Some((major, minor)));
        if minor < 0 {
            rule.set_minor(None);
        }
        rules.push(rule);
    }
    rules
}

/// The cgroup limits the user asked for, checked.
pub fn resources(opts: &RunOptions) -> Result<LinuxResources, SpecError> {
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(device_rules(opts.privileged)));
    if let Some(bytes) = opts.memory {
        // The kernel rounds to pages; below a few MiB nothing starts.
        let limit = i64::try_from(bytes)
            .ok()
            .filter(|&b| b >= 6 << 20)
            .ok_or_else(|| SpecError::invalid("memory", "must be at least 6 MiB"))?;
        let mut memory = LinuxMemory::default();
        // swap = limit: memory+swap may not exceed the limit, so no swap
        // (Husk machines have none; this keeps it so if one appears).
        memory.set_limit(Some(limit)).set_swap(Some(limit));
        resources.set_memory(Some(memory));
    }
    if let Some(cpus) = opts.cpus {
        // Docker's --cpus: 0.01 CPU at least (a 1 ms quota, the kernel's
        // minimum), and a sane upper bound instead of the host's count.
        if !cpus.is_finite() || !(0.01..=4096.0).contains(&cpus) {
            return Err(SpecError::invalid("cpus", "must be between 0.01 and 4096"));
        }
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(Some((cpus * CPU_PERIOD as f64).round() as i64))
            .set_period(Some(CPU_PERIOD));
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = opts.pids_limit {
        if limit < 1 {
            return Err(SpecError::invalid("pids_limit", "must be at least 1"));
        }
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    if let Some(weight) = opts.io_weight {
        if !(10..=1000).contains(&weight) {
            return Err(SpecError::invalid(
                "io_weight",
                "must be between 10 and 1000",
            ));
        }
        let mut block_io = LinuxBlockIo::default();
        block_io.set_weight(Some(weight));
        resources.set_block_io(Some(block_io));
    }
    Ok(resources)
}
