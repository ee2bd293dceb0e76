//! The data partition: found by its GPT name, grown to fill its disk,
//! checked with e2fsck, mounted on /var/lib/husk, and its filesystem
//! grown online. It is never formatted: a partition that fails its check
//! or its mount is left as it was, /var/lib/husk becomes a tmpfs so the
//! agent still runs, and the failure goes into the boot facts
//! ([`crate::boot_facts`]: /run/husk/data.json and /run/husk/boot.json)
//! for the agent to report.
//!
//! Log lines (docs/ARCHITECTURE.md, log contract):
//! `data: mounted /dev/vda2 at /var/lib/husk (N MiB)`,
//! `data: grew partition husk-data from X MiB to Y MiB`,
//! `data: grew filesystem to N MiB`,
//! `data: no husk-data partition; /var/lib/husk is a tmpfs`,
//! `data: FAILED /dev/vda2: REASON; /var/lib/husk is a tmpfs`.

pub mod ext4;
pub mod find;
pub mod fsck;
pub mod grow;

use std::path::Path;
use std::time::{Duration, Instant};

use husk_common::boot::{DataPartition, DataState};
use husk_common::paths;
use rustix::mount::MountFlags;

use crate::sys;

/// How long to wait for the disk to show up.
const DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
const MIB: u64 = 1 << 20;

/// Not noexec: container layers live on it.
const DATA_FLAGS: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);

/// What [`setup`] did, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: DataPartition,
    /// The partition's disk (`vda`), when there is a partition.
    pub disk: Option<String>,
}

/// Finds, grows, checks and mounts the data partition. Never fails: the
/// outcome is in the status, which the caller publishes.
pub fn setup() -> Outcome {
    let started = Instant::now();
    // Firmware (UEFI) booted us from a disk, so one is coming; a direct
    // kernel boot may have none.
    let booted_from_disk = Path::new("/sys/firmware/efi").exists();
    let found = find::wait_for(
        Path::new("/sys/class/block"),
        paths::DATA_PARTITION_NAME,
        booted_from_disk,
        DEADLINE,
        POLL,
    );
    match found.split_first() {
        None => {
            log::info!(
                "data: no {} partition; {} is a tmpfs",
                paths::DATA_PARTITION_NAME,
                paths::STATE_DIR
            );
            mount_tmpfs("tmpfs");
            Outcome {
                status: DataPartition::absent(),
                disk: None,
            }
        }
        Some((part, others)) => {
            for other in others {
                log::warn!(
                    "data: /dev/{} is also named {}; using /dev/{}",
                    other.name,
                    paths::DATA_PARTITION_NAME,
                    part.name
                );
            }
            log::debug!(
                "data: found /dev/{} after {} ms",
                part.name,
                started.elapsed().as_millis()
            );
            let status = bring_up(part);
            if status.state == DataState::Failed {
                log::error!(
                    "data: FAILED {}: {}; {} is a tmpfs",
                    status.device.as_deref().unwrap_or("?"),
                    status.error.as_deref().unwrap_or("?"),
                    paths::STATE_DIR
                );
                mount_tmpfs("husk-data-failed");
            }
            Outcome {
                status,
                disk: Some(part.disk.clone()),
            }
        }
    }
}

/// /var/lib/husk as a tmpfs, named after why (`source` shows in
/// /proc/mounts).
fn mount_tmpfs(source: &str) {
    if let Err(e) = sys::mount_fs(
        source,
        paths::STATE_DIR,
        "tmpfs",
        DATA_FLAGS,
        Some(c"mode=0755"),
    ) {
        log::error!("data: mount tmpfs on {}: {e}", paths::STATE_DIR);
    }
}

fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

/// Grow, check, mount, grow the filesystem.
fn bring_up(part: &find::Partition) -> DataPartition {
    let device = format!("/dev/{}", part.name);
    let mut status = DataPartition {
        state: DataState::Failed,
        device: Some(device.clone()),
        error: None,
        fsck: None,
        grown: false,
        size_bytes: 0,
    };

    // 1. The partition, before anything uses it.
    let started = Instant::now();
    match grow::grow(part, paths::DATA_PARTITION_NAME) {
        Ok(Some(g)) => {
            status.grown = true;
            log::info!(
                "data: grew partition {} from {} MiB to {} MiB in {} ms",
                paths::DATA_PARTITION_NAME,
                mib(g.from),
                mib(g.to),
                started.elapsed().as_millis()
            );
        }
        Ok(None) => {}
        // The data is still fine at its old size.
        Err(e) => log::warn!("data: cannot grow partition {}: {e}", part.name),
    }

    // 2. The check.
    let check = fsck::run(Path::new(paths::E2FSCK), Path::new(&device));
    status.fsck = Some(check.verdict.fsck());
    for line in &check.output {
        log::info!("data: e2fsck: {line}");
    }
    let ms = check.elapsed.as_millis();
    match check.verdict {
        fsck::Verdict::Clean => log::info!("data: e2fsck {device}: clean in {ms} ms"),
        fsck::Verdict::Corrected { reboot_advised } => {
            log::warn!("data: e2fsck {device}: errors corrected in {ms} ms");
            if reboot_advised {
                log::warn!("data: e2fsck advises a reboot; going on (nothing is mounted yet)");
            }
        }
        fsck::Verdict::Skipped => log::warn!(
            "data: e2fsck {device}: skipped: {}; the kernel still replays the journal",
            check.detail
        ),
        fsck::Verdict::Failed => {
            status.error = Some(format!("e2fsck: {}; not mounted", check.detail));
            return status;
        }
    }

    // 3. The mount. A device without ext4 is reported, never formatted.
    let sb = match ext4::read(Path::new(&device)) {
        Ok(sb) => sb,
        Err(e) => {
            status.error = Some(format!("reading the ext4 superblock: {e}"));
            return status;
        }
    };
    // Project quotas enforced where the filesystem has them (husk-image
    // makes them); an older data partition mounts without.
    let options = sb.project_quota.then_some(c"prjquota");
    if let Err(e) = sys::mount_fs(&device, paths::STATE_DIR, "ext4", DATA_FLAGS, options) {
        status.error = Some(format!("mount ext4 on {}: {e}", paths::STATE_DIR));
        return status;
    }
    status.state = DataState::Mounted;
    status.size_bytes = sb.bytes();
    log::info!(
        "data: mounted {device} at {} ({} MiB{})",
        paths::STATE_DIR,
        mib(sb.bytes()),
        if sb.project_quota {
            ", project quotas"
        } else {
            ""
        }
    );

    // 4. The filesystem, online, to the partition's (possibly new) size.
    match grow_fs(part, sb) {
        Ok(Some(bytes)) => {
            status.grown = true;
            status.size_bytes = bytes;
        }
        Ok(None) => {}
        Err(e) => log::warn!("data: cannot grow the filesystem on {device}: {e}"),
    }
    status
}

/// Resizes the mounted filesystem to fill the partition, if it does not.
fn grow_fs(part: &find::Partition, sb: ext4::Superblock) -> std::io::Result<Option<u64>> {
    let size_path = format!("/sys/class/block/{}/size", part.name);
    let sectors: u64 = sys::read_capped(Path::new(&size_path), 64)?
        .trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, size_path))?;
    let blocks = sectors.saturating_mul(512) / sb.block_size;
    if blocks <= sb.blocks {
        return Ok(None);
    }
    let started = Instant::now();
    let dir = std::fs::File::open(paths::STATE_DIR)?;
    sys::ext4_resize_fs(&dir, blocks)?;
    let bytes = blocks * sb.block_size;
    log::info!(
        "data: grew filesystem to {} MiB in {} ms",
        mib(bytes),
        started.elapsed().as_millis()
    );
    Ok(Some(bytes))
}
