//! The boot facts ([`husk_common::boot::BootFacts`]): what init learnt
//! while booting — trial or not, the boot disk, its ESP, the data
//! partition's outcome — written once to /run/husk/boot.json, and the
//! data partition's part to /run/husk/data.json, after the data partition
//! is set up and before the services start. The agent reads them instead
//! of scanning sysfs and the ESP again.

use std::path::Path;

use husk_common::boot::{BootFacts, Trial};
use husk_common::paths;

use crate::data_partition::{self, find};

/// The facts. `class_block`: /sys/class/block; `efi`: efivarfs is
/// mounted; `trial`: `LoaderBootCountPath`, when set; `data`: what the
/// data partition's setup did. The ESP is the partition named `esp` on
/// the data partition's disk: an ESP elsewhere (another disk attached,
/// an installer's medium) is not the one this machine boots from.
pub fn gather(
    class_block: &Path,
    efi: bool,
    trial: Option<&str>,
    data: data_partition::Outcome,
) -> BootFacts {
    let esp = data
        .disk
        .as_deref()
        .and_then(|disk| esp_on(class_block, disk));
    BootFacts {
        trial: Trial::new(efi, trial.map(str::to_owned)),
        disk: data.disk.map(|disk| format!("/dev/{disk}")),
        esp,
        data: data.status,
    }
}

/// The ESP's device on `disk` (`/dev/vda1`), the first in name order.
fn esp_on(class_block: &Path, disk: &str) -> Option<String> {
    let found = find::on_disk(class_block, paths::ESP_PARTITION_NAME, disk);
    let Some((esp, others)) = found.split_first() else {
        log::info!(
            "boot: no {} partition on /dev/{disk}",
            paths::ESP_PARTITION_NAME
        );
        return None;
    };
    for other in others {
        log::warn!(
            "boot: /dev/{} is also named {}; using /dev/{}",
            other.name,
            paths::ESP_PARTITION_NAME,
            esp.name
        );
    }
    log::info!("boot: ESP /dev/{} on /dev/{disk}", esp.name);
    Some(format!("/dev/{}", esp.name))
}

/// Writes `facts.data` to `data_path` (data.json) and `facts` to
/// `boot_path` (boot.json), each atomically. Failures are logged: the
/// boot goes on, and the agent reports the missing file.
pub fn publish(facts: &BootFacts, data_path: &Path, boot_path: &Path) {
    for path in [data_path, boot_path] {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            log::error!("boot: creating {}: {e}", dir.display());
        }
    }
    if let Err(e) = facts.data.write(data_path) {
        log::error!("data: writing {}: {e}", data_path.display());
    }
    if let Err(e) = facts.write(boot_path) {
        log::error!("boot: writing {}: {e}", boot_path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_partition::find::fake;
    use husk_common::boot::{DataPartition, DataState, Fsck};

    fn mounted() -> DataPartition {
        DataPartition {
            state: DataState::Mounted,
            device: Some("/dev/vda2".into()),
            error: None,
            fsck: Some(Fsck::Clean),
            grown: false,
            size_bytes: 1 << 30,
        }
    }

    #[test]
    fn the_esp_is_the_data_disks() {
        let dir = tempfile::tempdir().unwrap();
        // Another disk's ESP comes first in name order and is not ours.
        fake::disk(dir.path(), "sda", &[(1, "esp")]);
        let class = fake::disk(dir.path(), "vda", &[(1, "esp"), (2, "husk-data")]);
        let entry = "\\EFI\\Linux\\husk-2.0+2-1.efi";
        let data = data_partition::Outcome {
            status: mounted(),
            disk: Some("vda".into()),
        };
        let facts = gather(&class, true, Some(entry), data);
        assert_eq!(
            facts,
            BootFacts {
                trial: Trial {
                    efi: true,
                    on_trial: true,
                    entry: Some(entry.into()),
                },
                disk: Some("/dev/vda".into()),
                esp: Some("/dev/vda1".into()),
                data: mounted(),
            }
        );
        assert_eq!(facts.trial.entry_name(), Some("husk-2.0+2-1.efi"));

        // A data disk without an ESP: none, not sda's.
        let class = fake::disk(dir.path(), "vdb", &[(1, "husk-data")]);
        let data = data_partition::Outcome {
            status: mounted(),
            disk: Some("vdb".into()),
        };
        let facts = gather(&class, true, None, data);
        assert_eq!(facts.disk.as_deref(), Some("/dev/vdb"));
        assert_eq!(facts.esp, None);
        assert!(facts.trial.efi && !facts.trial.on_trial);
    }

    #[test]
    fn no_data_partition_no_disk_no_esp() {
        let dir = tempfile::tempdir().unwrap();
        let class = fake::disk(dir.path(), "vda", &[(1, "esp")]);
        let data = data_partition::Outcome {
            status: DataPartition::absent(),
            disk: None,
        };
        let facts = gather(&class, false, None, data);
        assert_eq!(
            facts,
            BootFacts {
                trial: Trial::unknown(),
                disk: None,
                esp: None,
                data: DataPartition::absent(),
            }
        );
    }

    #[test]
    fn both_files_are_written_from_the_facts() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run/husk");
        let (data_path, boot_path) = (run.join("data.json"), run.join("boot.json"));
        let facts = BootFacts {
            trial: Trial::new(true, None),
            disk: Some("/dev/vda".into()),
            esp: Some("/dev/vda1".into()),
            data: mounted(),
        };
        publish(&facts, &data_path, &boot_path);
        assert_eq!(BootFacts::read(&boot_path).unwrap(), facts);
        assert_eq!(
            std::fs::read_to_string(&data_path).unwrap(),
            "{\"state\":\"mounted\",\"device\":\"/dev/vda2\",\"error\":null,\"fsck\":\"clean\",\"grown\":false,\"size_bytes\":1073741824}\n"
        );
        let mut names: Vec<_> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["boot.json", "data.json"]);

        // Where nothing can be written: logged, not fatal.
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        publish(
            &facts,
            &blocked.join("data.json"),
            &blocked.join("boot.json"),
        );
    }
}
