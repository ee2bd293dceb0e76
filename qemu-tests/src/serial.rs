//! Tailing the serial console that QEMU writes to a file.
//!
//! The log is read incrementally into complete lines. A [`SerialCursor`]
//! is an index into those lines: waits look only at lines after a cursor,
//! so a test can wait for "the *next* `husk-init: starting`" (after a
//! reboot) as easily as for "a line that may already be there".

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the file is polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many lines of console an error message carries.
pub const TAIL_LINES: usize = 60;

/// A position in the serial log: "after the first N complete lines".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SerialCursor(pub usize);

impl SerialCursor {
    /// Before the first line: waits from here also see old output.
    pub const START: SerialCursor = SerialCursor(0);
}

/// What a wait found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The whole matching line (without line terminator).
    pub line: String,
    /// Which of the alternatives matched (always 0 for single needles).
    pub needle: usize,
    /// Just after the matching line.
    pub after: SerialCursor,
}

#[derive(Debug)]
pub struct SerialLog {
    path: PathBuf,
    /// Bytes of the file already consumed into `lines`/`partial`.
    read_offset: u64,
    /// The current line, not yet terminated by '\n'.
    partial: Vec<u8>,
    lines: Vec<String>,
    /// Where waits without an explicit cursor start; advanced past
    /// each match.
    cursor: SerialCursor,
}

impl SerialLog {
    /// A reader for `path`, which need not exist yet (QEMU creates it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SerialLog {
            path: path.into(),
            read_offset: 0,
            partial: Vec::new(),
            lines: Vec::new(),
            cursor: SerialCursor::START,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The default cursor: just after the last line a wait matched.
    pub fn cursor(&self) -> SerialCursor {
        self.cursor
    }

    /// After everything received so far: "only output from now on".
    pub fn end(&mut self) -> io::Result<SerialCursor> {
        self.refresh()?;
        Ok(SerialCursor(self.lines.len()))
    }

    /// Moves the default cursor (e.g. to [`Self::end`]).
    pub fn set_cursor(&mut self, cursor: SerialCursor) {
        self.cursor = cursor;
    }

    /// All complete lines received so far.
    pub fn lines(&mut self) -> io::Result<&[String]> {
        self.refresh()?;
        Ok(&self.lines)
    }

    /// Reads whatever QEMU appended since the last call.
    pub fn refresh(&mut self) -> io::Result<()> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.read_offset {
            // Truncated (a new QEMU reused the path): start over.
            self.read_offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.read_offset))?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        self.read_offset += chunk.len() as u64;
        for &byte in &chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.lines.push(clean_line(&line));
            } else {
                self.partial.push(byte);
            }
        }
        Ok(())
    }

    /// The first line after `from` containing one of `needles`, if any
    /// has arrived; does not wait.
    pub fn find(&mut self, from: SerialCursor, needles: &[&str]) -> io::Result<Option<Found>> {
        self.refresh()?;
        Ok(self.find_in_lines(from, needles))
    }

    fn find_in_lines(&self, from: SerialCursor, needles: &[&str]) -> Option<Found> {
        let start = from.0.min(self.lines.len());
        self.lines[start..]
            .iter()
            .enumerate()
            .find_map(|(offset, line)| {
                let needle = needles.iter().position(|n| line.contains(n))?;
                Some(Found {
                    line: line.clone(),
                    needle,
                    after: SerialCursor(start + offset + 1),
                })
            })
    }

    /// How many lines received so far contain `needle`.
    pub fn count(&mut self, needle: &str) -> io::Result<usize> {
        self.refresh()?;
        Ok(self.lines.iter().filter(|l| l.contains(needle)).count())
    }

    /// The last `n` lines, including an unterminated last line, for
    /// error messages. Never fails: a broken log must not hide the
    /// original error.
    pub fn tail(&mut self, n: usize) -> String {
        if let Err(e) = self.refresh() {
            return format!("(cannot read {}: {e})", self.path.display());
        }
        let mut tail: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let partial = clean_line(&self.partial);
        if !partial.is_empty() {
            tail.push(&partial);
        }
        if tail.is_empty() {
            return "(the serial console is empty)".to_owned();
        }
        let skip = tail.len().saturating_sub(n);
        tail[skip..].join("\n")
    }

    /// Polls until a line after `from` contains one of `needles`, the
    /// deadline passes, or `exited` reports that QEMU is gone. On success
    /// the default cursor moves past the match (never backwards).
    ///
    /// `timeout` is used as given; callers scale it.
    pub fn wait_for(
        &mut self,
        from: SerialCursor,
        needles: &[&str],
        timeout: Duration,
        mut exited: impl FnMut() -> io::Result<Option<ExitStatus>>,
        qemu_log: impl FnOnce() -> String,
    ) -> Result<Found> {
        let what = describe(needles);
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .find(from, needles)
                .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
            if let Some(found) = found {
                self.cursor = self.cursor.max(found.after);
                return Ok(found);
            }
            let status = exited().map_err(|e| Error::io("checking on QEMU", e))?;
            if let Some(status) = status {
                // The line may have landed between our read and the exit.
                if let Ok(Some(found)) = self.find(from, needles) {
                    self.cursor = self.cursor.max(found.after);
                    return Ok(found);
                }
                return Err(Error::QemuExited {
                    what,
                    status,
                    tail: self.tail(TAIL_LINES),
                    serial: self.path.clone(),
                    qemu_log: qemu_log(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what,
                    waited: timeout,
                    tail: self.tail(TAIL_LINES),
                    serial: self.path.clone(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Serial output ends lines with "\r\n" and may carry stray bytes.
fn clean_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn describe(needles: &[&str]) -> String {
    match needles {
        [one] => format!("a serial line containing {one:?}"),
        many => format!("a serial line containing any of {many:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;

    fn append(path: &Path, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn running() -> io::Result<Option<ExitStatus>> {
        Ok(None)
    }

    fn no_log() -> String {
        String::new()
    }

    const SHORT: Duration = Duration::from_millis(200);

    #[test]
    fn a_missing_file_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SerialLog::new(dir.path().join("serial.log"));
        assert!(log.lines().unwrap().is_empty());
        assert_eq!(log.tail(5), "(the serial console is empty)");
    }

    #[test]
    fn lines_are_split_and_carriage_returns_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        append(&path, "one\r\ntwo\nthr");
        let mut log = SerialLog::new(&path);
        assert_eq!(log.lines().unwrap(), ["one", "two"]);
        append(&path, "ee\r\n");
        assert_eq!(log.lines().unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn partial_lines_do_not_match_until_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        append(&path, "husk-init: boot: agent re");
        let mut log = SerialLog::new(&path);
        assert_eq!(
            log.find(SerialCursor::START, &["agent ready"]).unwrap(),
            None
        );
        assert!(log.tail(5).ends_with("agent re"), "partial line in tail");
        append(&path, "ady 5 ms\n");
        let found = log
            .find(SerialCursor::START, &["agent ready"])
            .unwrap()
            .unwrap();
        assert_eq!(found.line, "husk-init: boot: agent ready 5 ms");
    }

    #[test]
    fn waits_see_output_appended_while_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let writer_path = path.clone();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            append(&writer_path, "noise\nhusk-init: starting\n");
        });
        let mut log = SerialLog::new(&path);
        let found = log
            .wait_for(
                log.cursor(),
                &["starting"],
                Duration::from_secs(5),
                running,
                no_log,
            )
            .unwrap();
        writer.join().unwrap();
        assert_eq!(found.line, "husk-init: starting");
        assert_eq!(found.after, SerialCursor(2));
    }

    #[test]
    fn the_cursor_moves_past_each_match_so_repeats_need_new_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        // Both lines arrive in one read: the second wait must still see B.
        append(&path, "A starting\nB ready\nC starting\n");
        let mut log = SerialLog::new(&path);
        let first = log
            .wait_for(log.cursor(), &["starting"], SHORT, running, no_log)
            .unwrap();
        assert!(first.line.starts_with('A'));
        let ready = log
            .wait_for(log.cursor(), &["ready"], SHORT, running, no_log)
            .unwrap();
        assert!(ready.line.starts_with('B'));
        let second = log
            .wait_for(log.cursor(), &["starting"], SHORT, running, no_log)
            .unwrap();
        assert!(second.line.starts_with('C'));
        let err = log
            .wait_for(log.cursor(), &["starting"], SHORT, running, no_log)
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }

    #[test]
    fn waiting_from_the_start_finds_old_lines_without_rewinding_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        append(&path, "early\nmiddle\nlate\n");
        let mut log = SerialLog::new(&path);
        log.wait_for(log.cursor(), &["late"], SHORT, running, no_log)
            .unwrap();
        assert_eq!(log.cursor(), SerialCursor(3));
        let early = log
            .wait_for(SerialCursor::START, &["early"], SHORT, running, no_log)
            .unwrap();
        assert_eq!(early.line, "early");
        assert_eq!(log.cursor(), SerialCursor(3), "cursor went backwards");
    }

    #[test]
    fn any_of_several_needles_reports_which_matched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        append(&path, "x\nKernel panic - not syncing\n");
        let mut log = SerialLog::new(&path);
        let found = log
            .wait_for(
                log.cursor(),
                &["agent ready", "Kernel panic"],
                SHORT,
                running,
                no_log,
            )
            .unwrap();
        assert_eq!(found.needle, 1);
    }

    #[test]
    fn timeouts_carry_the_last_lines_and_the_log_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        append(&path, &text);
        let mut log = SerialLog::new(&path);
        let err = log
            .wait_for(log.cursor(), &["never"], SHORT, running, no_log)
            .unwrap_err();
        let Error::Timeout {
            tail,
            serial,
            waited,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*waited, SHORT);
        assert_eq!(serial, &path);
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.ends_with("line 99"));
        assert!(tail.starts_with("line 40"));
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn qemu_exiting_ends_the_wait_early() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        append(&path, "reboot: Power down\n");
        let mut log = SerialLog::new(&path);
        let started = Instant::now();
        let err = log
            .wait_for(
                log.cursor(),
                &["never"],
                Duration::from_secs(30),
                || Ok(Some(ExitStatus::from_raw(0))),
                || "qemu said bye".to_owned(),
            )
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let Error::QemuExited { tail, qemu_log, .. } = &err else {
            panic!("{err}")
        };
        assert!(tail.contains("Power down"));
        assert_eq!(qemu_log, "qemu said bye");
    }

    #[test]
    fn a_line_written_just_before_exit_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let mut log = SerialLog::new(&path);
        let exit_path = path.clone();
        let found = log
            .wait_for(
                log.cursor(),
                &["shutdown: power off"],
                Duration::from_secs(5),
                move || {
                    append(&exit_path, "husk-init: shutdown: power off\n");
                    Ok(Some(ExitStatus::from_raw(0)))
                },
                no_log,
            )
            .unwrap();
        assert_eq!(found.line, "husk-init: shutdown: power off");
    }
}
