//! What the machine's operator allows containers to ask for: a host
//! shared by several tenants must be able to refuse privileged containers
//! and the host's network.

use serde::{Deserialize, Serialize};

/// The agent's limits on [`RunOptions`](super::RunOptions). The default
/// refuses everything that weakens isolation; an operator opts in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityPolicy {
    /// `required` (container-as-a-service hosts): every container runs in
    /// a user namespace of its own, its root an unprivileged host uid; a
    /// container that asks for none gets `userns_auto`.
    pub userns: UsernsPolicy,
    /// Allow `privileged: true` (all capabilities, no seccomp, /sys
    /// writable): root in such a container is root on the machine.
    pub allow_privileged: bool,
    /// Allow `network: host`: the container sees and binds the host's
    /// interfaces.
    pub allow_host_network: bool,
    /// Allow `metadata_access: true`: a bridged container reaching the
    /// cloud's metadata service (169.254.169.254, fd00:ec2::254), and with
    /// it the machine's instance credentials.
    pub allow_metadata_access: bool,
    /// Host directories containers may bind (`-v /host/path:/in`), each
    /// with what is below it; empty (the default): none. Never allowed
    /// with `userns = "required"` (the agent refuses that configuration).
    pub bind_mounts: Vec<std::path::PathBuf>,
}

/// agent.toml `[security] userns`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsernsPolicy {
    /// A container runs in a user namespace when it asks (the default).
    #[default]
    Optional,
    /// Every container does.
    Required,
}

impl SecurityPolicy {
    /// What agent.toml's `[security]` may not say: a bind directory that
    /// is not an absolute path without `..`, or bind directories on a
    /// machine that runs every container in a user namespace.
    pub fn validate(&self) -> Result<(), String> {
        for dir in &self.bind_mounts {
            let clean = dir.is_absolute()
                && dir
                    .components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir));
            if !clean {
                return Err(format!(
                    "security: bind_mounts entry {} is not an absolute path without `..`",
                    dir.display()
                ));
            }
        }
        if !self.bind_mounts.is_empty() && self.userns == UsernsPolicy::Required {
            return Err(
                "security: bind_mounts and userns = \"required\" exclude each other: \
                 a machine shared by tenants shares no host paths with containers"
                    .into(),
            );
        }
        Ok(())
    }

    /// Everything allowed: a single-tenant machine, or tests.
    pub fn permissive() -> Self {
        Self {
            userns: UsernsPolicy::Optional,
            allow_privileged: true,
            allow_host_network: true,
            allow_metadata_access: true,
            bind_mounts: vec!["/".into()],
        }
    }
}
