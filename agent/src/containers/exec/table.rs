//! The execs made to be started on an upgraded connection (Docker's
//! `exec create` then `exec start`, Husk's upgraded exec), in memory
//! only: each is created, started once, and kept after its end so its
//! exit code can be asked (the Docker CLI asks right after the stream
//! ends). The table is bounded, as dockerd's is not: a finished exec is
//! forgotten [`KEEP_ENDED`] after its end, or with its container (a
//! container of the same name made later is another container); when
//! [`MAX_EXECS`] are still there, the oldest ended one, then the oldest
//! never started, makes room; if every one runs, a new one is refused.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use husk_api::containers::{ExecInfo, ExecRequest};

/// Execs remembered at once.
pub const MAX_EXECS: usize = 1024;
/// How long an ended exec is remembered.
pub const KEEP_ENDED: Duration = Duration::from_secs(5 * 60);

/// What an exec runs and how its client is attached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub request: ExecRequest,
    /// Whether the client gets the process's stdout and stderr (Docker's
    /// `AttachStdout`, `AttachStderr`; a tty's one stream is both).
    pub stdout: bool,
    pub stderr: bool,
    /// Docker's `DetachKeys` as given (None: the default).
    pub detach_keys: Option<String>,
    /// The pty's first size (rows, cols), unless the start gives one.
    pub size: Option<(u16, u16)>,
}

/// One exec.
pub struct Exec {
    /// 64 hex digits, as dockerd's.
    pub id: String,
    /// The container's name.
    pub container: String,
    /// The container's creation time: a container made later under the
    /// same name does not own this exec.
    pub container_created_ms: u64,
    pub config: ExecConfig,
    created: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    phase: Phase,
    pid: Option<i32>,
    /// Where the runtime writes the pid once the process runs.
    pid_file: Option<PathBuf>,
    exit_code: Option<i32>,
    /// The pty master while the process runs: resizes.
    master: Option<Arc<AsyncFd<OwnedFd>>>,
    /// A size asked before the master came (the CLI resizes as soon as
    /// its start returned).
    size: Option<(u16, u16)>,
}

impl State {
    /// The pid, from the file the runtime writes once the process runs.
    fn read_pid(&mut self) {
        if self.pid.is_none()
            && let Some(file) = &self.pid_file
        {
            self.pid = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.trim().parse().ok());
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Created,
    Running,
    Ended(Instant),
}

/// Why an exec cannot be started or resized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecStateError {
    #[error("exec {0} is already running")]
    Running(String),
    #[error("exec {0} has already run")]
    Ended(String),
    #[error("exec {0} is not running")]
    NotRunning(String),
    #[error("exec {0} has no terminal (made without tty)")]
    NoTerminal(String),
}

/// Why a resize failed.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error(transparent)]
    State(#[from] ExecStateError),
    #[error("TIOCSWINSZ on its pty: {0}")]
    Pty(#[from] std::io::Error),
}

/// A look at an exec now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecView {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub running: bool,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
}

impl ExecView {
    /// Husk's answer.
    pub fn info(&self) -> ExecInfo {
        ExecInfo {
            id: self.id.clone(),
            container: self.container.clone(),
            cmd: self.config.request.cmd.clone(),
            tty: self.config.request.tty,
            interactive: self.config.request.interactive,
            running: self.running,
            pid: self.pid,
            exit_code: self.exit_code,
        }
    }
}

impl Exec {
    pub fn new(
        id: String,
        container: String,
        container_created_ms: u64,
        config: ExecConfig,
    ) -> Self {
        Self {
            id,
            container,
            container_created_ms,
            config,
            created: Instant::now(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks it running (once: a second start is refused), with the pid
    /// file the runtime will write and the size the client asked for.
    pub fn begin(&self, pid_file: PathBuf, size: Option<(u16, u16)>) -> Result<(), ExecStateError> {
        let mut state = self.state();
        match state.phase {
            Phase::Running => return Err(ExecStateError::Running(self.id.clone())),
            Phase::Ended(_) => return Err(ExecStateError::Ended(self.id.clone())),
            Phase::Created => {}
        }
        state.phase = Phase::Running;
        state.pid_file = Some(pid_file);
        state.size = size.or(state.size);
        Ok(())
    }

    /// The pty master came: resizes go to it, the one asked before first.
    pub fn set_master(&self, master: Arc<AsyncFd<OwnedFd>>) {
        let mut state = self.state();
        if let Some((rows, cols)) = state.size.take()
            && let Err(e) = crate::containers::console::resize(master.get_ref(), rows, cols)
        {
            log::debug!("exec {}: resizing its pty: {e}", self.id);
        }
        state.master = Some(master);
    }

    /// Sets the size of the exec's pty, now or once it has one.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), ResizeError> {
        let mut state = self.state();
        if !self.config.request.tty {
            return Err(ExecStateError::NoTerminal(self.id.clone()).into());
        }
        if let Phase::Ended(_) = state.phase {
            return Err(ExecStateError::NotRunning(self.id.clone()).into());
        }
        match &state.master {
            Some(master) => Ok(crate::containers::console::resize(
                master.get_ref(),
                rows,
                cols,
            )?),
            None => {
                state.size = Some((rows, cols));
                Ok(())
            }
        }
    }

    /// The process ended (or never started) with this code; call it
    /// before the pid file goes, to keep the pid.
    pub fn finish(&self, exit_code: i32) {
        let mut state = self.state();
        state.read_pid();
        state.phase = Phase::Ended(Instant::now());
        state.exit_code = Some(exit_code);
        state.master = None;
        state.pid_file = None;
    }

    pub fn view(&self) -> ExecView {
        let mut state = self.state();
        if state.phase == Phase::Running {
            state.read_pid();
        }
        ExecView {
            id: self.id.clone(),
            container: self.container.clone(),
            config: self.config.clone(),
            running: state.phase == Phase::Running,
            pid: state.pid,
            exit_code: state.exit_code,
        }
    }

    fn phase(&self) -> Phase {
        self.state().phase
    }
}

/// The table, by id.
#[derive(Default)]
pub struct Execs(Mutex<BTreeMap<String, Arc<Exec>>>);

/// Every exec still there runs: no room for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_EXECS} execs are running: wait for one to end")]
pub struct TableFull;

impl Execs {
    fn table(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Exec>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an exec, after forgetting what is to be forgotten (`owned`:
    /// whether its container is still the one it was made in).
    pub fn insert(
        &self,
        exec: Exec,
        now: Instant,
        owned: impl Fn(&Exec) -> bool,
    ) -> Result<Arc<Exec>, TableFull> {
        let mut table = self.table();
        prune(&mut table, now, &owned);
        if table.len() >= MAX_EXECS {
            let oldest = |ended: bool| {
                table
                    .values()
                    .filter(|e| match e.phase() {
                        Phase::Ended(_) => ended,
                        Phase::Created => !ended,
                        Phase::Running => false,
                    })
                    .min_by_key(|e| e.created)
                    .map(|e| e.id.clone())
            };
            let victim = oldest(true).or_else(|| oldest(false)).ok_or(TableFull)?;
            table.remove(&victim);
        }
        let exec = Arc::new(exec);
        table.insert(exec.id.clone(), Arc::clone(&exec));
        Ok(exec)
    }

    /// The exec `id`, unless it is to be forgotten.
    pub fn get(&self, id: &str, now: Instant, owned: impl Fn(&Exec) -> bool) -> Option<Arc<Exec>> {
        let mut table = self.table();
        prune(&mut table, now, &owned);
        table.get(id).cloned()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().len()
    }
}

fn prune(table: &mut BTreeMap<String, Arc<Exec>>, now: Instant, owned: &impl Fn(&Exec) -> bool) {
    table.retain(|_, exec| {
        let expired = match exec.phase() {
            Phase::Ended(at) => now.saturating_duration_since(at) >= KEEP_ENDED,
            _ => false,
        };
        !expired && owned(exec)
    });
}

/// A new exec id: 32 random bytes in hex.
pub fn new_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        filled +=
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(n: usize, container: &str) -> Exec {
        Exec::new(
            format!("{n:064x}"),
            container.into(),
            1,
            ExecConfig::default(),
        )
    }

    #[test]
    fn ids_are_64_hex_digits_and_new_each_time() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn an_exec_starts_once() {
        let e = exec(1, "web");
        e.begin("/p".into(), None).unwrap();
        assert!(matches!(
            e.begin("/p".into(), None),
            Err(ExecStateError::Running(_))
        ));
        assert!(e.view().running);
        e.finish(3);
        assert!(matches!(
            e.begin("/p".into(), None),
            Err(ExecStateError::Ended(_))
        ));
        let view = e.view();
        assert!(!view.running);
        assert_eq!(view.exit_code, Some(3));
    }

    #[test]
    fn a_size_asked_before_the_pty_waits_for_it_and_a_plain_exec_has_none() {
        let mut tty = exec(1, "web");
        tty.config.request.tty = true;
        tty.resize(30, 90).unwrap();
        assert_eq!(tty.state().size, Some((30, 90)));
        tty.finish(0);
        assert!(tty.resize(30, 90).is_err());
        let plain = exec(2, "web");
        let err = plain.resize(30, 90).unwrap_err();
        assert!(err.to_string().contains("no terminal"), "{err}");
    }

    #[test]
    fn ended_execs_are_forgotten_after_a_while_or_with_their_container() {
        let table = Execs::default();
        let now = Instant::now();
        let all = |_: &Exec| true;
        let done = table.insert(exec(1, "web"), now, all).unwrap();
        done.finish(0);
        table.insert(exec(2, "web"), now, all).unwrap();
        table.insert(exec(3, "db"), now, all).unwrap();
        assert!(table.get(&done.id, now + KEEP_ENDED / 2, all).is_some());
        let later = Instant::now() + KEEP_ENDED;
        assert!(table.get(&done.id, later, all).is_none());
        // Not ended: kept however old.
        assert!(table.get(&format!("{:064x}", 2), later, all).is_some());
        // Its container went.
        let gone = |e: &Exec| e.container != "db";
        assert!(table.get(&format!("{:064x}", 3), later, gone).is_none());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_full_table_makes_room_from_the_ended_then_the_unstarted_never_the_running() {
        let table = Execs::default();
        let now = Instant::now();
        let all = |_: &Exec| true;
        let mut execs = Vec::new();
        for n in 0..MAX_EXECS {
            let e = table.insert(exec(n, "web"), now, all).unwrap();
            e.begin("/p".into(), None).unwrap();
            execs.push(e);
        }
        assert_eq!(
            table.insert(exec(MAX_EXECS, "web"), now, all).err(),
            Some(TableFull)
        );
        execs[7].finish(0);
        execs[5].finish(0);
        table.insert(exec(MAX_EXECS, "web"), now, all).unwrap();
        // The oldest ended one went; the other ended one stays.
        assert!(table.get(&execs[5].id, now, all).is_none());
        assert!(table.get(&execs[7].id, now, all).is_some());
        // A never-started one goes before a running one.
        let unstarted = table.get(&format!("{MAX_EXECS:064x}"), now, all).unwrap();
        table.insert(exec(MAX_EXECS + 1, "web"), now, all).unwrap();
        assert!(table.get(&execs[7].id, now, all).is_none());
        table.insert(exec(MAX_EXECS + 2, "web"), now, all).unwrap();
        assert!(table.get(&unstarted.id, now, all).is_none());
        assert_eq!(table.len(), MAX_EXECS);
        assert!(table.get(&execs[0].id, now, all).is_some());
    }
}
