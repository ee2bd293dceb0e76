//! Step-by-step progress on stderr. On a terminal the running step is one
//! line redrawn in place with a spinner and its elapsed time; otherwise
//! (CI logs) each step prints one plain line when it ends:
//! `husk-image: [3/7] esp: 256 MiB (1.0 s)`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
const TICK: Duration = Duration::from_millis(100);

/// A sequence of `total` steps.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    index: usize,
    terminal: bool,
    current: Option<Step>,
}

#[derive(Debug)]
struct Step {
    name: String,
    started: Instant,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// A duration as `1.0 s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

impl Progress {
    /// Progress for `total` steps, drawn in place when stderr is a terminal.
    pub fn new(total: usize) -> Self {
        Self::with_terminal(total, std::io::stderr().is_terminal())
    }

    pub fn with_terminal(total: usize, terminal: bool) -> Self {
        Self {
            total,
            index: 0,
            terminal,
            current: None,
        }
    }

    fn prefix(&self) -> String {
        format!("husk-image: [{}/{}]", self.index, self.total)
    }

    /// Starts the next step.
    pub fn start(&mut self, name: &str) {
        self.stop_ticker();
        self.index += 1;
        let ticker = self.terminal.then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let label = format!("{} {name}", self.prefix());
            let started = Instant::now();
            let flag = Arc::clone(&stop);
            let handle = std::thread::spawn(move || {
                let mut frame = 0;
                while !flag.load(Ordering::Relaxed) {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(
                        err,
                        "\r\x1b[2K{label} {} {}",
                        SPINNER[frame % SPINNER.len()],
                        seconds(started.elapsed())
                    );
                    let _ = err.flush();
                    drop(err);
                    frame += 1;
                    std::thread::sleep(TICK);
                }
            });
            (stop, handle)
        });
        self.current = Some(Step {
            name: name.to_owned(),
            started: Instant::now(),
            ticker,
        });
    }

    /// Ends the current step with a one-line result; returns its duration.
    pub fn done(&mut self, detail: &str) -> Duration {
        self.stop_ticker();
        let Some(step) = self.current.take() else {
            return Duration::ZERO;
        };
        let elapsed = step.started.elapsed();
        let line = format!(
            "{} {}: {detail} ({})",
            self.prefix(),
            step.name,
            seconds(elapsed)
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{line}");
        elapsed
    }

    fn stop_ticker(&mut self) {
        if let Some((stop, handle)) = self.current.as_mut().and_then(|s| s.ticker.take()) {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

impl Drop for Progress {
    /// A failed step leaves no half-drawn line behind the error message.
    fn drop(&mut self) {
        let was_running = self.current.as_ref().is_some_and(|s| s.ticker.is_some());
        self.stop_ticker();
        if was_running {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_count_and_time() {
        let mut p = Progress::with_terminal(2, false);
        p.start("one");
        assert_eq!(p.prefix(), "husk-image: [1/2]");
        p.done("ok");
        p.start("two");
        std::thread::sleep(Duration::from_millis(20));
        assert!(p.done("ok") >= Duration::from_millis(20));
        assert_eq!(seconds(Duration::from_millis(1049)), "1.0 s");
    }

    #[test]
    fn the_terminal_ticker_stops() {
        let mut p = Progress::with_terminal(1, true);
        p.start("spin");
        std::thread::sleep(Duration::from_millis(150));
        p.done("ok");
        p.start("again");
        drop(p);
    }
}
