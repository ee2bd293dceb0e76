//! Pulls as the agent runs them: one registry client for the machine
//! (agent.toml's `[registry]`, extended by user-data's), and one pull per
//! reference at a time: a second request for an image being pulled
//! follows the first's progress instead of fetching it again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use husk_api::images::{ImageSummary, PullEvent};
use husk_registry::policy::Policy;
use husk_registry::{Platform, Progress, PullOptions, Reference, Registries, RegistryConfig};
use tokio::sync::{broadcast, watch};

use crate::images::ImageStore;

/// The longest a pull may take: a registry that trickles bytes does not
/// hold the pull (and every request joining it) for ever.
const PULL_DEADLINE: Duration = Duration::from_secs(3600);

/// Progress events a slow follower may fall behind by before it skips
/// some (the final event is never skipped: it comes through `watch`).
const PROGRESS_BACKLOG: usize = 256;

/// A pull's result: the verified manifest digest, the image, and how
/// many layers had to be fetched.
type Pulled = (String, ImageSummary, usize);

type Outcome = Option<Result<Pulled, Failure>>;

/// What a pull that joins late has missed: the manifest resolved and
/// the layers settled so far. Events are sent under its lock, so a
/// joiner sees each one once: in this, or from `progress`.
type History = Arc<Mutex<Vec<PullEvent>>>;

/// A pull in flight: its progress, and its outcome once known.
#[derive(Clone)]
struct Running {
    progress: broadcast::Sender<PullEvent>,
    history: History,
    outcome: watch::Receiver<Outcome>,
}

#[derive(Clone)]
pub struct Puller {
    registries: Arc<RwLock<Result<Arc<Registries>, String>>>,
    /// The admission policy: agent.toml's, then user-data's layer.
    policy: Arc<RwLock<Arc<Policy>>>,
    /// Whether agent.toml's policy refuses or requires anything.
    policy_constrains: bool,
    config: Arc<RwLock<RegistryConfig>>,
    images: ImageStore,
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Where a pull that ends well is told (the agent's event feed).
    events: crate::events::Events,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").finish_non_exhaustive()
    }
}

/// Why a pull failed, and whether another try may do better.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub transient: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }
}

/// A pull followed: progress as it comes, then the outcome.
pub struct Following {
    /// The events before this follower joined, shown first.
    missed: VecDeque<PullEvent>,
    progress: broadcast::Receiver<PullEvent>,
    outcome: watch::Receiver<Outcome>,
    finished: bool,
}

impl Following {
    fn new(
        missed: Vec<PullEvent>,
        progress: broadcast::Receiver<PullEvent>,
        outcome: watch::Receiver<Outcome>,
    ) -> Self {
        Self {
            missed: missed.into(),
            progress,
            outcome,
            finished: false,
        }
    }

    /// The verified manifest digest and the image, or why it failed.
    pub async fn outcome(mut self) -> Result<Pulled, Failure> {
        loop {
            if let Some(outcome) = self.outcome.borrow_and_update().clone() {
                return outcome;
            }
            if self.outcome.changed().await.is_err() {
                return Err(Failure::permanent("the pull ended without an outcome"));
            }
        }
    }

    /// The next event: progress as it comes, then `done` or `error`,
    /// then `None`.
    pub async fn next(&mut self) -> Option<PullEvent> {
        use broadcast::error::{RecvError, TryRecvError};
        if let Some(event) = self.missed.pop_front() {
            return Some(event);
        }
        while !self.finished {
            match self.progress.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty | TryRecvError::Closed) => {}
            }
            if let Some(outcome) = self.outcome.borrow().clone() {
                self.finished = true;
                return Some(match outcome {
                    Ok((digest, image, layers_fetched)) => PullEvent::Done {
                        digest,
                        image,
                        layers_fetched,
                    },
                    Err(failure) => PullEvent::Error {
                        message: failure.message,
                    },
                });
            }
            tokio::select! {
                event = self.progress.recv() => match event {
                    Ok(event) => return Some(event),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        if self.outcome.changed().await.is_err() && self.outcome.borrow().is_none() {
                            break;
                        }
                    }
                },
                changed = self.outcome.changed() => {
                    if changed.is_err() && self.outcome.borrow().is_none() {
                        break;
                    }
                }
            }
        }
        if self.finished {
            return None;
        }
        self.finished = true;
        Some(PullEvent::Error {
            message: "the pull ended without an outcome".into(),
        })
    }
}

fn build(config: &RegistryConfig) -> Result<Arc<Registries>, String> {
    Registries::new(config.clone())
        .map(Arc::new)
        .map_err(|e| format!("registry configuration: {e}"))
}

impl Puller {
    pub fn new(config: RegistryConfig, policy: Policy, images: ImageStore) -> Self {
        let policy_constrains = policy.constrains();
        let registries = build(&config);
        if let Err(e) = &registries {
            log::error!("{e}; pulls will fail until it is fixed");
        }
        Self {
            registries: Arc::new(RwLock::new(registries)),
            policy: Arc::new(RwLock::new(Arc::new(policy))),
            policy_constrains,
            config: Arc::new(RwLock::new(config)),
            images,
            running: Arc::default(),
            events: crate::events::Events::default(),
        }
    }

    /// Tells `events` of every pull that ends well, whoever asked for it
    /// (Husk's API, Docker's, user-data).
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        self.events = events;
        self
    }

    /// Whether images may come in other than by a pull: not while an
    /// admission policy (agent.toml's or user-data's) refuses or requires
    /// anything, since it is checked on pulls only and a loaded, imported
    /// or re-tagged image would take a name it governs unchecked.
    pub fn admits_local_images(&self, what: &str) -> Result<(), String> {
        let policy = self.policy.read().unwrap_or_else(PoisonError::into_inner);
        if policy.constrains() {
            return Err(format!(
                "{what} is refused: this machine has an admission policy, which is checked \
                 on pulls; images come in by pulls it admits"
            ));
        }
        Ok(())
    }

    pub async fn has_image(&self, reference: &str) -> bool {
        self.images.has(reference).await
    }

    /// Adds user-data's `[policy]`: it must admit an image too.
    pub fn add_policy(&self, layer: husk_registry::policy::Layer) {
        let mut policy = self.policy.write().unwrap_or_else(PoisonError::into_inner);
        *policy = Arc::new((**policy).clone().with(layer));
    }

    /// Adds user-data's `[registry]`: credentials always; mirrors,
    /// insecure registries and CAs only while agent.toml's policy admits
    /// everything. Under a policy they would change where an admitted
    /// name's content comes from, which is loosening it: they are left
    /// out, and the returned warning says so.
    pub fn extend(&self, more: &RegistryConfig) -> Result<Option<String>, String> {
        let mut more = more.clone();
        let mut warning = None;
        if self.policy_constrains {
            let dropped: Vec<&str> = [
                ("mirrors", !more.mirrors.is_empty()),
                ("insecure", !more.insecure.is_empty()),
                ("ca_files", !more.ca_files.is_empty()),
                ("ca_pems", !more.ca_pems.is_empty()),
            ]
            .into_iter()
            .filter_map(|(key, set)| set.then_some(key))
            .collect();
            if !dropped.is_empty() {
                warning = Some(format!(
                    "{} not applied: agent.toml has an admission policy, which user-data cannot loosen",
                    dropped.join(", ")
                ));
                more.mirrors.clear();
                more.insecure.clear();
                more.ca_files.clear();
                more.ca_pems.clear();
            }
        }
        let mut config = self
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        config.extend(&more);
        let registries = build(&config)?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        *self
            .registries
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Ok(registries);
        Ok(warning)
    }

    /// Starts pulling `reference` (or joins the pull of it that is
    /// running). A reference or platform that cannot be parsed is an
    /// error at once.
    pub fn start(&self, reference: &str, platform: Option<&str>) -> Result<Following, String> {
        self.start_with(reference, platform, None)
    }

    /// [`Puller::start`] with a client's credentials for the image's
    /// registry (Docker's `X-Registry-Auth`), used for this pull only and
    /// over agent.toml's. The pull is joined only by pulls with the same
    /// credentials: one without cannot ride on someone else's.
    pub fn start_with(
        &self,
        reference: &str,
        platform: Option<&str>,
        auth: Option<husk_registry::config::AuthEntry>,
    ) -> Result<Following, String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        let platform: Option<Platform> = platform.map(str::parse).transpose()?;
        let mut key = match &platform {
            Some(platform) => format!("{reference} {platform}"),
            None => format!("{reference}"),
        };
        let registries = match auth {
            None => None,
            Some(entry) => {
                use sha2::Digest as _;
                let fingerprint =
                    sha2::Sha256::digest(serde_json::to_vec(&entry).map_err(|e| e.to_string())?);
                key.push_str(&format!(" auth {fingerprint:x}"));
                let mut config = self
                    .config
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                // The client's, not another spelling of the same registry
                // in agent.toml (`https://host`), which would be found first.
                let key = husk_registry::config::registry_key(&reference.registry);
                config
                    .auths
                    .retain(|k, _| husk_registry::config::registry_key(k) != key);
                config.auths.insert(reference.registry.clone(), entry);
                Some(build(&config).map_err(|e| format!("X-Registry-Auth: {e}"))?)
            }
        };
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pull) = running.get(&key) {
            log::info!("pull {reference}: joining the pull already running");
            let history = pull.history.lock().unwrap_or_else(PoisonError::into_inner);
            return Ok(Following::new(
                history.clone(),
                pull.progress.subscribe(),
                pull.outcome.clone(),
            ));
        }
        let (progress, progress_rx) = broadcast::channel(PROGRESS_BACKLOG);
        let history = History::default();
        let (outcome_tx, outcome) = watch::channel(None);
        running.insert(
            key.clone(),
            Running {
                progress: progress.clone(),
                history: history.clone(),
                outcome: outcome.clone(),
            },
        );
        drop(running);
        let this = self.clone();
        tokio::spawn(async move {
            let result = this
                .run(&reference, platform, registries, progress, history)
                .await;
            match &result {
                Ok((digest, image, _)) => {
                    log::info!("pulled {reference} ({digest}, image {})", image.id);
                    // dockerd names a pull by the reference, familiar.
                    let name = reference.shown();
                    this.events.image(&name, &name, "pull");
                }
                Err(e) => log::error!("pull {reference}: {e}"),
            }
            this.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            let _ = outcome_tx.send(Some(result));
        });
        Ok(Following::new(Vec::new(), progress_rx, outcome))
    }

    async fn run(
        &self,
        reference: &Reference,
        platform: Option<Platform>,
        registries: Option<Arc<Registries>>,
        progress: broadcast::Sender<PullEvent>,
        history: History,
    ) -> Result<Pulled, Failure> {
        let registries = match registries {
            Some(own) => own,
            None => self
                .registries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .map_err(Failure::permanent)?,
        };
        let store = self
            .images
            .shared()
            .map_err(|e| Failure::permanent(format!("the image store is unavailable: {e}")))?;
        let report = Arc::new(move |event: Progress| {
            if let Some(event) = event_of(event) {
                let mut history = history.lock().unwrap_or_else(PoisonError::into_inner);
                if matches!(
                    event,
                    PullEvent::Resolved { .. }
                        | PullEvent::Verified { .. }
                        | PullEvent::LayerExists { .. }
                        | PullEvent::LayerDone { .. }
                ) {
                    history.push(event.clone());
                }
                let _ = progress.send(event);
            }
        });
        let policy = Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner));
        let options = PullOptions {
            platform,
            progress: Some(report),
            policy: Some(policy),
        };
        let pulled = tokio::time::timeout(
            PULL_DEADLINE,
            husk_registry::pull(registries, store, reference, &options),
        )
        .await
        .map_err(|_| Failure {
            transient: true,
            message: format!(
                "{reference}: not done within {} minutes: given up",
                PULL_DEADLINE.as_secs() / 60
            ),
        })?
        .map_err(|e| Failure {
            transient: e.is_transient(),
            message: printable(&e.to_string()),
        })?;
        Ok((
            pulled.digest,
            crate::api::image_summary(pulled.image),
            pulled.layers_fetched,
        ))
    }

    /// Pulls, trying again with backoff while the failure is one a later
    /// try may not have (the network is coming up), until `deadline`.
    pub async fn pull_patiently(
        &self,
        reference: &str,
        deadline: Duration,
    ) -> Result<ImageSummary, Failure> {
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_secs(1);
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            let following = self.start(reference, None).map_err(Failure::permanent)?;
            let outcome = tokio::time::timeout(left, following.outcome())
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::permanent(format!(
                        "{reference}: not pulled within {}s",
                        deadline.as_secs()
                    )))
                });
            match outcome {
                Ok((_, image, _)) => return Ok(image),
                Err(e) if e.transient && start.elapsed() + delay < deadline => {
                    log::warn!(
                        "pull {reference}: {e}; trying again in {}s",
                        delay.as_secs()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn event_of(progress: Progress) -> Option<PullEvent> {
    Some(match progress {
        Progress::Resolved {
            reference,
            digest,
            layers,
            size,
        } => PullEvent::Resolved {
            reference,
            digest,
            layers,
            size,
        },
        Progress::Verified { rule, detail } => PullEvent::Verified { rule, detail },
        Progress::LayerExists { digest, size } => PullEvent::LayerExists { digest, size },
        Progress::LayerProgress { digest, done, size } => {
            PullEvent::LayerProgress { digest, done, size }
        }
        Progress::LayerRetry {
            digest,
            attempt,
            reason,
        } => PullEvent::LayerRetry {
            digest,
            attempt,
            reason,
        },
        Progress::LayerDone { digest, size } => PullEvent::LayerDone { digest, size },
        // The outcome says it, with the image.
        Progress::Done { .. } => return None,
    })
}

/// An error's text as it may be shown: what a hostile registry sent can
/// reach it (a tar reader quoting the bytes it choked on), so control
/// characters are replaced, and it is kept to a screenful.
fn printable(text: &str) -> String {
    text.chars()
        .take(2000)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_cannot_reroute_what_a_policy_admits() {
        let user_data: RegistryConfig = serde_json::from_str(
            r#"{"mirrors": {"registry.example": ["https://evil.example/"]}, "insecure": ["registry.example"], "auths": {"registry.example": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let policy: husk_registry::policy::PolicyConfig =
            toml::from_str("default = \"deny\"\n[[rules]]\nregistry = \"registry.example\"\n")
                .unwrap();
        let layer = policy
            .load("agent.toml", std::path::Path::new("/nonexistent"))
            .unwrap();
        let puller = Puller::new(
            Default::default(),
            Policy::new(vec![layer]),
            ImageStore::default(),
        );
        let warning = puller.extend(&user_data).unwrap().unwrap();
        assert!(
            warning.contains("mirrors, insecure not applied"),
            "{warning}"
        );
        let config = puller.config.read().unwrap().clone();
        assert!(config.mirrors.is_empty() && config.insecure.is_empty());
        assert!(
            config.credentials("registry.example").is_some(),
            "credentials are added"
        );

        // Without a policy, nothing is loosened by them: applied.
        let open = Puller::new(Default::default(), Policy::default(), ImageStore::default());
        assert_eq!(open.extend(&user_data).unwrap(), None);
        assert!(open.config.read().unwrap().is_insecure("registry.example"));
    }

    #[test]
    fn hostile_bytes_are_not_printed_as_they_are() {
        assert_eq!(printable("a\nb\x1b[2Jc"), "a\u{fffd}b\u{fffd}[2Jc");
        assert_eq!(printable(&"x".repeat(5000)).len(), 2000);
    }
}
