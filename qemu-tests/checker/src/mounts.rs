//! `mounts`: the filesystem layout husk-init promises (see "Boot flow"
//! in docs/ARCHITECTURE.md), checked from a service's point of view.

use std::fs;
use std::io;

use super::Outcome;

/// Mount points and the filesystem type each must have.
const EXPECTED: &[(&str, &str)] = &[
    ("/proc", "proc"),
    ("/sys", "sysfs"),
    ("/dev", "devtmpfs"),
    ("/dev/pts", "devpts"),
    ("/dev/shm", "tmpfs"),
    ("/run", "tmpfs"),
    ("/tmp", "tmpfs"),
    ("/sys/fs/cgroup", "cgroup2"),
];

/// Controllers init must delegate whatever the kernel offers…
const REQUIRED_CONTROLLERS: &[&str] = &["memory", "pids"];
/// …and these too when the kernel has them.
const OPTIONAL_CONTROLLERS: &[&str] = &["cpu", "io"];

const EROFS: i32 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub options: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl Mount {
    fn read_only(&self) -> bool {
        self.options
            .iter()
            .chain(&self.super_options)
            .any(|o| o == "ro")
    }
}

/// Parses /proc/self/mountinfo (proc(5)): fields up to the mount
/// options, optional fields, "-", then type, source, super options.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let before: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let split = |s: &str| s.split(',').map(str::to_owned).collect();
            Some(Mount {
                mount_point: unescape(before.get(4)?),
                options: split(before.get(5)?),
                fstype: after.next()?.to_owned(),
                source: after.next().map(unescape).unwrap_or_default(),
                super_options: after.next().map(split).unwrap_or_default(),
            })
        })
        .collect()
}

use husk_common::mountinfo::unescape;

/// The mount visible at `point`: the last (topmost) one listed.
pub fn visible<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

/// Every broken promise about the mount table, in words.
pub fn check_mount_table(mounts: &[Mount]) -> Vec<String> {
    let mut failures = Vec::new();
    match visible(mounts, "/") {
        None => failures.push("no mount at /".to_owned()),
        Some(root) => {
            if root.fstype == "rootfs" {
                failures.push("/ is still the initramfs (rootfs)".to_owned());
            }
            if !root.read_only() {
                failures.push(format!("/ ({}) is not read-only", root.fstype));
            }
        }
    }
    for (point, fstype) in EXPECTED {
        match visible(mounts, point) {
            None => failures.push(format!("{point} is not mounted")),
            Some(m) if m.fstype != *fstype => {
                failures.push(format!("{point} is {}, expected {fstype}", m.fstype));
            }
            Some(_) => {}
        }
    }
    failures
}

/// Which controllers `subtree_control` lacks, given what the kernel
/// offers in `cgroup.controllers`.
pub fn missing_controllers(available: &str, enabled: &str) -> Vec<String> {
    let available: Vec<&str> = available.split_whitespace().collect();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let optional = OPTIONAL_CONTROLLERS
        .iter()
        .filter(|c| available.contains(c));
    REQUIRED_CONTROLLERS
        .iter()
        .chain(optional)
        .filter(|c| !enabled.contains(c))
        .map(|c| c.to_string())
        .collect()
}

pub fn run(_: &[String]) -> Outcome {
    let mut failures = Vec::new();
    match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => failures.extend(check_mount_table(&parse_mountinfo(&text))),
        Err(e) => failures.push(format!("reading /proc/self/mountinfo: {e}")),
    }
    match (
        fs::read_to_string("/sys/fs/cgroup/cgroup.controllers"),
        fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control"),
    ) {
        (Ok(available), Ok(enabled)) => {
            let missing = missing_controllers(&available, &enabled);
            if !missing.is_empty() {
                failures.push(format!(
                    "cgroup.subtree_control {:?} lacks {missing:?}",
                    enabled.trim()
                ));
            }
        }
        (Err(e), _) | (_, Err(e)) => failures.push(format!("reading /sys/fs/cgroup: {e}")),
    }
    match write_probe("/etc") {
        Err(e) if e.raw_os_error() == Some(EROFS) => {}
        Err(e) => failures.push(format!("writing /etc failed with {e}, expected EROFS")),
        Ok(()) => failures.push("/etc is writable".to_owned()),
    }
    for dir in ["/run", "/tmp"] {
        if let Err(e) = write_probe(dir) {
            failures.push(format!("writing {dir}: {e}"));
        }
    }
    let pid = std::process::id();
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_pid());
    if pid == 1 || ppid != 1 {
        failures.push(format!("pid {pid}, ppid {ppid}: expected a child of PID 1"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Creates, writes and removes a file in `dir`.
fn write_probe(dir: &str) -> io::Result<()> {
    let path = format!("{dir}/.husk-check-probe-{}", std::process::id());
    fs::write(&path, b"probe")?;
    fs::remove_file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw
20 1 0:19 / / ro,relatime - tmpfs tmpfs ro,size=100k
21 20 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
22 20 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
23 20 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=240k,mode=755
24 23 0:22 / /dev/pts rw,nosuid,noexec,relatime shared:3 - devpts devpts rw,gid=5,mode=620
25 23 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
26 20 0:24 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
27 20 0:25 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw
28 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn parses_fields_around_optional_ones() {
        let mounts = parse_mountinfo(HEALTHY);
        assert_eq!(mounts.len(), 10);
        let pts = &mounts[5];
        assert_eq!(pts.mount_point, "/dev/pts");
        assert_eq!(pts.fstype, "devpts");
        assert!(pts.super_options.contains(&"gid=5".to_owned()));
    }

    #[test]
    fn mount_points_are_unescaped() {
        let mounts = parse_mountinfo("30 20 0:30 / /mnt/a\\040b rw - tmpfs tmpfs rw\n");
        assert_eq!(mounts[0].mount_point, "/mnt/a b");
    }

    #[test]
    fn a_healthy_table_passes() {
        assert_eq!(
            check_mount_table(&parse_mountinfo(HEALTHY)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rootfs_writable_root_and_wrong_types_are_reported() {
        let broken = "\
1 1 0:2 / / rw - rootfs rootfs rw
21 1 0:20 / /proc rw - proc proc rw
23 1 0:5 / /dev rw - tmpfs tmpfs rw
";
        let failures = check_mount_table(&parse_mountinfo(broken));
        let text = failures.join("\n");
        assert!(text.contains("/ is still the initramfs"), "{text}");
        assert!(text.contains("/ (rootfs) is not read-only"), "{text}");
        assert!(text.contains("/dev is tmpfs, expected devtmpfs"), "{text}");
        assert!(text.contains("/sys/fs/cgroup is not mounted"), "{text}");
        assert!(!text.contains("/proc"), "{text}");
    }

    #[test]
    fn optional_controllers_are_required_only_when_available() {
        assert!(missing_controllers("cpu io memory pids", "cpu io memory pids").is_empty());
        assert!(missing_controllers("memory pids", "memory pids\n").is_empty());
        assert_eq!(
            missing_controllers("cpu memory pids", "memory pids"),
            ["cpu"]
        );
        assert_eq!(
            missing_controllers("cpu io memory pids", ""),
            ["memory", "pids", "cpu", "io"]
        );
    }
}
