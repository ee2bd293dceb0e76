//! Well-known paths of a running Husk machine. See docs/ARCHITECTURE.md.

/// husk-init's configuration, baked into the initramfs by husk-image.
pub const INIT_CONFIG: &str = "/etc/husk/init.toml";
/// Runtime state that lives until shutdown (tmpfs).
pub const RUN_DIR: &str = "/run/husk";
/// Directory in which init creates one sd_notify socket per service.
pub const NOTIFY_DIR: &str = "/run/husk/notify";
/// The agent's API socket (HTTP/JSON, root only).
pub const AGENT_SOCKET: &str = "/run/husk/agent.sock";
/// Persistent state: the data partition's mount point.
pub const STATE_DIR: &str = "/var/lib/husk";
/// Where husk-image installs Husk's own binaries.
pub const AGENT_BIN: &str = "/usr/bin/husk-agent";
/// Kernel modules, as `/usr/lib/modules/<release>/`.
pub const MODULES_DIR: &str = "/usr/lib/modules";
/// The GPT partition name (and ext4 label) of the data partition, which
/// husk-init mounts on [`STATE_DIR`].
pub const DATA_PARTITION_NAME: &str = "husk-data";
/// The GPT partition name of the EFI system partition, which holds the
/// boot loader and the UKIs (the update agent writes there).
pub const ESP_PARTITION_NAME: &str = "esp";
/// What became of the data partition at boot (JSON, written by husk-init,
/// served by the agent as `GET /v1/system`). The same object is `data`
/// in [`BOOT_FACTS`].
pub const DATA_STATUS: &str = "/run/husk/data.json";
/// What husk-init learnt about this boot: trial or not, the boot disk,
/// the ESP, the data partition's outcome (JSON, [`crate::boot::BootFacts`]),
/// written once before the services start.
pub const BOOT_FACTS: &str = "/run/husk/boot.json";
/// The static e2fsck husk-image puts in the initramfs.
pub const E2FSCK: &str = "/usr/sbin/e2fsck";
