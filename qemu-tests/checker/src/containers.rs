//! `container-limits`: cgroup v2 limits enforced by the kernel, end to
//! end: the agent's spec builder writes the bundle's config.json, the
//! agent's embedded runtime (`husk-agent oci run`) runs it, and the
//! kernel's memory and pids controllers, which init delegated, stop it.
//! Each limit is paired with the same run without it, so a passing check
//! cannot come from a command that fails anyway.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use husk_spec::{RunOptions, SecurityPolicy, build_spec};

use super::{Outcome, say};

/// Where test images carry busybox-static (a container's whole rootfs).
pub const BUSYBOX_GUEST_PATH: &str = "/usr/share/husk-check/busybox";
const AGENT: &str = husk_common::paths::AGENT_BIN;
const WORK: &str = "/tmp/husk-check-oci";

/// Allocates 24 MiB in the shell: fine unconstrained, an OOM kill under
/// an 8 MiB memory.max.
const EAT_MEMORY: &str = "x=$(head -c 25165824 /dev/zero | tr '\\0' a); echo survived ${#x}";
const MEMORY_LIMIT: u64 = 8 << 20;
/// Five background processes: more than pids.max = 4 allows.
const FORK_FIVE: &str = "for i in 1 2 3 4 5; do sleep 1 & done; wait; echo forked";
const PIDS_LIMIT: i64 = 4;

struct Run {
    code: Option<i32>,
    output: String,
}

pub fn limits(_: &[String]) -> Outcome {
    let rootfs = make_rootfs()?;
    let free = run_container(&rootfs, "mem-free", EAT_MEMORY, |_| {})?;
    if free.code != Some(0) || !free.output.contains("survived 25165824") {
        return Err(format!(
            "the unconstrained run failed: {:?}: {}",
            free.code, free.output
        ));
    }
    let capped = run_container(&rootfs, "mem-capped", EAT_MEMORY, |o| {
        o.memory = Some(MEMORY_LIMIT)
    })?;
    // SIGKILL from the OOM killer: 128 + 9.
    if capped.code != Some(137) || capped.output.contains("survived") {
        return Err(format!(
            "memory.max was not enforced: {:?}: {}",
            capped.code, capped.output
        ));
    }
    say(
        "container-limits",
        "memory: OOM-killed under 8 MiB (exit 137), 24 MiB fine without",
    );

    let free = run_container(&rootfs, "pids-free", FORK_FIVE, |_| {})?;
    if free.code != Some(0) || !free.output.contains("forked") {
        return Err(format!(
            "the unconstrained fork run failed: {:?}: {}",
            free.code, free.output
        ));
    }
    let capped = run_container(&rootfs, "pids-capped", FORK_FIVE, |o| {
        o.pids_limit = Some(PIDS_LIMIT)
    })?;
    if !capped.output.contains("can't fork") {
        return Err(format!(
            "pids.max was not enforced: {:?}: {}",
            capped.code, capped.output
        ));
    }
    say("container-limits", "pids: fork refused at pids.max=4");

    // What the agent gives a container that asks for nothing.
    let default = run_container(
        &rootfs,
        "pids-default",
        "cat /sys/fs/cgroup/pids.max",
        |o| {
            *o = husk_spec::ResourceLimits::default()
                .apply(o.clone())
                .unwrap_or_else(|_| o.clone());
        },
    )?;
    if default.output.trim() != husk_spec::DEFAULT_PIDS.to_string() {
        return Err(format!(
            "the default pids limit is not {}: {:?}: {}",
            husk_spec::DEFAULT_PIDS,
            default.code,
            default.output
        ));
    }
    say("container-limits", "pids: the default pids.max is 2048");
    devices(&rootfs)?;
    super::runtime_update::run(&rootfs, Path::new(WORK))
}

/// The device filter on the product kernel: with Docker's CAP_MKNOD a
/// container makes a node for this machine's disk (on /dev, a tmpfs
/// without nodev), or for /dev/kmsg when the machine has no disk, and
/// cannot open it; /dev/null stays usable.
fn devices(rootfs: &Path) -> Outcome {
    let mut disks: Vec<String> = fs::read_dir("/sys/dev/block")
        .map_err(|e| format!("/sys/dev/block: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    disks.sort();
    let (kind, disk) = match disks.first() {
        Some(disk) => ("b", disk.as_str()),
        None => ("c", "1:11"),
    };
    let (major, minor) = disk
        .split_once(':')
        .ok_or("a block device without MAJ:MIN")?;
    let script = format!(
        "mknod /dev/disk {kind} {major} {minor} && echo made; \
         head -c 1 /dev/disk >/dev/null 2>&1 && echo READ || echo refused; \
         echo x >/dev/null && echo null-ok"
    );
    let run = run_container(rootfs, "devices", &script, |_| {})?;
    if run.output != "made\nrefused\nnull-ok\n" {
        return Err(format!(
            "the device filter let the container at disk {disk}: {:?}: {}",
            run.code, run.output
        ));
    }
    say(
        "container-limits",
        &format!("devices: a node for disk {disk} made and refused"),
    );
    Ok(())
}

/// A busybox rootfs: the one binary and the applets the commands use.
fn make_rootfs() -> Result<PathBuf, String> {
    let rootfs = Path::new(WORK).join("rootfs");
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    fs::copy(BUSYBOX_GUEST_PATH, bin.join("busybox"))
        .map_err(|e| format!("copying busybox: {e}"))?;
    for applet in ["sh", "head", "tr", "sleep", "echo", "cat", "mknod"] {
        symlink("busybox", bin.join(applet)).map_err(|e| format!("bin/{applet}: {e}"))?;
    }
    Ok(rootfs)
}

/// Writes `WORK/ID/config.json`: husk-spec's spec (Docker's defaults)
/// for `sh -c SCRIPT` over `rootfs`, with `limit` applied to the options.
pub fn write_bundle(
    rootfs: &Path,
    id: &str,
    script: &str,
    limit: impl FnOnce(&mut RunOptions),
) -> Result<PathBuf, String> {
    let image: oci_spec::image::ImageConfiguration = serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .map_err(|e| format!("image config: {e}"))?;
    let mut options = RunOptions::new(id, "busybox");
    options.cmd = Some(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    limit(&mut options);
    let spec = build_spec(&image, &options, rootfs, &SecurityPolicy::default())
        .map_err(|e| format!("spec: {e}"))?;
    let bundle = Path::new(WORK).join(id);
    fs::create_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let config = serde_json::to_vec_pretty(&spec).map_err(|e| format!("config.json: {e}"))?;
    fs::write(bundle.join("config.json"), config).map_err(|e| format!("config.json: {e}"))?;
    Ok(bundle)
}

fn run_container(
    rootfs: &Path,
    id: &str,
    script: &str,
    limit: impl FnOnce(&mut RunOptions),
) -> Result<Run, String> {
    let bundle = write_bundle(rootfs, id, script, limit)?;
    let out = Command::new(AGENT)
        .args(["oci", "--root", &format!("{WORK}/state"), "run", "--bundle"])
        .arg(&bundle)
        .arg(id)
        .output()
        .map_err(|e| format!("running {AGENT} oci run: {e}"))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    say(
        "container-limits",
        &format!("{id}: exit {:?}", out.status.code()),
    );
    Ok(Run {
        code: out.status.code(),
        output,
    })
}
