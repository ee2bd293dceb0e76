//! Attaching to a container and resizing its terminal: connections to
//! its shim's `attach.sock` and `control.sock` (the shim serves both; see
//! `shim::attach`).
//!
//! A container attached before its start (`huskctl run -it`, as docker
//! attaches before it starts) is waited for: the attach leaves a token
//! here, the start hands the shim the number of live tokens, and the shim
//! lets that many clients connect before it starts the container, so
//! they see its first byte of output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::error::{ManagerError, Result};
use super::info::Status;
use super::manager::{Manager, Slot};
use super::shim::{Control, ControlReply, attach_socket, control_socket};

/// How often a waiting attach tries the shim's socket.
const RETRY: Duration = Duration::from_millis(20);
/// How long a waiting attach may wait for the start once it began.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long a created container may wait for its start with a client
/// attached.
const CREATED_WAIT: Duration = Duration::from_secs(3600);
/// How long the shim may take to answer a resize.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Attach clients waiting for a start, by container run directory.
static WAITING: Mutex<BTreeMap<PathBuf, Vec<Weak<()>>>> = Mutex::new(BTreeMap::new());

/// The number of clients waiting for this container's start (taken:
/// the next start waits for none).
pub(super) fn take_waiting(slot: &Slot) -> usize {
    let mut waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    waiting.remove(&slot.paths.run).map_or(0, |tokens| {
        tokens.iter().filter(|t| t.strong_count() > 0).count()
    })
}

/// An attach: connected to a running container's shim, or waiting for a
/// created container's start.
pub struct Attaching {
    inner: Pending,
}

enum Pending {
    Connected(UnixStream),
    Waiting {
        slot: Arc<Slot>,
        generation: u64,
        /// Keeps this client counted until it connects or gives up.
        _token: Arc<()>,
    },
}

impl Attaching {
    /// The connection to the shim's attach socket (waiting for the start
    /// when the container was created).
    pub async fn connect(self) -> Result<UnixStream> {
        let (slot, generation, token) = match self.inner {
            Pending::Connected(stream) => return Ok(stream),
            Pending::Waiting {
                slot,
                generation,
                _token,
            } => (slot, generation, _token),
        };
        let socket = attach_socket(&slot.paths.run);
        let mut deadline = Instant::now() + CREATED_WAIT;
        let mut started = false;
        loop {
            let snapshot = slot.snapshot();
            if snapshot.removed {
                return Err(ManagerError::Conflict(format!(
                    "container {} was removed",
                    slot.name
                )));
            }
            if !started && snapshot.generation != generation {
                started = true;
                deadline = Instant::now() + START_WAIT;
            }
            if started && let Ok(stream) = UnixStream::connect(&socket).await {
                drop(token);
                return Ok(stream);
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::Conflict(format!(
                    "container {} was not started in time for its attach",
                    slot.name
                )));
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

impl Manager {
    /// Attaches to the container: a running one's shim now, a created
    /// one's at its start. A stopped one is refused.
    pub async fn attach(&self, name: &str) -> Result<Attaching> {
        let slot = self.slot(name)?;
        let snapshot = slot.snapshot();
        match snapshot.status {
            Status::Running => {
                let socket = attach_socket(&slot.paths.run);
                let stream = UnixStream::connect(&socket).await.map_err(|e| {
                    ManagerError::Conflict(format!(
                        "container {name}: its shim does not take attach clients ({e})"
                    ))
                })?;
                Ok(Attaching {
                    inner: Pending::Connected(stream),
                })
            }
            Status::Created => {
                let token = Arc::new(());
                WAITING
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(slot.paths.run.clone())
                    .or_default()
                    .push(Arc::downgrade(&token));
                Ok(Attaching {
                    inner: Pending::Waiting {
                        generation: snapshot.generation,
                        slot,
                        _token: token,
                    },
                })
            }
            Status::Exited | Status::Restarting => Err(ManagerError::Conflict(format!(
                "container {name} is not running: start it first"
            ))),
        }
    }

    /// Sets the size of a running tty container's terminal.
    pub async fn resize(&self, name: &str, rows: u16, cols: u16) -> Result<()> {
        let slot = self.slot(name)?;
        let snapshot = slot.snapshot();
        if !snapshot.record.options.tty {
            return Err(ManagerError::Conflict(format!(
                "container {name} has no terminal (created without tty)"
            )));
        }
        if snapshot.status != Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        }
        let socket = control_socket(&slot.paths.run);
        let exchange = async {
            let mut stream = UnixStream::connect(&socket).await?;
            let mut line = serde_json::to_vec(&Control::Resize { rows, cols })?;
            line.push(b'\n');
            stream.write_all(&line).await?;
            let mut reply = String::new();
            BufReader::new(stream).read_line(&mut reply).await?;
            let reply: ControlReply = serde_json::from_str(&reply)?;
            Ok::<_, std::io::Error>(reply)
        };
        let reply = tokio::time::timeout(CONTROL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                ManagerError::io(
                    format!("resizing {name}'s terminal"),
                    std::io::ErrorKind::TimedOut.into(),
                )
            })?
            .map_err(|e| ManagerError::io(format!("resizing {name}'s terminal"), e))?;
        match reply.error {
            None => Ok(()),
            Some(error) => Err(ManagerError::Conflict(format!("container {name}: {error}"))),
        }
    }
}
