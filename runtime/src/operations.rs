//! What a container's cgroup answers for and takes after `start`:
//! `ps`, `pause`/`resume` (the cgroup v2 freezer), `update`, and
//! `events` (stats and OOM kills), plus `list` over the state root.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::cgroups::Cgroup;
use super::error::{Result, RuntimeError, Step};
use super::{Container, Status, stats};

/// How long `pause` waits for the kernel to report the cgroup frozen.
const FREEZE_DEADLINE: Duration = Duration::from_secs(10);
/// How often `events` looks for a new OOM kill.
const OOM_POLL: Duration = Duration::from_millis(100);

impl Container {
    /// Every container under `root`, by id (directories that are not
    /// containers are left out).
    pub fn list(root: &Path) -> Result<Vec<Container>> {
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::os(format!("reading {}", root.display()), e)),
        };
        let mut found: Vec<Container> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|id| Container::load(root, &id).ok())
            .collect();
        found.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(found)
    }

    fn cgroup(&self, what: &str) -> Result<Cgroup> {
        match &self.record.cgroup {
            Some(dir) => Ok(Cgroup { dir: dir.clone() }),
            None => Err(RuntimeError::Unsupported(format!(
                "{what}: container {} has no cgroup",
                self.record.id
            ))),
        }
    }

    /// The pids of the container's processes, as the host sees them.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let status = self.status();
        if status == Status::Stopped {
            return Ok(Vec::new());
        }
        Ok(match &self.record.cgroup {
            Some(dir) => Cgroup { dir: dir.clone() }.procs(),
            None => vec![self.record.pid],
        })
    }

    /// Freezes every process of the container, and returns once the
    /// kernel says they are.
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Running {
            return Err(self.wrong_status(status, "only a running container can be paused"));
        }
        self.cgroup("pause")?.freeze(true)
    }

    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.wrong_status(status, "only a paused container can be resumed"));
        }
        self.cgroup("resume")?.freeze(false)
    }

    /// Applies new limits to a created, running or paused container.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.wrong_status(status, "its limits cannot change"));
        }
        if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(RuntimeError::Unsupported(
                "update of device rules (the device filter is fixed at create)".into(),
            ));
        }
        self.cgroup("update")?.apply(resources)
    }

    /// One `{"type":"stats",…}` event, runc's format.
    pub fn stats_event(&self) -> Result<serde_json::Value> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.wrong_status(status, "it has no stats"));
        }
        let cgroup = self.cgroup("stats")?;
        Ok(serde_json::json!({
            "type": "stats",
            "id": self.record.id,
            "data": stats::read(&cgroup.dir),
        }))
    }

    /// runc's `events`: a stats event every `interval`, and an `oom`
    /// event for each OOM kill, as JSON lines, until the container stops.
    pub fn stream_events(&self, interval: Duration, out: &mut dyn Write) -> Result<()> {
        let cgroup = self.cgroup("events")?;
        let mut ooms = stats::oom_kills(&cgroup.dir);
        let mut next_stats = Instant::now();
        let mut report_ooms = |out: &mut dyn Write| -> Result<()> {
            let count = stats::oom_kills(&cgroup.dir);
            if count > ooms {
                let event = serde_json::json!({"type": "oom", "id": self.record.id});
                writeln!(out, "{event}").step(|| "writing an event")?;
                ooms = count;
            }
            out.flush().step(|| "writing an event")
        };
        while self.status() != Status::Stopped {
            let now = Instant::now();
            if now >= next_stats {
                // The container may stop between the check and the read.
                if let Ok(event) = self.stats_event() {
                    writeln!(out, "{event}").step(|| "writing an event")?;
                }
                next_stats = now + interval;
            }
            report_ooms(out)?;
            std::thread::sleep(OOM_POLL.min(next_stats.saturating_duration_since(now)));
        }
        // An OOM kill that stopped the container since the last look.
        report_ooms(out)
    }
}

impl Cgroup {
    /// Writes cgroup.freeze and waits until cgroup.events agrees.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let value = if frozen { "1" } else { "0" };
        let path = self.dir.join("cgroup.freeze");
        fs::write(&path, value).step(|| format!("writing {value} to {}", path.display()))?;
        let want = format!("frozen {value}");
        let events = self.dir.join("cgroup.events");
        let deadline = Instant::now() + FREEZE_DEADLINE;
        loop {
            let text =
                fs::read_to_string(&events).step(|| format!("reading {}", events.display()))?;
            if text.lines().any(|l| l == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::Other(format!(
                    "{} did not report {want:?} within {FREEZE_DEADLINE:?}",
                    events.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
