//! Runtime errors. Every failing system call is wrapped with the step it
//! belonged to, so `create` says `mounting proc on /proc: EPERM (…)` and not
//! a bare errno.

use std::fmt;
use std::io;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A step failed with an OS error.
    #[error("{step}: {}", OsError(source))]
    Os { step: String, source: io::Error },
    /// The bundle's config.json is unusable.
    #[error("invalid bundle config: {0}")]
    Config(String),
    /// The spec asks for something this runtime does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    /// The operation does not fit the container's status.
    #[error("container {id} is {status}: {what}")]
    Status {
        id: String,
        status: String,
        what: String,
    },
    /// The container's init failed during setup (its own message).
    #[error("container init: {message}")]
    Init { message: String },
    /// A hook the init runs (createContainer) failed: its message.
    #[error("container init: {message}")]
    InitHook { message: String },
    /// A hook failed (it is named, with its exit status and output).
    #[error("{phase} hook {path}: {message}")]
    Hook {
        phase: &'static str,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    pub fn os(step: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Os {
            step: step.into(),
            source: source.into(),
        }
    }
}

/// `.step(|| "mounting proc")` on any io/rustix result.
pub trait Step<T> {
    fn step<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<io::Error>> Step<T> for std::result::Result<T, E> {
    fn step<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::os(step(), e))
    }
}

/// Shows an OS error as `ENAME (description)`, the way people grep for it.
struct OsError<'a>(&'a io::Error);

impl fmt::Display for OsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.raw_os_error().and_then(errno_name) {
            Some(name) => {
                let text = self.0.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text);
                write!(f, "{name} ({text})")
            }
            None => self.0.fmt(f),
        }
    }
}

fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    })
}
