//! The `log` backend: one `write(2)` per line to `/dev/kmsg`, so init's
//! lines land in the kernel ring buffer (and on the serial console) as
//! `husk-init: …`. Before `/dev` exists it writes to the console instead.
//!
//! Lines are formatted into a fixed stack buffer: logging never allocates,
//! and an over-long line is truncated rather than split, because a kmsg
//! record is one write.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// What every line starts with, after the kmsg priority.
pub const IDENT: &str = "husk-init: ";
/// The longest record we write. The kernel's limit for a record is
/// 1024 bytes minus its own header; staying under 976 keeps a line whole.
pub const LINE_MAX: usize = 976;

static KMSG: OnceLock<File> = OnceLock::new();
static CONSOLE: OnceLock<File> = OnceLock::new();
static LOGGER: KmsgLogger = KmsgLogger;

struct KmsgLogger;

/// Installs the logger (at `level`). Safe to call more than once.
pub fn init(level: LevelFilter) {
    // Fails only when a logger is already set, which is then ours.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Switches output to `/dev/kmsg`. Returns false when it cannot be opened
/// (then the console fallback stays in use).
pub fn open_kmsg() -> bool {
    if KMSG.get().is_some() {
        return true;
    }
    match OpenOptions::new().write(true).open("/dev/kmsg") {
        Ok(file) => {
            let _ = KMSG.set(file);
            true
        }
        Err(_) => {
            open_console();
            false
        }
    }
}

fn open_console() {
    if CONSOLE.get().is_none()
        && let Ok(file) = OpenOptions::new().write(true).open("/dev/console")
    {
        let _ = CONSOLE.set(file);
    }
}

/// The kmsg priority of a level (syslog severities).
pub fn kmsg_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// A fixed buffer that keeps what fits and silently drops the rest,
/// always leaving room for the final newline. Newlines inside a message
/// become spaces: one record is one line.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    /// The line so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn push_str_lossy(&mut self, s: &str) {
        // One byte stays reserved for the newline.
        let room = LINE_MAX.saturating_sub(1).saturating_sub(self.len);
        let mut take = s.len().min(room);
        if take < s.len() {
            self.truncated = true;
            while take > 0 && !s.is_char_boundary(take) {
                take -= 1;
            }
        }
        let Some(src) = s.as_bytes().get(..take) else {
            return;
        };
        let Some(dst) = self.buf.get_mut(self.len..self.len + take) else {
            return;
        };
        for (d, &b) in dst.iter_mut().zip(src) {
            *d = if b == b'\n' || b == b'\r' { b' ' } else { b };
        }
        self.len += take;
    }

    /// Ends the line with its newline.
    pub fn finish(&mut self) -> &[u8] {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b'\n';
            self.len += 1;
        }
        self.as_bytes()
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str_lossy(s);
        Ok(())
    }
}

/// Formats one record: `<P>husk-init: message\n` for kmsg (`priority`
/// given) or `husk-init: message\n` for a console.
pub fn format_line(out: &mut LineBuf, priority: Option<u8>, args: fmt::Arguments<'_>) {
    if let Some(p) = priority {
        let _ = write!(out, "<{p}>");
    }
    let _ = out.write_str(IDENT);
    let _ = out.write_fmt(args);
    out.finish();
}

/// Displays bytes as text without allocating: invalid UTF-8 becomes U+FFFD.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char('\u{FFFD}')?;
            }
        }
        Ok(())
    }
}

impl Log for KmsgLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = LineBuf::new();
        if let Some(mut kmsg) = KMSG.get() {
            format_line(
                &mut line,
                Some(kmsg_priority(record.level())),
                *record.args(),
            );
            let _ = kmsg.write(line.as_bytes());
            return;
        }
        format_line(&mut line, None, *record.args());
        match CONSOLE.get() {
            Some(mut console) => {
                let _ = console.write(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// `husk.debug` on the kernel command line turns on debug logging.
pub fn level_from_cmdline(cmdline: &str) -> LevelFilter {
    if cmdline.split_ascii_whitespace().any(|w| w == "husk.debug") {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(priority: Option<u8>, args: fmt::Arguments<'_>) -> Vec<u8> {
        let mut buf = LineBuf::new();
        format_line(&mut buf, priority, args);
        buf.as_bytes().to_vec()
    }

    #[test]
    fn kmsg_lines_carry_priority_and_ident() {
        assert_eq!(
            line(Some(6), format_args!("starting")),
            b"<6>husk-init: starting\n"
        );
        assert_eq!(
            line(None, format_args!("service {}: started (pid {})", "a", 7)),
            b"husk-init: service a: started (pid 7)\n"
        );
    }

    #[test]
    fn levels_map_to_syslog_severities() {
        assert_eq!(kmsg_priority(Level::Error), 3);
        assert_eq!(kmsg_priority(Level::Warn), 4);
        assert_eq!(kmsg_priority(Level::Info), 6);
        assert_eq!(kmsg_priority(Level::Debug), 7);
    }

    #[test]
    fn long_lines_are_truncated_and_still_end_in_newline() {
        let long = "x".repeat(5000);
        let out = line(Some(3), format_args!("{long}"));
        assert_eq!(out.len(), LINE_MAX);
        assert_eq!(out.last(), Some(&b'\n'));
        assert!(out.starts_with(b"<3>husk-init: xxx"));
    }

    #[test]
    fn truncation_keeps_utf8_whole() {
        let long = "é".repeat(2000);
        let out = line(Some(6), format_args!("{long}"));
        assert!(std::str::from_utf8(&out).is_ok());
        assert!(out.len() <= LINE_MAX);
    }

    #[test]
    fn embedded_newlines_do_not_split_records() {
        assert_eq!(line(Some(6), format_args!("a\nb")), b"<6>husk-init: a b\n");
    }

    #[test]
    fn lossy_replaces_invalid_bytes() {
        assert_eq!(Lossy(b"ok\xffok").to_string(), "ok\u{FFFD}ok");
    }

    #[test]
    fn debug_flag_on_cmdline() {
        assert_eq!(
            level_from_cmdline("console=ttyS0 husk.debug quiet\n"),
            LevelFilter::Debug
        );
        assert_eq!(
            level_from_cmdline("console=ttyS0 husk.debugx"),
            LevelFilter::Info
        );
    }
}
