//! `init_toml`: husk-init's `/etc/husk/init.toml` parser
//! ([`husk_init::config::parse_bytes`], what `config::read` does with the
//! file's bytes). PID 1 must never panic: the kernel panics with it.

pub fn run(data: &[u8]) {
    match husk_init::config::parse_bytes("/etc/husk/init.toml", data) {
        Ok(config) => {
            // What the boot and the supervisor read of it.
            let _ = config.shutdown_timeout();
            for service in &config.services {
                let _ = (service.name(), service.restart.to_string());
                let _ = service.env_pairs().count();
            }
        }
        // Logged as one line of the log contract: it must format.
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
