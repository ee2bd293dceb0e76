//! The data partition, as a service sees it: mounted from the disk's
//! `husk-data` partition, persistent across boots, grown to the disk.

use std::fs;

use super::mounts::{parse_mountinfo, visible};
use super::{Outcome, say};

const STATE_DIR: &str = husk_common::paths::STATE_DIR;
const BOOTS_FILE: &str = "/var/lib/husk/husk-check-boots";

/// `data-mounted`: /var/lib/husk is ext4 from the partition the kernel
/// knows as PARTNAME=husk-data, and it is writable.
pub fn mounted(_: &[String]) -> Outcome {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("mountinfo: {e}"))?;
    let mounts = parse_mountinfo(&mountinfo);
    let mount =
        visible(&mounts, STATE_DIR).ok_or_else(|| format!("{STATE_DIR} is not a mount point"))?;
    if mount.fstype != "ext4" {
        return Err(format!("{STATE_DIR} is {}, not ext4", mount.fstype));
    }
    let source = &mount.source;
    let device = source.trim_start_matches("/dev/");
    let uevent = fs::read_to_string(format!("/sys/class/block/{device}/uevent"))
        .map_err(|e| format!("uevent of {source}: {e}"))?;
    if !uevent.lines().any(|l| l == "PARTNAME=husk-data") {
        return Err(format!("{source} is not the husk-data partition: {uevent}"));
    }
    let probe = format!("{STATE_DIR}/.husk-check-write");
    fs::write(&probe, b"x").map_err(|e| format!("{STATE_DIR} is not writable: {e}"))?;
    fs::remove_file(&probe).map_err(|e| format!("removing {probe}: {e}"))?;
    say("data-mounted", &format!("{source} on {STATE_DIR}"));
    Ok(())
}

/// `persist`: counts boots in a file on the data partition and prints
/// `boot N`, so a test that reboots sees the count go up.
pub fn persist(_: &[String]) -> Outcome {
    let previous = match fs::read_to_string(BOOTS_FILE) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("{BOOTS_FILE}: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(format!("{BOOTS_FILE}: {e}")),
    };
    let boot = previous + 1;
    // Durable before the test reboots the machine: write, fsync, rename.
    let tmp = format!("{BOOTS_FILE}.tmp");
    let file = fs::File::create(&tmp).map_err(|e| format!("{tmp}: {e}"))?;
    std::io::Write::write_all(&mut &file, boot.to_string().as_bytes())
        .map_err(|e| format!("{tmp}: {e}"))?;
    file.sync_all().map_err(|e| format!("{tmp}: {e}"))?;
    fs::rename(&tmp, BOOTS_FILE).map_err(|e| format!("{BOOTS_FILE}: {e}"))?;
    fs::File::open(STATE_DIR)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{STATE_DIR}: {e}"))?;
    say("persist", &format!("boot {boot}"));
    Ok(())
}

/// `data-size MIN_MIB`: the filesystem on /var/lib/husk holds at least
/// MIN_MIB (it was grown to fill a larger disk).
pub fn size(args: &[String]) -> Outcome {
    let min_mib: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: data-size MIN_MIB")?;
    let stat = rustix::fs::statvfs(STATE_DIR).map_err(|e| format!("statvfs {STATE_DIR}: {e}"))?;
    let mib = stat.f_blocks * stat.f_frsize / (1 << 20);
    say("data-size", &format!("{mib} MiB"));
    if mib < min_mib {
        return Err(format!(
            "{STATE_DIR} is {mib} MiB, expected at least {min_mib} MiB"
        ));
    }
    Ok(())
}

/// `data-failed`: the data partition did not mount, and the machine says
/// so through its real interface: `huskctl status --json` reports
/// `failed` with a reason, and /var/lib/husk is a stand-in tmpfs.
pub fn failed(_: &[String]) -> Outcome {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let output = loop {
        let output = std::process::Command::new("/usr/bin/huskctl")
            .args(["status", "--json"])
            .output()
            .map_err(|e| format!("running huskctl: {e}"))?;
        // The agent may still be starting.
        if output.status.success() || std::time::Instant::now() >= deadline {
            break output;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    if !output.status.success() {
        return Err(format!(
            "huskctl status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("huskctl status --json: {e}"))?;
    let data = &status["data"];
    if data["state"] != "failed" || data["error"].as_str().is_none_or(str::is_empty) {
        return Err(format!(
            "expected a failed data partition with a reason, got {data}"
        ));
    }
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("mountinfo: {e}"))?;
    let mounts = parse_mountinfo(&mountinfo);
    match visible(&mounts, STATE_DIR) {
        Some(m) if m.fstype == "tmpfs" => {}
        other => {
            return Err(format!(
                "{STATE_DIR} should be a tmpfs stand-in, is {other:?}"
            ));
        }
    }
    say("data-failed", &format!("reported: {}", data["error"]));
    Ok(())
}
