//! Starting, stopping, killing and removing containers, and what happens
//! when one exits: the record, the restart policy, auto-removal.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::error::{IoContext, ManagerError, Result};
use super::info::{ContainerInfo, Status};
use super::logs::LogConfig;
use super::manager::{Manager, Slot};
use super::restart::{HEALTHY_RUN, delay, should_restart};
use super::shim::{ExitStatus, Overlay, ShimConfig, ShimPid, read_json, write_json};
use super::time::now_ms;
use husk_runtime::{Container, cgroups};

/// After SIGKILL, how long the manager waits for the shim to report.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Manager {
    /// Starts a created or exited container. Starting a running one does
    /// nothing.
    pub async fn start(&self, name: &str) -> Result<ContainerInfo> {
        let slot = self.slot(name)?;
        let guard = slot.op.lock().await;
        if slot.snapshot().status == Status::Running {
            return Ok(slot.info());
        }
        slot.update(|s| {
            s.generation += 1;
            s.quick_exits = 0;
            s.record.manually_stopped = false;
            s.record.restart_count = 0;
        });
        self.rebalance_storage();
        let started = self.spawn_shim(&slot).await;
        drop(guard);
        started.map(|()| slot.info())
    }

    /// A start the restart policy asked for (not the user).
    pub(super) async fn start_as_policy(&self, slot: &Arc<Slot>) -> Result<()> {
        let _guard = slot.op.lock().await;
        slot.update(|s| s.generation += 1);
        self.spawn_shim(slot).await
    }

    /// Runs the shim and waits for its report. Called under the slot's lock.
    async fn spawn_shim(&self, slot: &Arc<Slot>) -> Result<()> {
        let result = self.try_spawn_shim(slot).await;
        match &result {
            Ok((shim, init_pid, network)) => {
                let (shim, init_pid) = (*shim, *init_pid);
                let network = network.clone();
                slot.update(|s| {
                    s.network = network;
                    s.status = Status::Running;
                    s.shim = Some(shim);
                    s.init_pid = Some(init_pid);
                    s.record.started_ms = Some(now_ms());
                    s.record.finished_ms = None;
                    s.record.exit_code = None;
                    s.record.oom_killed = false;
                    s.record.error = None;
                });
                log::info!("{}: started (pid {init_pid})", slot.name);
                self.container_event(slot, "start", &[]);
                self.monitor(slot, shim, slot.snapshot().generation);
            }
            Err(e) => {
                let message = e.to_string();
                log::error!("{message}");
                slot.update(|s| {
                    if s.status == Status::Restarting {
                        s.status = Status::Exited;
                    }
                    s.record.error = Some(message);
                });
            }
        }
        result.map(|_| ())
    }

    async fn try_spawn_shim(
        &self,
        slot: &Slot,
    ) -> Result<(ShimPid, i32, Option<husk_api::containers::NetworkInfo>)> {
        let network = self.attach_network(slot).await?;
        let started = self.try_spawn_shim_attached(slot).await;
        if started.is_err() {
            self.detach_network(slot).await;
        }
        started.map(|(shim, pid)| (shim, pid, network))
    }

    async fn try_spawn_shim_attached(&self, slot: &Slot) -> Result<(ShimPid, i32)> {
        let paths = &slot.paths;
        let config = &self.0.config;
        std::fs::create_dir_all(&paths.run).at(&paths.run)?;
        for stale in [paths.exit(), paths.shim_pid()] {
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ManagerError::at(&stale, e));
                }
                _ => {}
            }
        }
        let lower = self.lower_layers(slot).await?;
        let shim = ShimConfig {
            name: slot.name.clone(),
            runtime_root: self.runtime_root(),
            bundle: paths.bundle(),
            overlay: Overlay {
                layers_dir: config.layout.layers(),
                lower,
                upper: paths.upper(),
                work: paths.work(),
                target: paths.rootfs(),
                idmap: slot.snapshot().record.options.userns,
            },
            cgroup: cgroup_dir(&slot.name),
            log: LogConfig {
                path: paths.log(),
                max_size: config.log_max_size,
                max_files: config.log_max_files,
            },
            pid_file: paths.shim_pid(),
            exit_file: paths.exit(),
            shim_log: paths.shim_log(),
            tty: slot.snapshot().record.options.tty,
            interactive: slot.snapshot().record.options.interactive,
            wait_attach: super::attach::take_waiting(slot),
        };
        write_json(&paths.shim_config(), &shim).at(&paths.shim_config())?;
        let output = tokio::process::Command::new(&config.agent_exe)
            .arg("shim")
            .arg(paths.shim_config())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .await
            .context(|| format!("running {} shim", config.agent_exe.display()))?;
        let report = String::from_utf8_lossy(&output.stdout);
        let report = report.trim();
        let failed = |reason: String| ManagerError::StartFailed {
            name: slot.name.clone(),
            reason,
        };
        let Some(pid) = report.strip_prefix("ok ") else {
            let reason = report.strip_prefix("error: ").unwrap_or(report);
            return Err(failed(if reason.is_empty() {
                format!("the shim exited with {}", output.status)
            } else {
                reason.to_string()
            }));
        };
        let init_pid: i32 = pid
            .parse()
            .map_err(|_| failed(format!("the shim reported `{report}`")))?;
        let shim: ShimPid = read_json(&paths.shim_pid()).at(&paths.shim_pid())?;
        Ok((shim, init_pid))
    }

    /// The image's layer directories for the overlay, top-most first, as
    /// names relative to the store's layers directory.
    pub(super) async fn lower_layers(&self, slot: &Slot) -> Result<Vec<PathBuf>> {
        let image = slot.snapshot().record.image_id;
        let store = self.store()?;
        let layers = tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            store.layer_paths(&image)
        })
        .await
        .map_err(|e| ManagerError::io("layers task", std::io::Error::other(e.to_string())))??;
        let mut lower: Vec<PathBuf> = layers
            .iter()
            .rev()
            .map(|p| {
                p.file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| p.clone())
            })
            .collect();
        if lower.is_empty() {
            lower.push(slot.paths.empty_lower());
        }
        Ok(lower)
    }

    /// Watches the shim; when it exits, records the exit and applies the
    /// restart policy.
    pub(super) fn monitor(&self, slot: &Arc<Slot>, shim: ShimPid, generation: u64) {
        let manager = self.clone();
        let slot = Arc::clone(slot);
        tokio::spawn(async move {
            wait_for_exit(shim, None).await;
            let guard = slot.op.lock().await;
            if slot.snapshot().generation != generation || slot.snapshot().removed {
                return; // a stop or removal already handled it
            }
            let restart = manager.record_exit(&slot).await;
            drop(guard);
            manager.after_exit(&slot, restart, generation).await;
        });
    }

    /// Reads what the shim left and updates the record. Returns whether
    /// the restart policy wants the container back. Called under the lock.
    pub(super) async fn record_exit(&self, slot: &Slot) -> bool {
        self.detach_network(slot).await;
        let status: Option<ExitStatus> = read_json(&slot.paths.exit()).ok();
        if status.is_none() {
            // The shim was killed: clean up after it.
            log::warn!(
                "{}: the shim exited without recording the container's exit",
                slot.name
            );
            if let Ok(container) = Container::load(&self.runtime_root(), &slot.name) {
                let _ = container.delete(true);
            }
        }
        let mut restart = false;
        slot.update(|s| {
            let finished = status.map_or_else(now_ms, |st| st.finished_ms);
            let ran = Duration::from_millis(
                finished.saturating_sub(s.record.started_ms.unwrap_or(finished)),
            );
            s.quick_exits = if ran >= HEALTHY_RUN {
                0
            } else {
                s.quick_exits.saturating_add(1)
            };
            s.record.finished_ms = Some(finished);
            s.record.exit_code = status.map(|st| st.exit_code);
            s.record.oom_killed = status.is_some_and(|st| st.oom_killed);
            s.shim = None;
            s.init_pid = None;
            restart = !s.record.options.auto_remove
                && should_restart(
                    s.record.restart_policy(),
                    s.record.exit_code.unwrap_or(255),
                    s.record.manually_stopped,
                    s.record.restart_count,
                );
            s.status = if restart {
                Status::Restarting
            } else {
                Status::Exited
            };
        });
        let s = slot.snapshot();
        log::info!(
            "{}: exited with {}{}",
            slot.name,
            s.record
                .exit_code
                .map_or_else(|| "an unknown status".to_string(), |c| c.to_string()),
            if s.record.oom_killed {
                " (OOM killed)"
            } else {
                ""
            }
        );
        if s.record.oom_killed {
            self.container_event(slot, "oom", &[]);
        }
        let code = s.record.exit_code.unwrap_or(255).to_string();
        self.container_event(slot, "die", &[("exitCode", code)]);
        restart
    }

    /// Restarts after the backoff, or removes an auto-remove container.
    pub(super) async fn after_exit(&self, slot: &Arc<Slot>, restart: bool, generation: u64) {
        let snapshot = slot.snapshot();
        if snapshot.record.options.auto_remove {
            if let Err(e) = self.remove_container(&slot.name, true, true).await {
                log::error!("{}: auto-remove: {e}", slot.name);
            }
            return;
        }
        if !restart {
            return;
        }
        let manager = self.clone();
        let slot = Arc::clone(slot);
        tokio::spawn(async move {
            let mut generation = generation;
            loop {
                let wait = delay(slot.snapshot().quick_exits.saturating_sub(1));
                log::info!("{}: restarting in {} ms", slot.name, wait.as_millis());
                tokio::time::sleep(wait).await;
                let guard = slot.op.lock().await;
                let s = slot.snapshot();
                if s.generation != generation || s.removed || s.status != Status::Restarting {
                    return; // stopped, removed or started by the user meanwhile
                }
                slot.update(|s| {
                    s.generation += 1;
                    s.record.restart_count += 1;
                });
                let started = manager.spawn_shim(&slot).await;
                generation = slot.snapshot().generation;
                drop(guard);
                if started.is_ok() {
                    return;
                }
                // A start that fails counts as a quick exit; the policy
                // decides whether to try again.
                let again = !slot.snapshot().record.manually_stopped
                    && should_restart(
                        slot.snapshot().record.restart_policy(),
                        255,
                        false,
                        slot.snapshot().record.restart_count,
                    );
                if !again {
                    return;
                }
                slot.update(|s| {
                    s.status = Status::Restarting;
                    s.quick_exits = s.quick_exits.saturating_add(1);
                });
            }
        });
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout`.
    /// No restart policy brings it back until it is started again.
    pub async fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<ContainerInfo> {
        let slot = self.slot(name)?;
        let _guard = slot.op.lock().await;
        slot.update(|s| {
            s.generation += 1;
            s.record.manually_stopped = true;
            if s.status == Status::Restarting {
                s.status = Status::Exited;
            }
        });
        let snapshot = slot.snapshot();
        let Some(shim) = snapshot.shim.filter(|_| snapshot.status == Status::Running) else {
            return Ok(slot.info());
        };
        let timeout = timeout.unwrap_or(self.0.config.stop_timeout);
        let signal = stop_signal(&slot);
        self.container_event(&slot, "kill", &[("signal", signal.to_string())]);
        self.signal_container(&slot.name, signal, false);
        if !wait_for_exit(shim, Some(timeout)).await {
            log::info!(
                "{}: still running {} s after signal {signal}: SIGKILL",
                slot.name,
                timeout.as_secs()
            );
            self.container_event(&slot, "kill", &[("signal", libc::SIGKILL.to_string())]);
            self.signal_container(&slot.name, libc::SIGKILL, true);
            wait_for_exit(shim, Some(KILL_WAIT)).await;
        }
        self.record_exit(&slot).await;
        self.container_event(&slot, "stop", &[]);
        Ok(slot.info())
    }

    /// Stops it (if it runs) and starts it again (`docker restart`).
    pub async fn restart(&self, name: &str, timeout: Option<Duration>) -> Result<ContainerInfo> {
        self.stop(name, timeout).await?;
        let info = self.start(name).await?;
        if let Ok(slot) = self.slot(name) {
            self.container_event(&slot, "restart", &[]);
        }
        Ok(info)
    }

    /// Sends `signal` to the container's init. As `docker kill`, it counts
    /// as a stop by the user for the restart policy.
    pub async fn kill(&self, name: &str, signal: i32) -> Result<ContainerInfo> {
        let slot = self.slot(name)?;
        let _guard = slot.op.lock().await;
        if slot.snapshot().status != Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        }
        slot.update(|s| s.record.manually_stopped = true);
        let container = Container::load(&self.runtime_root(), name)
            .map_err(|e| ManagerError::Conflict(format!("container {name}: {e}")))?;
        container
            .kill(signal, false)
            .map_err(|e| ManagerError::Invalid(format!("signal {signal}: {e}")))?;
        self.container_event(&slot, "kill", &[("signal", signal.to_string())]);
        Ok(slot.info())
    }

    /// Removes a container and its files (its writable layer, its logs).
    /// A running one only with `force` (killed first). Its volumes stay.
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        self.remove_container(name, force, false).await
    }

    /// [`Manager::remove`], and with `volumes` the anonymous volumes it
    /// made for itself that no other container names (`rm -v`, `--rm`).
    pub async fn remove_container(&self, name: &str, force: bool, volumes: bool) -> Result<()> {
        let slot = self.slot(name)?;
        let _guard = slot.op.lock().await;
        self.remove_locked(&slot, force, volumes).await
    }

    /// A prune's removal: the container `name` made at `created_ms` (not
    /// another made since under the name), if it is stopped and `wanted`
    /// still says so of it, checked under its lock, so that nothing
    /// starts it in between. Its writable layer's size (measured then,
    /// while no process of it can change it), or None when it stays.
    pub async fn remove_if_stopped(
        &self,
        name: &str,
        created_ms: u64,
        wanted: impl Fn(&ContainerInfo) -> bool,
    ) -> Result<Option<u64>> {
        let slot = self.slot(name)?;
        let _guard = slot.op.lock().await;
        let info = slot.info();
        // Removed while the lock was waited for, or the name taken anew;
        // an auto-remove container is its own exit's to remove (with its
        // anonymous volumes).
        let current = self.slot(name).is_ok_and(|now| Arc::ptr_eq(&now, &slot));
        if !current
            || slot.snapshot().removed
            || info.options.auto_remove
            || info.created_ms != created_ms
            || !matches!(info.status, Status::Created | Status::Exited)
            || !wanted(&info)
        {
            return Ok(None);
        }
        let upper = slot.paths.upper();
        let size = tokio::task::spawn_blocking(move || super::disk_usage::tree_bytes(&upper))
            .await
            .unwrap_or(0);
        self.remove_locked(&slot, false, false).await?;
        Ok(Some(size))
    }

    /// [`Manager::remove_container`] under the slot's lock.
    async fn remove_locked(&self, slot: &Arc<Slot>, force: bool, volumes: bool) -> Result<()> {
        let name = slot.name.as_str();
        let snapshot = slot.snapshot();
        if snapshot.status == Status::Running {
            if !force {
                return Err(ManagerError::Conflict(format!(
                    "container {name} is running: stop it first, or force the removal"
                )));
            }
            slot.update(|s| s.generation += 1);
            self.container_event(slot, "kill", &[("signal", libc::SIGKILL.to_string())]);
            self.signal_container(name, libc::SIGKILL, true);
            if let Some(shim) = snapshot.shim {
                wait_for_exit(shim, Some(KILL_WAIT)).await;
            }
            self.record_exit(slot).await;
        }
        slot.state.send_modify(|s| {
            s.generation += 1;
            s.removed = true;
        });
        self.table().remove(name);
        self.rebalance_storage();
        self.release_network(name).await;
        // The record first: a crash halfway leaves no container that
        // points at missing files, only files without a record. On a
        // blocking thread: a writable layer can be large, and the agent's
        // one runtime thread serves everything else meanwhile.
        let paths = [
            slot.paths.record(),
            slot.paths.dir.clone(),
            slot.paths.run.clone(),
        ];
        let (manager, owned_name) = (self.clone(), name.to_owned());
        let mounts = snapshot.record.options.mounts.clone();
        let removal = tokio::task::spawn_blocking(move || {
            for path in paths {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match removed {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        log::error!("{owned_name}: removing {}: {e}", path.display());
                    }
                    _ => {}
                }
            }
            if volumes {
                manager.remove_anonymous_volumes(&mounts);
            }
        });
        if let Err(e) = removal.await {
            log::error!("{name}: removing its files: {e}");
        }
        log::info!("removed container {name}");
        self.container_event(slot, "destroy", &[]);
        Ok(())
    }

    /// Waits until the container is not running (nor about to restart);
    /// returns its exit code (None: never ran, or unknown).
    pub async fn wait(&self, name: &str) -> Result<Option<i32>> {
        let slot = self.slot(name)?;
        let mut state = slot.state.subscribe();
        loop {
            {
                let s = state.borrow_and_update();
                if s.removed || matches!(s.status, Status::Exited | Status::Created) {
                    return Ok(s.record.exit_code);
                }
            }
            if state.changed().await.is_err() {
                return Ok(slot.snapshot().record.exit_code);
            }
        }
    }

    /// Signals the container's init (`all`: every process in its cgroup).
    fn signal_container(&self, name: &str, signal: i32, all: bool) {
        match Container::load(&self.runtime_root(), name) {
            Ok(container) => {
                if let Err(e) = container.kill(signal, all) {
                    log::warn!("{name}: signal {signal}: {e}");
                }
            }
            Err(e) => log::warn!("{name}: {e}"),
        }
    }
}

/// The container's cgroup directory (the spec's cgroupsPath is
/// `/husk/<name>`).
pub(super) fn cgroup_dir(name: &str) -> PathBuf {
    cgroups::dir_for(Some(std::path::Path::new(&format!("/husk/{name}"))), name)
}

/// The image's `StopSignal`, or SIGTERM.
fn stop_signal(slot: &Slot) -> i32 {
    slot.snapshot()
        .record
        .stop_signal
        .as_deref()
        .and_then(|s| husk_runtime::signal::parse(s).ok())
        .unwrap_or(libc::SIGTERM)
}

/// Until the shim exits (true), or `timeout` passes (false).
async fn wait_for_exit(shim: ShimPid, timeout: Option<Duration>) -> bool {
    let exited = async {
        match pidfd(shim) {
            Some(fd) => {
                if let Ok(fd) = super::sys::async_fd(fd) {
                    let _ = fd.readable().await;
                    return;
                }
                poll_alive(shim).await;
            }
            None => poll_alive(shim).await,
        }
    };
    match timeout {
        None => {
            exited.await;
            true
        }
        Some(limit) => tokio::time::timeout(limit, exited).await.is_ok(),
    }
}

/// A pidfd for the shim, checked against its start time after opening
/// (so a recycled pid is never watched instead).
fn pidfd(shim: ShimPid) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(shim.pid)?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()?;
    // Not alive any more: the fd may be another process's.
    shim.alive().then_some(fd)
}

async fn poll_alive(shim: ShimPid) {
    while shim.alive() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
