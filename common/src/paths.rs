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
