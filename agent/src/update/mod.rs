//! The update agent: signed A/B OS updates with automatic rollback.
//!
//! The OS is one file, the UKI; A/B is two UKIs on the ESP. An update is
//! checked through TUF ([`repo`]), downloaded onto the data partition
//! ([`download`]), written to the ESP as `husk-<new>+3.efi` beside the
//! running version's entry ([`esp`]) if the bytes written are the signed
//! ones ([`hashing`]), and booted. systemd-boot counts the
//! tries; the new version's agent judges its own boot ([`assess`]) and
//! blesses its entry, or reboots and lets the tries run out, after which
//! systemd-boot boots the previous version, whose agent reports the
//! rollback. Docs: docs/UPDATES.md.

pub mod assess;
pub mod download;
pub mod esp;
pub mod fault;
pub mod hashing;
pub mod mount;
pub mod repo;
pub mod settings;
pub mod state;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use husk_api::update::{
    ApplyRequest, EntryStatus, RollbackRequest, UpdateOutcome, UpdateState, UpdateStatus,
};
use husk_common::boot::Trial;
use husk_release::manifest::Offer;
use husk_release::{BootEntry, Release, compare_versions};

pub use self::esp::Esp;
pub use self::settings::{HealthCheck, UpdateSettings};
use self::state::{Pending, StateFile, now};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UpdateError {
    #[error("updates are not configured: {0}")]
    Config(String),
    /// The repository or the release failed verification, or policy
    /// refuses it (downgrade, minimum version).
    #[error("refused: {0}")]
    Refused(String),
    #[error("download failed: {0}")]
    Download(String),
    #[error("{0}")]
    Io(String),
    #[error("no EFI system partition: {0}")]
    NoEsp(String),
    #[error("an update operation is already running")]
    Busy,
    #[error("{0}")]
    Invalid(String),
}

/// What the updater needs to know about the machine.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    pub settings: UpdateSettings,
    /// `<root>/update`: state, TUF datastore, downloads.
    pub state_dir: PathBuf,
    /// The mounted ESP's root, or why there is none.
    pub esp: Result<PathBuf, String>,
    /// The running OS version (os-release), if known.
    pub running_version: Option<String>,
    /// Whether the updater may reboot the machine (PID 1 is husk-init).
    pub may_reboot: bool,
    /// Whether systemd-boot started this boot on trial, as husk-init read
    /// it (boot.json); None when there are no boot facts.
    pub trial: Option<Trial>,
}

/// How `update status` shows a boot entry.
fn entry_status(entry: &BootEntry, running: Option<&str>) -> EntryStatus {
    let running = running == Some(entry.version.as_str());
    let state = match entry.tries {
        None => "blessed".to_owned(),
        Some(t) if t.left == 0 && running => "on trial (last try)".to_owned(),
        Some(t) if t.left == 0 => "failed (tries spent)".to_owned(),
        Some(t) => format!("on trial ({} tries left)", t.left),
    };
    EntryStatus {
        file: entry.file_name(),
        version: entry.version.clone(),
        state,
        running,
    }
}

/// The updater, shared by the API and the background tasks.
#[derive(Debug, Clone)]
pub struct Updater {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Mutex<UpdateSettings>,
    state_dir: PathBuf,
    esp: Result<Esp, String>,
    running: Option<String>,
    may_reboot: bool,
    trial: Option<Trial>,
    state: Mutex<UpdateState>,
    assessment: Mutex<String>,
    /// One check, apply or rollback at a time.
    busy: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Updater {
    pub fn new(config: UpdaterConfig) -> Self {
        let state = UpdateState::load(&config.state_dir);
        Self {
            inner: Arc::new(Inner {
                settings: Mutex::new(config.settings),
                esp: config.esp.map(|root| Esp::at(&root)),
                state_dir: config.state_dir,
                running: config.running_version,
                may_reboot: config.may_reboot,
                trial: config.trial,
                state: Mutex::new(state),
                assessment: Mutex::new("not on trial".into()),
                busy: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// An updater for agents without a machine (tests, `--no-machine-setup`).
    pub fn detached(state_dir: PathBuf) -> Self {
        Self::new(UpdaterConfig {
            settings: UpdateSettings::default(),
            state_dir,
            esp: Err("not a Husk machine".into()),
            running_version: None,
            may_reboot: false,
            trial: None,
        })
    }

    pub fn settings(&self) -> UpdateSettings {
        lock(&self.inner.settings).clone()
    }

    /// Overrides from user-data (repository, channel, window).
    pub fn set_settings(&self, settings: UpdateSettings) {
        *lock(&self.inner.settings) = settings;
    }

    pub fn running_version(&self) -> Option<&str> {
        self.inner.running.as_deref()
    }

    fn esp(&self) -> Result<&Esp, UpdateError> {
        self.inner
            .esp
            .as_ref()
            .map_err(|e| UpdateError::NoEsp(e.clone()))
    }

    fn update_state(&self, change: impl FnOnce(&mut UpdateState)) {
        let mut state = lock(&self.inner.state);
        change(&mut state);
        if let Err(e) = state.save(&self.inner.state_dir) {
            log::error!(
                "update: saving {}: {e}",
                UpdateState::path(&self.inner.state_dir).display()
            );
        }
    }

    pub(crate) fn set_assessment(&self, text: impl Into<String>) {
        *lock(&self.inner.assessment) = text.into();
    }

    pub fn status(&self) -> UpdateStatus {
        let settings = self.settings();
        let running = self.running_version();
        let (entries, next_boot, esp_error) =
            match self.esp().map(|esp| (esp.entries(), esp.next_boot())) {
                Ok((Ok(entries), next)) => (
                    entries.iter().map(|e| entry_status(e, running)).collect(),
                    next.ok().flatten().map(|e| e.version),
                    None,
                ),
                Ok((Err(e), _)) => (Vec::new(), None, Some(e.to_string())),
                Err(e) => (Vec::new(), None, Some(e.to_string())),
            };
        UpdateStatus {
            running_version: running.map(str::to_owned),
            repository: settings.repository,
            channel: settings.channel,
            entries,
            next_boot,
            assessment: lock(&self.inner.assessment).clone(),
            esp_error,
            state: lock(&self.inner.state).clone(),
        }
    }

    async fn load_repo(&self) -> Result<(repo::Repo, UpdateSettings), UpdateError> {
        let settings = self.settings();
        let repository = settings
            .repository
            .clone()
            .ok_or_else(|| UpdateError::Config("no update.repository".into()))?;
        let repo = repo::Repo::load(
            &repository,
            &settings.root,
            &self.inner.state_dir.join("tuf"),
        )
        .await?;
        Ok((repo, settings))
    }

    fn running(&self) -> Result<&str, UpdateError> {
        self.running_version().ok_or_else(|| {
            UpdateError::Io("the running version is unknown (no /etc/os-release)".into())
        })
    }

    /// Checks the repository: is there a newer release for this machine?
    pub async fn check(&self) -> Result<UpdateOutcome, UpdateError> {
        let _busy = self.inner.busy.try_lock().map_err(|_| UpdateError::Busy)?;
        let result = self.check_inner().await;
        let outcome = match &result {
            Ok(o) => o.message.clone(),
            Err(e) => e.to_string(),
        };
        self.update_state(|s| {
            s.last_check = Some(state::Check { at: now(), outcome });
        });
        result
    }

    async fn check_inner(&self) -> Result<UpdateOutcome, UpdateError> {
        let running = self.running()?.to_owned();
        let (repo, settings) = self.load_repo().await?;
        let manifest = repo.manifest().await?;
        let (version, message) = match manifest.offer(&settings.channel, &running) {
            Offer::UpToDate => (None, format!("up to date ({running})")),
            Offer::Update(release) => {
                repo.uki(release)?;
                (
                    Some(release.version.clone()),
                    format!("update available: {} (running {running})", release.version),
                )
            }
            Offer::TooOld {
                release,
                min_version,
            } => (
                Some(release.version.clone()),
                format!(
                    "{} needs at least {min_version}; running {running}: apply an intermediate release first",
                    release.version
                ),
            ),
        };
        Ok(UpdateOutcome {
            running_version: Some(running),
            version,
            message,
            rebooting: false,
        })
    }

    /// Downloads, verifies and installs a release, then reboots into it.
    /// In a task of its own: a client that goes away (or an agent
    /// stopping) must not cut an apply off between writing the ESP and
    /// recording it, nor let a second apply in while the first one's ESP
    /// copy still runs.
    pub async fn apply(&self, request: &ApplyRequest) -> Result<UpdateOutcome, UpdateError> {
        let (updater, request) = (self.clone(), request.clone());
        tokio::spawn(async move { updater.apply_alone(&request).await })
            .await
            .map_err(|e| UpdateError::Io(format!("the update task failed: {e}")))?
    }

    async fn apply_alone(&self, request: &ApplyRequest) -> Result<UpdateOutcome, UpdateError> {
        let _busy = self.inner.busy.try_lock().map_err(|_| UpdateError::Busy)?;
        let result = self.apply_inner(request).await;
        if let Err(e) = &result {
            self.update_state(|s| s.event(format!("apply failed: {e}")));
        }
        result
    }

    async fn apply_inner(&self, request: &ApplyRequest) -> Result<UpdateOutcome, UpdateError> {
        let running = self.running()?.to_owned();
        let esp = self.esp()?.clone();
        let (repo, settings) = self.load_repo().await?;
        let manifest = repo.manifest().await?;
        let failed = self.failed_versions();
        let release = choose(&manifest, &settings.channel, &running, request, &failed)?;
        let Some(release) = release else {
            return Ok(UpdateOutcome {
                running_version: Some(running.clone()),
                version: None,
                message: format!("up to date ({running})"),
                rebooting: false,
            });
        };
        let target = repo.uki(&release)?;
        log::info!(
            "update: downloading {} ({} bytes) from {}",
            release.version,
            target.size,
            target.url
        );
        let downloads = self.inner.state_dir.join("download");
        let file_name = format!("husk-{}.efi", release.version);
        let uki = download::fetch(&target, &downloads, &file_name).await?;
        // Room on the ESP first: only the running version stays. A
        // machine not booted from its ESP (rescue medium, direct kernel)
        // would be left with nothing to boot: refused.
        let io = |e: std::io::Error| UpdateError::Io(format!("ESP {}: {e}", esp.dir().display()));
        if esp.find(&running).map_err(io)?.is_none() {
            return Err(UpdateError::Refused(format!(
                "the running version {running} has no boot entry on the ESP: not booted from it"
            )));
        }
        // Prune and copy on a blocking thread: vfat fsyncs of a 20 MB
        // file would stall every API request on the agent's one thread.
        // The copy is checked against the signed digest again, over the
        // bytes it writes: the download's own check read the file before.
        let version = release.version.clone();
        let (esp_dir, source, signed) = (esp.clone(), uki.clone(), target.digest());
        let keep = running.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let removed = esp_dir.prune(&[keep.as_str()])?;
            if !removed.is_empty() {
                log::info!("update: removed {} from the ESP", removed.join(", "));
            }
            esp_dir.install(&version, &source, &signed)
        })
        .await
        .map_err(|e| UpdateError::Io(format!("the ESP task failed: {e}")))?;
        let entry = match installed {
            Ok(entry) => entry,
            Err(esp::InstallError::Io(e)) => return Err(io(e)),
            Err(e @ esp::InstallError::NotSigned(_)) => {
                // Changed since its check: download it again next time.
                let _ = std::fs::remove_file(&uki);
                return Err(UpdateError::Refused(format!("{}: {e}", target.url)));
            }
        };
        let _ = std::fs::remove_file(&uki);
        let rebooting = self.inner.may_reboot && !request.no_reboot;
        self.update_state(|s| {
            s.pending = Some(Pending {
                version: release.version.clone(),
                from_version: running.clone(),
                applied_at: now(),
            });
            s.rollback_requested_from = None;
            s.event(format!(
                "{} installed as {} (running {running})",
                release.version,
                entry.file_name()
            ));
        });
        if rebooting {
            assess::reboot_soon(format!("booting {}", release.version));
        }
        Ok(UpdateOutcome {
            running_version: Some(running),
            version: Some(release.version.clone()),
            message: format!(
                "{} installed; {}",
                release.version,
                if rebooting {
                    "rebooting into it"
                } else {
                    "the next boot tries it"
                }
            ),
            rebooting,
        })
    }

    /// Versions that failed their boot assessment or were rolled back
    /// from here, with why: not offered again unless asked for by name.
    fn failed_versions(&self) -> Vec<(String, String)> {
        let state = lock(&self.inner.state);
        let mut failed: Vec<(String, String)> = state
            .failures
            .iter()
            .map(|f| (f.version.clone(), f.reason.clone()))
            .collect();
        if let Some(rollback) = &state.last_rollback {
            failed.push((rollback.from_version.clone(), rollback.reason.clone()));
        }
        failed
    }

    /// Switches back to the other version on the ESP.
    pub async fn rollback(&self, request: &RollbackRequest) -> Result<UpdateOutcome, UpdateError> {
        let _busy = self.inner.busy.try_lock().map_err(|_| UpdateError::Busy)?;
        let running = self.running()?.to_owned();
        let esp = self.esp()?;
        let io = |e: std::io::Error| UpdateError::Io(format!("ESP {}: {e}", esp.dir().display()));
        let entries = esp.entries().map_err(io)?;
        let other = entries
            .iter()
            .find(|e| e.version != running)
            .ok_or_else(|| {
                UpdateError::Invalid(format!("no other version than {running} on the ESP"))
            })?
            .clone();
        esp.bless(&other.version).map_err(io)?;
        if entries.iter().any(|e| e.version == running) {
            esp.retire(&running).map_err(io)?;
        }
        let rebooting = self.inner.may_reboot && !request.no_reboot;
        self.update_state(|s| {
            s.rollback_requested_from = Some(running.clone());
            s.pending = None;
            s.event(format!(
                "rollback from {running} to {} requested",
                other.version
            ));
        });
        if rebooting {
            assess::reboot_soon(format!("rolling back to {}", other.version));
        }
        Ok(UpdateOutcome {
            running_version: Some(running),
            version: Some(other.version.clone()),
            message: format!(
                "{} is the boot entry now; {}",
                other.version,
                if rebooting {
                    "rebooting"
                } else {
                    "reboot to use it"
                }
            ),
            rebooting,
        })
    }
}

/// The release `request` asks for, or the channel's newest; `None` when
/// there is nothing newer. Downgrades and releases whose minimum version
/// is above the running one are refused unless forced.
fn choose(
    manifest: &husk_release::Manifest,
    channel: &str,
    running: &str,
    request: &ApplyRequest,
    failed: &[(String, String)],
) -> Result<Option<Release>, UpdateError> {
    let release = match &request.version {
        Some(version) => manifest.find(channel, version).cloned().ok_or_else(|| {
            UpdateError::Invalid(format!("no release {version} in channel {channel}"))
        })?,
        None => match manifest.channel(channel).first() {
            Some(newest) => (*newest).clone(),
            None => return Ok(None),
        },
    };
    match compare_versions(&release.version, running) {
        Ordering::Equal if request.version.is_some() => {
            return Err(UpdateError::Invalid(format!(
                "{running} is already running"
            )));
        }
        Ordering::Equal => return Ok(None),
        Ordering::Less if request.version.is_none() => return Ok(None),
        Ordering::Less if !request.force => {
            return Err(UpdateError::Refused(format!(
                "{} is older than the running {running}: a downgrade needs force",
                release.version
            )));
        }
        _ => {}
    }
    if request.version.is_none()
        && let Some((_, reason)) = failed.iter().rev().find(|(v, _)| *v == release.version)
    {
        return Err(UpdateError::Refused(format!(
            "{} failed on this machine before ({reason}); apply it by version to try again",
            release.version
        )));
    }
    if let Some(min) = &release.min_version
        && compare_versions(running, min) == Ordering::Less
        && !request.force
    {
        return Err(UpdateError::Refused(format!(
            "{} applies over {min} or newer; running {running}",
            release.version
        )));
    }
    Ok(Some(release))
}

/// The OS version in an os-release file (`IMAGE_VERSION`, else
/// `VERSION_ID`).
pub fn running_version(os_release: &Path) -> Option<String> {
    husk_release::version_from_os_release(&std::fs::read_to_string(os_release).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use husk_release::Manifest;

    fn manifest() -> Manifest {
        let release = |version: &str, min: Option<&str>| Release {
            version: version.into(),
            channel: "stable".into(),
            min_version: min.map(Into::into),
            target: format!("husk-{version}.efi"),
            sha256: "0".repeat(64),
            size: 1,
        };
        Manifest {
            releases: vec![
                release("1.0", None),
                release("2.0", None),
                release("3.0", Some("2.0")),
            ],
        }
    }

    #[test]
    fn downgrades_and_min_versions_need_force() {
        let m = manifest();
        let ask = |version: Option<&str>, force: bool| ApplyRequest {
            version: version.map(Into::into),
            force,
            no_reboot: false,
        };
        let none: &[(String, String)] = &[];
        let choose = |m: &Manifest, c: &str, r: &str, a: &ApplyRequest| choose(m, c, r, a, none);
        let failed = [("3.0".to_owned(), "health check web failed".to_owned())];
        let again = super::choose(&m, "stable", "2.0", &ask(None, false), &failed);
        assert!(
            matches!(again, Err(UpdateError::Refused(ref e)) if e.contains("failed on this machine")),
            "{again:?}"
        );
        let by_name = super::choose(&m, "stable", "2.0", &ask(Some("3.0"), false), &failed);
        assert_eq!(by_name.unwrap().unwrap().version, "3.0");
        let newest = choose(&m, "stable", "1.5", &ask(None, false));
        assert!(
            matches!(newest, Err(UpdateError::Refused(ref e)) if e.contains("over 2.0")),
            "{newest:?}"
        );
        let two = choose(&m, "stable", "1.5", &ask(Some("2.0"), false))
            .unwrap()
            .unwrap();
        assert_eq!(two.version, "2.0");
        let down = choose(&m, "stable", "2.0", &ask(Some("1.0"), false));
        assert!(
            matches!(down, Err(UpdateError::Refused(ref e)) if e.contains("downgrade")),
            "{down:?}"
        );
        assert_eq!(
            choose(&m, "stable", "2.0", &ask(Some("1.0"), true))
                .unwrap()
                .unwrap()
                .version,
            "1.0"
        );
        assert_eq!(
            choose(&m, "stable", "3.0", &ask(None, false)).unwrap(),
            None
        );
        assert_eq!(
            choose(&m, "stable", "9.0", &ask(None, false)).unwrap(),
            None
        );
        assert!(matches!(
            choose(&m, "stable", "3.0", &ask(Some("3.0"), false)),
            Err(UpdateError::Invalid(_))
        ));
        assert!(matches!(
            choose(&m, "beta", "1.0", &ask(Some("2.0"), false)),
            Err(UpdateError::Invalid(_))
        ));
    }

    #[test]
    fn version_from_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(
            &path,
            "NAME=Husk\nVERSION_ID=\"1.2\"\nIMAGE_VERSION=\"1.2.3\"\n",
        )
        .unwrap();
        assert_eq!(running_version(&path).as_deref(), Some("1.2.3"));
        std::fs::write(&path, "VERSION_ID=2\n").unwrap();
        assert_eq!(running_version(&path).as_deref(), Some("2"));
        assert_eq!(running_version(&dir.path().join("none")), None);
    }
}
