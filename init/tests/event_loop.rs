//! The event loop end to end, in an ordinary process made a child
//! subreaper (so orphans come back to it as they would to PID 1).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use husk_init::event_loop::Init;
use husk_init::signals::Signals;
use husk_init::supervisor::{State, Supervisor};

/// Captures log lines.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

static LOG: Capture = Capture(Mutex::new(Vec::new()));

fn lines() -> Vec<String> {
    LOG.0.lock().unwrap().clone()
}

fn wait_for_line(init: &mut Init, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !lines().iter().any(|l| l.contains(what)) {
        assert!(Instant::now() < deadline, "no {what:?} in {:#?}", lines());
        let timeout = init
            .supervisor
            .next_timer()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        init.pump(Some(timeout)).unwrap();
        init.supervisor.run_timers(Instant::now());
    }
}

#[test]
fn services_run_exit_restart_and_orphans_are_reaped() {
    log::set_logger(&LOG).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[[service]]
name = "orphans"
command = ["/bin/sh", "-c", "sleep 0.2 & echo spawned $!; exit 0"]
restart = "never"

[[service]]
name = "crasher"
command = ["/bin/sh", "-c", "echo crashing; exit 3"]
restart = "on-failure"

[[service]]
name = "ready"
command = ["/bin/sh", "-c", "echo up; exec sleep 30"]
restart = "always"
"#;
    let config = husk_init::config::parse("test.toml", text).unwrap();
    let supervisor = Supervisor::new(&config.services, Path::new(dir.path()));
    let mut init = Init::new(
        Signals::install().unwrap(),
        supervisor,
        husk_init::power_button::Buttons::new(),
        Instant::now(),
    );
    init.supervisor.start_all(Instant::now());

    wait_for_line(&mut init, "orphans: spawned", Duration::from_secs(10));
    wait_for_line(
        &mut init,
        "service orphans: exited with status 0",
        Duration::from_secs(10),
    );
    wait_for_line(&mut init, "reaped orphan pid", Duration::from_secs(10));
    wait_for_line(&mut init, "crasher: crashing", Duration::from_secs(10));
    wait_for_line(
        &mut init,
        "service crasher: crash loop: 5 failures, giving up",
        Duration::from_secs(20),
    );
    let log = lines();
    let starts = log
        .iter()
        .filter(|l| l.starts_with("service crasher: started"))
        .count();
    assert_eq!(starts, 5, "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == "service crasher: exited with status 3"),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "ready: up"), "{log:#?}");
    assert_eq!(init.supervisor.services()[1].state, State::GaveUp);
    assert_eq!(init.supervisor.services()[0].state, State::Stopped);

    // SIGTERM to ourselves is a reboot request.
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let action = loop {
        init.pump(Some(Duration::from_millis(100))).unwrap();
        if let Some(a) = init.take_shutdown() {
            break a;
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(action, husk_init::sys::PowerAction::Reboot);

    init.supervisor.begin_stopping();
    init.supervisor.signal(2, nix::sys::signal::Signal::SIGTERM);
    wait_for_line(
        &mut init,
        "service ready: killed by signal SIGTERM",
        Duration::from_secs(10),
    );
    assert_eq!(init.supervisor.services()[2].state, State::Stopped);
}
