//! cgroup v2: the container's cgroup under /sys/fs/cgroup, its resource
//! limits, and its removal. A relative linux.cgroupsPath (or none) lives in
//! Husk's subtree, `/sys/fs/cgroup/husk/<path or id>`.
//!
//! Device rules (linux.resources.devices) become a BPF device filter
//! attached to the cgroup ([`super::devices`]); a kernel that cannot load
//! one fails the container instead of running it without.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::error::{Result, RuntimeError, Step};

pub const ROOT: &str = "/sys/fs/cgroup";
/// Husk's own subtree for relative paths.
pub const HUSK_SUBTREE: &str = "husk";
const CONTROLLERS: [&str; 4] = ["cpu", "memory", "io", "pids"];

/// The cgroup directory for a spec's cgroupsPath.
pub fn dir_for(cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    match cgroups_path {
        Some(p) if p.is_absolute() => Path::new(ROOT).join(p.strip_prefix("/").unwrap_or(p)),
        Some(p) if !p.as_os_str().is_empty() => Path::new(ROOT).join(HUSK_SUBTREE).join(p),
        _ => Path::new(ROOT).join(HUSK_SUBTREE).join(id),
    }
}

#[derive(Debug, Clone)]
pub struct Cgroup {
    pub dir: PathBuf,
}

fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
}

impl Cgroup {
    /// Makes the cgroup (failing if it exists), enables the controllers in
    /// its ancestors and applies the limits. Undoes itself on failure.
    pub fn create(dir: &Path, resources: Option<&LinuxResources>) -> Result<Self> {
        if !is_cgroup2(Path::new(ROOT)) {
            return Err(RuntimeError::Unsupported(format!(
                "{ROOT} is not a cgroup v2 mount (cgroup v1 is not supported)"
            )));
        }
        let relative = dir.strip_prefix(ROOT).map_err(|_| {
            RuntimeError::Config(format!("cgroup {} is outside {ROOT}", dir.display()))
        })?;
        if relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(RuntimeError::Config(format!(
                "cgroupsPath {} must not contain '..'",
                relative.display()
            )));
        }
        create_path(Path::new(ROOT), relative)?;
        let cgroup = Cgroup {
            dir: dir.to_path_buf(),
        };
        if let Some(Err(e)) = resources.map(|r| cgroup.apply(r)) {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        if !path.exists() {
            let controller = file.split('.').next().unwrap_or(file);
            return Err(RuntimeError::Unsupported(format!(
                "cgroup controller {controller} is not available ({} is missing)",
                path.display()
            )));
        }
        fs::write(&path, value).step(|| format!("writing {value:?} to {}", path.display()))
    }

    /// linux.resources → cgroup v2 files, with runc's v1 → v2 conversions.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(n) = r.network()
            && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
        {
            return Err(RuntimeError::Unsupported(
                "linux.resources.network (net_cls, net_prio): cgroup v2 has no such controllers"
                    .into(),
            ));
        }
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                self.write("memory.max", &max_or(limit))?;
            }
            if let Some(low) = m.reservation() {
                self.write("memory.low", &max_or(low))?;
            }
            if let Some(swap) = m.swap() {
                // The spec's swap is memory+swap (v1); v2 wants swap alone.
                let v2 = match (swap, m.limit()) {
                    (-1, _) => "max".to_string(),
                    (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
                    (s, _) => {
                        return Err(RuntimeError::Config(format!(
                            "memory.swap {s} needs a memory.limit not above it"
                        )));
                    }
                };
                self.write("memory.swap.max", &v2)?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                self.write("cpu.weight", &shares_to_weight(shares).to_string())?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = match cpu.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                let period = cpu.period().filter(|p| *p > 0).unwrap_or(100_000);
                self.write("cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(cpus) = cpu.cpus().as_ref().filter(|c| !c.is_empty()) {
                self.write("cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems().as_ref().filter(|c| !c.is_empty()) {
                self.write("cpuset.mems", mems)?;
            }
        }
        if let Some(pids) = r.pids() {
            let limit = pids.limit();
            if limit != 0 {
                self.write("pids.max", &max_or(limit))?;
            }
        }
        if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
            // blkio weight 10..1000 → io.weight 1..10000 (runc's conversion).
            let w = 1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990;
            self.write("io.weight", &format!("default {w}"))?;
        }
        Ok(())
    }

    /// Attaches a device filter ([`super::devices::container_program`]).
    pub fn filter_devices(&self, program: &[super::devices::Insn]) -> Result<()> {
        let loaded = super::sys::load_device_program(program)
            .step(|| "loading the cgroup device filter (BPF_PROG_TYPE_CGROUP_DEVICE)")?;
        let dir = fs::File::open(&self.dir).step(|| format!("opening {}", self.dir.display()))?;
        super::sys::attach_device_program(
            std::os::fd::AsFd::as_fd(&dir),
            std::os::fd::AsFd::as_fd(&loaded),
        )
        .step(|| format!("attaching the device filter to {}", self.dir.display()))
    }

    pub fn add(&self, pid: i32) -> Result<()> {
        let path = self.dir.join("cgroup.procs");
        fs::write(&path, pid.to_string()).step(|| format!("adding pid {pid} to {}", path.display()))
    }

    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs everything in the cgroup (cgroup.kill, or each pid on
    /// kernels before 5.14).
    pub fn kill_all(&self) {
        if fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
            for pid in self.procs() {
                let _ = super::sys::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Removes the cgroup, waiting up to 2 s for exiting processes to leave.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        // The last task usually leaves within a millisecond of being
        // reaped: poll fast first (this is on every container's exit path).
        let mut pause = Duration::from_micros(100);
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(RuntimeError::os(
                        format!("removing cgroup {}", self.dir.display()),
                        e,
                    ));
                }
            }
        }
    }
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// Enables in `dir`'s subtree_control the controllers it has, one at a time
/// (one missing controller must not stop the others).
/// Makes `root/relative`, which must be new, and the ancestors it lacks,
/// enabling the controllers in each on the way down. Containers start in
/// parallel, so an ancestor may appear between any check and the mkdir:
/// only the mkdir decides, and an ancestor that exists is fine.
fn create_path(root: &Path, relative: &Path) -> Result<()> {
    let dir = root.join(relative);
    let mut current = root.to_path_buf();
    for part in relative.components() {
        enable_controllers(&current);
        current.push(part);
        match fs::create_dir(&current) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && current != dir => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Config(format!(
                    "cgroup {} already exists",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(RuntimeError::os(
                    format!("creating cgroup {}", current.display()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn enable_controllers(dir: &Path) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for c in CONTROLLERS {
        let has = |list: &str| list.split_whitespace().any(|x| x == c);
        if has(&available)
            && !has(&enabled)
            && let Err(e) = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"))
        {
            log::debug!("cannot enable {c} in {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The firewall boot test's failure: two containers starting at once
    /// under a parent neither found made one fail with EEXIST.
    #[test]
    fn siblings_created_at_once_share_the_ancestors_they_make() {
        let root = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let (root, barrier) = (root.path(), &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            create_path(root, Path::new(&format!("r{round}/husk/c{i}")))
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap().unwrap();
                }
            });
        }
        let again = create_path(root.path(), Path::new("r0/husk/c0")).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn paths() {
        assert_eq!(dir_for(None, "a"), Path::new("/sys/fs/cgroup/husk/a"));
        assert_eq!(
            dir_for(Some(Path::new("x/y")), "a"),
            Path::new("/sys/fs/cgroup/husk/x/y")
        );
        assert_eq!(
            dir_for(Some(Path::new("/x/y")), "a"),
            Path::new("/sys/fs/cgroup/x/y")
        );
    }

    #[test]
    fn shares() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10000);
    }
}
