//! A small synchronous QMP client: JSON lines over QEMU's unix socket.
//!
//! Asynchronous events (SHUTDOWN, RESET, POWERDOWN, …) arrive interleaved
//! with command replies; they are kept in [`Qmp::events`] so a test can
//! assert on them after the fact.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::deadline::scaled;
use crate::error::{Error, Result};

/// How long QEMU may take to answer one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// One message from QEMU, as far as the client cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Greeting(Value),
    Event(Value),
    Return {
        id: Option<Value>,
        value: Value,
    },
    Error {
        id: Option<Value>,
        class: String,
        desc: String,
    },
}

/// Sorts a parsed QMP message; `None` for anything unrecognised.
pub fn classify(message: Value) -> Option<Message> {
    let obj = message.as_object()?;
    let id = obj.get("id").cloned();
    if obj.contains_key("QMP") {
        Some(Message::Greeting(message))
    } else if obj.contains_key("event") {
        Some(Message::Event(message))
    } else if let Some(value) = obj.get("return") {
        Some(Message::Return {
            id,
            value: value.clone(),
        })
    } else if let Some(error) = obj.get("error") {
        let text = |key: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        Some(Message::Error {
            id,
            class: text("class"),
            desc: text("desc"),
        })
    } else {
        None
    }
}

#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Bytes of a message not yet terminated by '\n' (kept across read
    /// timeouts so nothing is lost).
    pending: Vec<u8>,
    events: Vec<Value>,
    next_id: u64,
}

impl Qmp {
    /// Connects to `path`, retrying until QEMU has created the socket or
    /// `timeout` passes. `check_alive` runs between attempts so that a
    /// QEMU that died at startup fails fast with its own error message.
    pub fn connect(
        path: &Path,
        timeout: Duration,
        mut check_alive: impl FnMut() -> Result<()>,
    ) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::io(
                        format!("connecting to QMP at {} for {timeout:?}", path.display()),
                        e,
                    ));
                }
                Err(_) => {
                    check_alive()?;
                    thread::sleep(CONNECT_RETRY);
                }
            }
        };
        Qmp::handshake(stream)
    }

    /// Reads the greeting and leaves capabilities-negotiation mode.
    pub fn handshake(stream: UnixStream) -> Result<Qmp> {
        let writer = stream
            .try_clone()
            .map_err(|e| Error::io("cloning the QMP socket", e))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            pending: Vec::new(),
            events: Vec::new(),
            next_id: 1,
        };
        // QEMU 7.2 can put an event it emits while the machine starts
        // (RESUME) on the socket before the greeting: kept, not fatal.
        loop {
            match qmp.read_message(scaled(COMMAND_TIMEOUT))? {
                Some(Message::Greeting(_)) => break,
                Some(Message::Event(_)) => continue,
                other => return Err(Error::Qmp(format!("expected a greeting, got {other:?}"))),
            }
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value, collecting any
    /// events that arrive before the reply.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(format!("sending QMP {command}"), e))?;

        let timeout = scaled(COMMAND_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let ours = |reply_id: &Option<Value>| reply_id.as_ref().and_then(Value::as_u64) == Some(id);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_message(left)? {
                Some(Message::Return { id: reply, value }) if ours(&reply) => return Ok(value),
                Some(Message::Error {
                    id: reply,
                    class,
                    desc,
                }) if ours(&reply) => {
                    return Err(Error::QmpCommand {
                        command: command.to_owned(),
                        class,
                        desc,
                    });
                }
                // Events were recorded by read_message; stale replies skipped.
                Some(_) => {}
                None => {
                    return Err(Error::Qmp(format!(
                        "no reply to {command} within {timeout:?}"
                    )));
                }
            }
        }
    }

    /// Every event received so far, oldest first.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Whether an event named `name` (e.g. "RESET") has been received.
    pub fn has_event(&self, name: &str) -> bool {
        self.events.iter().any(|e| e["event"] == name)
    }

    /// Returns the first event named `name`, waiting up to `timeout`
    /// (scaled) for it to arrive. Events QEMU sent just before exiting
    /// can still be read.
    pub fn wait_for_event(&mut self, name: &str, timeout: Duration) -> Result<Value> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.iter().find(|e| e["event"] == name) {
                return Ok(event.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Qmp(format!(
                    "no {name} event within {timeout:?}; events so far: {:?}",
                    self.events
                )));
            }
            // Only events can arrive unasked; read_message records them.
            self.read_message(left)?;
        }
    }

    /// ACPI power button press.
    pub fn system_powerdown(&mut self) -> Result<()> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Hard reset, as the reset button.
    pub fn system_reset(&mut self) -> Result<()> {
        self.execute("system_reset", None).map(drop)
    }

    /// Presses the keys together, e.g. `&["ctrl", "alt", "delete"]`
    /// (QEMU "qcode" names).
    pub fn send_key(&mut self, keys: &[&str]) -> Result<()> {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "type": "qcode", "data": k }))
            .collect();
        self.execute("send-key", Some(json!({ "keys": keys })))
            .map(drop)
    }

    /// Asks QEMU to exit. It may close the socket before replying, which
    /// counts as success.
    pub fn quit(&mut self) -> Result<()> {
        match self.execute("quit", None) {
            Ok(_) => Ok(()),
            Err(Error::Qmp(msg)) if msg.contains("closed") => Ok(()),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads one message, waiting at most `timeout`; `None` on timeout.
    /// Events are recorded before being returned.
    fn read_message(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| Error::io("setting the QMP read timeout", e))?;
            match self.reader.read_until(b'\n', &mut self.pending) {
                Ok(0) => return Err(Error::Qmp("QEMU closed the QMP socket".to_owned())),
                Ok(_) if self.pending.ends_with(b"\n") => {}
                // EOF in the middle of a message: the next read says 0.
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading from QMP", e)),
            }
            let line = std::mem::take(&mut self.pending);
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(text.trim())
                .map_err(|e| Error::Qmp(format!("bad JSON from QEMU ({e}): {text}")))?;
            match classify(value) {
                Some(Message::Event(event)) => {
                    self.events.push(event.clone());
                    return Ok(Some(Message::Event(event)));
                }
                Some(message) => return Ok(Some(message)),
                None => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}"#;

    /// A fake QEMU: sends the greeting, then for each request line calls
    /// `respond(request) -> lines to send back`. Returns the requests seen.
    fn fake_qemu(
        respond: impl Fn(&Value) -> Vec<String> + Send + 'static,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        JoinHandle<Vec<Value>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writeln!(writer, "{GREETING}\r").unwrap();
            let mut seen = Vec::new();
            for line in BufReader::new(stream).lines() {
                let request: Value = serde_json::from_str(&line.unwrap()).unwrap();
                for reply in respond(&request) {
                    write!(writer, "{reply}\r\n").unwrap();
                }
                let quit = request["execute"] == "quit";
                seen.push(request);
                if quit {
                    break;
                }
            }
            seen
        });
        (dir, path, server)
    }

    fn ok(request: &Value) -> String {
        json!({ "return": {}, "id": request["id"] }).to_string()
    }

    fn alive() -> Result<()> {
        Ok(())
    }

    #[test]
    fn classify_sorts_messages() {
        assert!(matches!(
            classify(serde_json::from_str(GREETING).unwrap()),
            Some(Message::Greeting(_))
        ));
        assert!(matches!(
            classify(json!({"event": "RESET", "data": {"guest": true}})),
            Some(Message::Event(_))
        ));
        assert_eq!(
            classify(json!({"return": {"status": "running"}, "id": 4})),
            Some(Message::Return {
                id: Some(json!(4)),
                value: json!({"status": "running"})
            })
        );
        assert_eq!(
            classify(json!({"error": {"class": "GenericError", "desc": "nope"}})),
            Some(Message::Error {
                id: None,
                class: "GenericError".into(),
                desc: "nope".into()
            })
        );
        assert_eq!(classify(json!([1, 2])), None);
    }

    #[test]
    fn negotiates_then_returns_command_results_and_keeps_events() {
        let (_dir, path, server) = fake_qemu(|request| match request["execute"].as_str() {
            Some("query-status") => vec![
                r#"{"event": "POWERDOWN", "timestamp": {"seconds": 1, "microseconds": 2}}"#
                    .to_owned(),
                json!({ "return": {"status": "running"}, "id": request["id"] }).to_string(),
            ],
            _ => vec![ok(request)],
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        let status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status["status"], "running");
        assert!(qmp.has_event("POWERDOWN"));
        assert!(!qmp.has_event("RESET"));
        qmp.quit().unwrap();
        let seen = server.join().unwrap();
        let commands: Vec<_> = seen
            .iter()
            .map(|r| r["execute"].as_str().unwrap())
            .collect();
        assert_eq!(commands, ["qmp_capabilities", "query-status", "quit"]);
    }

    #[test]
    fn send_key_uses_qcodes() {
        let (_dir, path, server) = fake_qemu(|request| vec![ok(request)]);
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        qmp.send_key(&["ctrl", "alt", "delete"]).unwrap();
        qmp.quit().unwrap();
        let seen = server.join().unwrap();
        assert_eq!(
            seen[1]["arguments"],
            json!({"keys": [
                {"type": "qcode", "data": "ctrl"},
                {"type": "qcode", "data": "alt"},
                {"type": "qcode", "data": "delete"},
            ]})
        );
    }

    #[test]
    fn command_errors_carry_class_and_description() {
        let (_dir, path, server) = fake_qemu(|request| {
            if request["execute"] == "bogus" {
                vec![json!({"error": {"class": "CommandNotFound", "desc": "The command bogus has not been found"}, "id": request["id"]}).to_string()]
            } else {
                vec![ok(request)]
            }
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        let err = qmp.execute("bogus", None).unwrap_err();
        assert!(
            matches!(&err, Error::QmpCommand { class, .. } if class == "CommandNotFound"),
            "{err}"
        );
        qmp.quit().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn events_arriving_later_can_be_awaited() {
        let (_dir, path, server) = fake_qemu(|request| {
            let mut replies = vec![ok(request)];
            if request["execute"] == "system_reset" {
                replies.push(r#"{"event": "RESET", "data": {"guest": false}}"#.to_owned());
            }
            replies
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        qmp.system_reset().unwrap();
        let event = qmp.wait_for_event("RESET", Duration::from_secs(5)).unwrap();
        assert_eq!(event["data"]["guest"], false);
        let err = qmp
            .wait_for_event("SHUTDOWN", Duration::from_millis(100))
            .unwrap_err();
        assert!(err.to_string().contains("no SHUTDOWN event"), "{err}");
        qmp.quit().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn connecting_waits_for_the_socket_to_appear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.sock");
        let server_path = path.clone();
        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let listener = UnixListener::bind(&server_path).unwrap();
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writeln!(writer, "{GREETING}").unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap();
            writeln!(writer, "{}", ok(&request)).unwrap();
        });
        Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn connecting_stops_when_qemu_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let err = Qmp::connect(
            &dir.path().join("never.sock"),
            Duration::from_secs(30),
            || Err(Error::Qmp("qemu died".into())),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "QMP: qemu died");
    }

    #[test]
    fn an_event_before_the_greeting_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("early.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writeln!(
                writer,
                r#"{{"event": "RESUME", "timestamp": {{"seconds": 1, "microseconds": 0}}}}"#
            )
            .unwrap();
            writeln!(writer, "{GREETING}").unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap();
            writeln!(writer, "{}", ok(&request)).unwrap();
        });
        let qmp = Qmp::connect(&path, Duration::from_secs(5), alive).unwrap();
        assert_eq!(qmp.events.len(), 1);
        assert_eq!(qmp.events[0]["event"], "RESUME");
        server.join().unwrap();
    }
}
