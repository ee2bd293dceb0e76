//! `agent_toml`: the agent's `/etc/husk/agent.toml` parser
//! ([`husk_agent::config::AgentConfig::parse`]) and the checks it runs
//! (logs, `[update]`).

use husk_agent::config::AgentConfig;
use husk_agent::update::settings::{in_window, parse_window};

pub fn run(data: &[u8]) {
    // `AgentConfig::load` reads the file as UTF-8; anything else is a
    // read error before the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AgentConfig::parse(text) {
        Ok(config) => {
            // The update agent's window check, on a validated window.
            if let Some(window) = &config.update.apply_window {
                let window = parse_window(window).expect("a validated window parses");
                let _ = (0..24 * 60)
                    .step_by(97)
                    .filter(|&m| in_window(window, m))
                    .count();
            }
        }
        Err(e) => {
            let _ = e.len();
        }
    }
}
