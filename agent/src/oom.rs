//! Who the kernel's OOM killer picks when a container's memory runs out
//! of the machine: never Husk's own agent first, nor the shims that keep
//! the containers' logs and exit codes, as containerd does for itself
//! and its shims. Containers get their spec's value (husk-spec's default
//! is 0), which the runtime writes, so they do not inherit this.

/// The agent's: the lowest a process not essential to the kernel gets.
pub const AGENT: i32 = -999;

const PATH: &str = "/proc/self/oom_score_adj";

/// Shields the agent (on a Husk machine: it needs CAP_SYS_RESOURCE).
pub fn protect_agent() {
    if let Err(e) = std::fs::write(PATH, AGENT.to_string()) {
        log::warn!("oom_score_adj {AGENT}: {e}");
    }
}

/// A shim: one above the agent that started it (a raise, which needs no
/// privilege), so under pressure a shim goes before the agent.
pub fn shim_above_agent() {
    let inherited = std::fs::read_to_string(PATH)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(adj) = inherited.filter(|adj| *adj < 1000) {
        let _ = std::fs::write(PATH, (adj + 1).to_string());
    }
}
