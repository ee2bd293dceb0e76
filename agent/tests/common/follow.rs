//! A command that runs on while the test goes on (`docker events`,
//! `docker-compose up`): its output read line by line as it comes, each
//! wait with a deadline, and the command killed when the test is done
//! with it, passed or not.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Following {
    child: Child,
    what: String,
    lines: mpsc::Receiver<String>,
    /// Every line so far, for the failure message.
    pub seen: Vec<String>,
}

impl Following {
    /// Starts `command` with stdout and stderr both read as lines.
    pub fn start(command: &mut Command, what: &str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let (send, lines) = mpsc::channel();
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if send.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self {
            child,
            what: what.to_owned(),
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `text` (returned), or panics with
    /// what came after `limit`.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{} printed no {text:?} in {limit:?}; it printed:\n{}",
                    self.what,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the command to end by itself: its exit code, and every
    /// line it printed.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not end by itself in {limit:?}; it printed:\n{}",
                self.what,
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The readers end at the pipes' EOF.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
