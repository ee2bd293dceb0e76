//! What the machine's operator allows containers to ask for: a host
//! shared by several tenants must be able to refuse privileged containers
//! and the host's network.

use serde::{Deserialize, Serialize};

/// The agent's limits on [`RunOptions`](super::RunOptions). The default
/// refuses everything that weakens isolation; an operator opts in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Allow `privileged: true` (all capabilities, no seccomp, /sys
    /// writable): root in such a container is root on the machine.
    pub allow_privileged: bool,
    /// Allow `network: host`: the container sees and binds the host's
    /// interfaces.
    pub allow_host_network: bool,
}

impl SecurityPolicy {
    /// Everything allowed: a single-tenant machine, or tests.
    pub fn permissive() -> Self {
        Self {
            allow_privileged: true,
            allow_host_network: true,
        }
    }
}
