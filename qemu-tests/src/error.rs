//! The harness's one error type. Every failure a test can hit while
//! driving a VM ends up here, carrying enough context (the serial tail,
//! where the logs are) that the test output alone explains what happened.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "timed out after {waited:?} waiting for {what}\n\
         --- last lines of the serial console ({serial}) ---\n{tail}"
    )]
    Timeout {
        what: String,
        waited: Duration,
        tail: String,
        serial: PathBuf,
    },

    #[error(
        "QEMU exited ({status}) while waiting for {what}\n\
         --- last lines of the serial console ({serial}) ---\n{tail}\n\
         --- QEMU's own output ---\n{qemu_log}"
    )]
    QemuExited {
        what: String,
        status: ExitStatus,
        tail: String,
        serial: PathBuf,
        qemu_log: String,
    },

    /// The kernel panicked while the test waited for something else.
    #[error(
        "the guest kernel panicked while waiting for {what}: {line}\n\
         --- last lines of the serial console ({serial}) ---\n{tail}"
    )]
    GuestPanicked {
        what: String,
        line: String,
        tail: String,
        serial: PathBuf,
    },

    /// husk-check reported FAIL for a scenario.
    #[error(
        "husk-check {scenario} failed: {line}\n\
         --- last lines of the serial console ({serial}) ---\n{tail}"
    )]
    CheckFailed {
        scenario: String,
        line: String,
        tail: String,
        serial: PathBuf,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The QMP conversation itself went wrong (no greeting, bad JSON, EOF).
    #[error("QMP: {0}")]
    Qmp(String),

    /// QEMU understood a QMP command and refused it.
    #[error("QMP command {command} failed: {class}: {desc}")]
    QmpCommand {
        command: String,
        class: String,
        desc: String,
    },

    /// Something the host must provide is missing; the message says what
    /// to install.
    #[error("missing prerequisite: {0}")]
    Prerequisite(String),

    /// Building the image binaries or the initramfs failed.
    #[error("build: {0}")]
    Build(String),
}

impl Error {
    /// Replaces what a timed-out or interrupted wait was for.
    pub(crate) fn waiting_for(mut self, description: String) -> Self {
        if let Error::Timeout { what, .. } | Error::QemuExited { what, .. } = &mut self {
            *what = description;
        }
        self
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Debug delegates to Display so that a test returning `Result<(), Error>`
/// prints the serial tail as readable lines, not one escaped string.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Adds a context message to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(context(), source))
    }
}

impl From<husk_binaries::Error> for Error {
    fn from(e: husk_binaries::Error) -> Self {
        let husk_binaries::Error::Build(message) = e;
        Error::Build(message)
    }
}
