//! `husk-init poweroff` / `husk-init reboot`: run as an ordinary command,
//! husk-init asks PID 1 to shut down by sending it the matching signal.

use std::io::Write;

use nix::sys::signal::Signal;

const USAGE: &str = "usage: husk-init poweroff|reboot\n\
                     (as PID 1, husk-init is the init system and takes no arguments)";

/// Runs the command; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let (sig, what) = match args.get(1).map(String::as_str) {
        Some("poweroff") if args.len() == 2 => (Signal::SIGUSR2, "power off"),
        Some("reboot") if args.len() == 2 => (Signal::SIGTERM, "reboot"),
        _ => {
            let _ = writeln!(std::io::stderr(), "{USAGE}");
            return 2;
        }
    };
    match crate::sys::signal_init(sig) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "husk-init: cannot ask PID 1 to {what} (sending {}): {e}",
                sig.as_str()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(main(&args(&["husk-init"])), 2);
        assert_eq!(main(&args(&["husk-init", "halt"])), 2);
        assert_eq!(main(&args(&["husk-init", "reboot", "now"])), 2);
    }
}
