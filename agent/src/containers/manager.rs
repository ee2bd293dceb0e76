//! The container manager: the agent's table of containers, their records
//! on disk and their shims. Every change to a container is made under its
//! own lock and written to its record before it is answered; the table
//! itself is only a cache of the records and the shims' files, rebuilt by
//! [`Manager::restore`] when the agent starts.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::error::{IoContext, ManagerError, Result};
use super::info::{ContainerInfo, Status};
use super::layered;
use super::logs::{DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE};
use super::paths::{ContainerPaths, Layout};
use super::record::ContainerRecord;
use super::shim::ShimPid;
use super::time::now_ms;
use crate::images::ImageStore;
use husk_spec::{RestartPolicy, RunOptions, SecurityPolicy, build_spec_reading, check_name};
use husk_store::{ImageId, Store};

/// How the manager runs containers.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub layout: Layout,
    /// The husk-agent binary, run as `shim` and `oci exec`.
    pub agent_exe: PathBuf,
    pub policy: SecurityPolicy,
    /// Defaults and maxima of memory, CPUs and pids.
    pub limits: husk_spec::ResourceLimits,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// Between the stop signal and SIGKILL (Docker's 10 s).
    pub stop_timeout: Duration,
    /// `[network]`: the bridge.
    pub network: crate::bridge::NetworkSettings,
}

impl ManagerConfig {
    pub fn new(layout: Layout, agent_exe: PathBuf) -> Self {
        Self {
            layout,
            agent_exe,
            policy: SecurityPolicy::default(),
            limits: husk_spec::ResourceLimits::default(),
            log_max_size: DEFAULT_MAX_SIZE,
            log_max_files: DEFAULT_MAX_FILES,
            stop_timeout: Duration::from_secs(10),
            network: crate::bridge::NetworkSettings::default(),
        }
    }
}

/// The manager, cheap to clone (the API's handlers each hold one).
#[derive(Clone)]
pub struct Manager(pub(super) Arc<Inner>);

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("config", &self.0.config)
            .field("containers", &self.table().len())
            .finish()
    }
}

pub(super) struct Inner {
    pub config: ManagerConfig,
    pub images: ImageStore,
    pub table: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// The writable layers' quotas.
    pub storage: super::storage::Storage,
    /// The bridge, or why it cannot be had (bridged containers then fail
    /// to start with that reason; the rest work).
    pub networks: std::result::Result<crate::bridge::Networks, String>,
    /// Held shared by whatever puts a container on a network (create,
    /// connect) from the network's check to the container's record, and
    /// exclusively by `network rm` from its in-use check to the end: a
    /// network cannot go between a container being checked onto it and
    /// recorded there.
    pub network_use: tokio::sync::RwLock<()>,
    /// The named volumes on the data partition.
    pub volumes: crate::volumes::Volumes,
    /// Docker's exec instances (and Husk's upgraded execs), in memory.
    pub execs: super::exec::Execs,
    /// What happens to containers, networks, volumes and images.
    pub events: crate::events::Events,
}

/// One container in the table.
pub(super) struct Slot {
    pub name: String,
    pub paths: ContainerPaths,
    /// Serialises the operations on this container (start, stop, the
    /// shim's exit…).
    pub op: Arc<tokio::sync::Mutex<()>>,
    pub state: watch::Sender<Snapshot>,
}

/// A container's state as the manager knows it.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub record: ContainerRecord,
    pub status: Status,
    pub shim: Option<ShimPid>,
    /// The container's init (host pid) while it runs.
    pub init_pid: Option<i32>,
    /// Bumped by every start, stop and removal: a shim's exit or a pending
    /// restart from an older generation is stale and ignored.
    pub generation: u64,
    /// Exits in a row that came before a healthy run (for the backoff).
    pub quick_exits: u32,
    pub removed: bool,
    /// Its place on the bridge while it runs.
    pub network: Option<husk_api::containers::NetworkInfo>,
    /// Its places on the networks connected to it, while it runs.
    pub connected: Vec<husk_api::containers::NetworkInfo>,
}

impl Slot {
    pub fn snapshot(&self) -> Snapshot {
        self.state.borrow().clone()
    }

    pub fn info(&self) -> ContainerInfo {
        let s = self.state.borrow();
        super::info::info(
            &s.record,
            s.status,
            s.init_pid,
            s.network.clone(),
            &s.connected,
        )
    }

    /// Changes the state and writes the record. A record that cannot be
    /// written is logged: the in-memory state stays right and the next
    /// change retries.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        self.state.send_modify(change);
        let record = self.state.borrow().record.clone();
        if self.state.borrow().removed {
            return;
        }
        if let Err(e) = record.save(&self.paths.record()) {
            log::error!(
                "{}: writing {}: {e}",
                self.name,
                self.paths.record().display()
            );
        }
    }
}

impl Manager {
    pub fn new(config: ManagerConfig, images: ImageStore) -> Self {
        let containers = config.layout.containers();
        if let Err(e) = std::fs::create_dir_all(&containers) {
            log::error!("creating {}: {e}", containers.display());
        }
        let storage = super::storage::Storage::probe(&containers, config.limits.storage_reserve);
        let layout = &config.layout;
        let networks = crate::bridge::Networks::new(
            config.network.clone(),
            crate::bridge::NetworkPaths {
                state: layout.root.join("network"),
                attachments: layout.run.join("network"),
                netns: layout.run.join("netns"),
                host_resolv_conf: layout.run.join("resolv.conf"),
            },
        )
        .map_err(|e| {
            log::error!("bridge: {e}");
            e.to_string()
        });
        let volumes = crate::volumes::Volumes::new(layout.root.join("volumes"));
        Self(Arc::new(Inner {
            config,
            images,
            table: Mutex::new(BTreeMap::new()),
            storage,
            networks,
            network_use: tokio::sync::RwLock::new(()),
            volumes,
            execs: super::exec::Execs::default(),
            events: crate::events::Events::default(),
        }))
    }

    /// (project, size) of every container with a writable-layer size.
    pub(super) fn sized_layers(&self) -> Vec<(u32, u64)> {
        self.table()
            .values()
            .filter_map(|slot| {
                let size = slot.snapshot().record.options.storage_size?;
                Some((
                    super::storage::Storage::project_of(&slot.paths.upper())?,
                    size,
                ))
            })
            .collect()
    }

    /// The shared writable-layer quota, from the partition's state now.
    pub(super) fn rebalance_storage(&self) {
        if let Err(e) = self.0.storage.rebalance(&self.sized_layers()) {
            log::warn!("writable layers: {e}");
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.0.config
    }

    /// The agent's event feed (this manager's and the image API's).
    pub fn events(&self) -> &crate::events::Events {
        &self.0.events
    }

    /// Records `action` of the container in `slot`, with `attributes`.
    pub(super) fn container_event(&self, slot: &Slot, action: &str, attributes: &[(&str, String)]) {
        let record = &slot.state.borrow().record;
        let subject = crate::events::Subject::Container {
            container: crate::events::ContainerRef {
                name: slot.name.clone(),
                created_ms: record.created_ms,
            },
            image: record.options.image.clone(),
            labels: record.options.labels.clone(),
        };
        let attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        self.0.events.emit(subject, action, attributes);
    }

    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.0.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn slot(&self, name: &str) -> Result<Arc<Slot>> {
        self.table()
            .get(name)
            .cloned()
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))
    }

    pub(super) fn store(&self) -> Result<Arc<Mutex<Store>>> {
        self.0
            .images
            .shared()
            .map_err(ManagerError::StoreUnavailable)
    }

    /// The images containers use: the store refuses to remove them.
    pub fn images_in_use(&self) -> HashSet<ImageId> {
        self.table()
            .values()
            .map(|slot| slot.state.borrow().record.image_id)
            .collect()
    }

    pub fn list(&self) -> Vec<ContainerInfo> {
        self.table().values().map(|slot| slot.info()).collect()
    }

    pub fn inspect(&self, name: &str) -> Result<ContainerInfo> {
        Ok(self.slot(name)?.info())
    }

    /// Makes a container (not started): resolves the image, builds the
    /// spec, writes the bundle and the record.
    pub async fn create(&self, mut opts: RunOptions) -> Result<ContainerInfo> {
        if opts.name.is_empty() {
            opts.name = self.generate_name();
        }
        check_name(&opts.name)?;
        crate::bridge::Networks::check_options(&opts)
            .map_err(|e| ManagerError::Invalid(e.to_string()))?;
        let _network_use = self.0.network_use.read().await;
        self.check_network_exists(&opts).await?;
        if opts.auto_remove && opts.restart != RestartPolicy::No {
            return Err(ManagerError::Invalid(
                "auto-remove (--rm) and a restart policy exclude each other".into(),
            ));
        }
        let store = self.store()?;
        let manager = self.clone();
        let slot = tokio::task::spawn_blocking(move || {
            // Under the store's lock: an image cannot be removed between
            // being resolved and being recorded as in use.
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            manager.create_locked(&store, opts)
        })
        .await
        .map_err(|e| ManagerError::io("create task", std::io::Error::other(e.to_string())))??;
        log::info!("created container {}", slot.name);
        self.container_event(&slot, "create", &[]);
        Ok(slot.info())
    }

    fn create_locked(&self, store: &Store, opts: RunOptions) -> Result<Arc<Slot>> {
        // The record keeps the limits and the ids the container really got.
        let mut opts = self.0.config.limits.apply(opts)?;
        let name = opts.name.clone();
        if self.0.config.policy.userns == husk_spec::UsernsPolicy::Required && opts.userns.is_none()
        {
            opts.userns_auto = true;
        }
        if opts.userns_auto {
            if opts.userns.is_some() {
                return Err(ManagerError::Invalid(
                    "userns_auto and an explicit userns mapping exclude each other".into(),
                ));
            }
            // Under the table's lock: two creates never get one range.
            let taken: Vec<_> = self
                .table()
                .values()
                .filter_map(|slot| slot.snapshot().record.options.userns)
                .collect();
            opts.userns = Some(super::userns::allocate(&taken)?);
        }
        if self.table().contains_key(&name) {
            return Err(ManagerError::Conflict(format!(
                "the name {name} is already in use by a container"
            )));
        }
        let image = store.get(&opts.image)?;
        let mut layers = store.layer_paths(&image.id)?;
        layers.reverse();
        let image_config = store.image_config(&image.id)?;
        let paths = self.0.config.layout.container(&name);
        let mut spec = build_spec_reading(
            &image_config,
            &opts,
            &paths.rootfs(),
            &self.0.config.policy,
            &|file| layered::read_file(&layers, file),
        )?;
        clamp_rlimits(&mut spec);
        self.add_network_to_spec(&mut spec, &opts, &paths);
        if paths.dir.exists() {
            return Err(ManagerError::Conflict(format!(
                "{} exists but no container {name} is known: remove it or pick another name",
                paths.dir.display()
            )));
        }
        // Held until the container is in the table: a volume it names
        // cannot be removed in between.
        let volumes_lock = self.0.volumes.lock();
        add_image_volumes(&mut opts, &image_config);
        let user_mounts = self.resolve_mounts(&volumes_lock, &mut opts, &layers)?;
        husk_spec::mounts::add_to_spec(&mut spec, user_mounts);
        let mut record = ContainerRecord::new(opts, image.id, now_ms());
        record.command = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        record.stop_signal = image_config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone());
        let result = (|| {
            std::fs::create_dir_all(self.0.config.layout.containers()).at(&self
                .0
                .config
                .layout
                .containers())?;
            // A container in a user namespace has its root as an
            // unprivileged host uid, which must reach its rootfs below:
            // search only, no listing (Docker's 0711 on /var/lib/docker).
            let mode = if record.options.userns.is_some() {
                0o711
            } else {
                0o700
            };
            create_private_dir(&paths.dir, mode)?;
            for dir in [
                paths.upper(),
                paths.work(),
                paths.empty_lower(),
                paths.rootfs(),
                paths.logs_dir(),
            ] {
                std::fs::create_dir_all(&dir).at(&dir)?;
            }
            self.0.storage.assign(
                &paths.upper(),
                &paths.work(),
                record.options.storage_size,
                &self.sized_layers(),
            )?;
            let config = paths.bundle().join("config.json");
            let json = serde_json::to_vec_pretty(&spec).map_err(std::io::Error::other);
            json.and_then(|json| husk_common::atomic::write_atomic(&config, &json, 0o600))
                .at(&config)?;
            record.save(&paths.record()).at(&paths.record())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&paths.dir);
            let anonymous: Vec<String> = record
                .options
                .mounts
                .iter()
                .filter(|m| m.anonymous)
                .map(|m| m.source.clone())
                .collect();
            self.remove_volumes_made(&volumes_lock, &anonymous);
            return Err(e);
        }
        let slot = self.insert(paths, record, Status::Created);
        self.rebalance_storage();
        Ok(slot)
    }

    pub(super) fn insert(
        &self,
        paths: ContainerPaths,
        record: ContainerRecord,
        status: Status,
    ) -> Arc<Slot> {
        let name = record.name().to_string();
        let (state, _) = watch::channel(Snapshot {
            record,
            status,
            shim: None,
            init_pid: None,
            generation: 0,
            quick_exits: 0,
            removed: false,
            network: None,
            connected: Vec::new(),
        });
        let slot = Arc::new(Slot {
            name: name.clone(),
            paths,
            op: Arc::new(tokio::sync::Mutex::new(())),
            state,
        });
        self.table().insert(name, Arc::clone(&slot));
        slot
    }

    /// Docker names containers after scientists; Husk after what it is.
    fn generate_name(&self) -> String {
        loop {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(now_ms());
            let name = format!("husk-{:08x}", hasher.finish() as u32);
            if !self.table().contains_key(&name) {
                return name;
            }
        }
    }

    /// Reads every container's record and finds its shim again: running
    /// containers are adopted, those that exited while the agent was away
    /// get their restart policy, and after a reboot the policy decides
    /// which start. A record that cannot be read is logged and left on
    /// disk untouched.
    pub async fn restore(&self) {
        let dir = self.0.config.layout.containers();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::error!("reading {}: {e}", dir.display());
                return;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let _rebalance = RebalanceOnDrop(self);
        for name in names {
            let paths = self.0.config.layout.container(&name);
            let record = match ContainerRecord::load(&paths.record()) {
                Ok(record) if record.name() == name => record,
                Ok(record) => {
                    log::error!(
                        "{}: the record names {}; left alone",
                        paths.record().display(),
                        record.name()
                    );
                    continue;
                }
                Err(e) => {
                    log::error!("{}: {e}; left alone", paths.record().display());
                    continue;
                }
            };
            self.restore_one(paths, record).await;
        }
        self.restore_networks().await;
    }

    async fn restore_one(&self, paths: ContainerPaths, record: ContainerRecord) {
        let name = record.name().to_string();
        let shim = super::shim::read_json::<ShimPid>(&paths.shim_pid()).ok();
        if let Some(shim) = shim.filter(|s| s.alive()) {
            let slot = self.insert(paths, record, Status::Running);
            let init_pid = husk_runtime::Container::load(&self.runtime_root(), &name)
                .ok()
                .map(|c| c.pid());
            slot.update(|s| {
                s.shim = Some(shim);
                s.init_pid = init_pid;
            });
            log::info!("{name}: adopted the running container (shim {})", shim.pid);
            self.monitor(&slot, shim, 0);
            return;
        }
        let ran = record.started_ms.is_some();
        let status = if ran { Status::Exited } else { Status::Created };
        let exited_while_away = paths.exit().exists() || shim.is_some();
        let slot = self.insert(paths, record, status);
        if exited_while_away {
            log::info!("{name}: exited while the agent was away");
            let _guard = slot.op.lock().await;
            let restart = self.record_exit(&slot).await;
            drop(_guard);
            self.after_exit(&slot, restart, 0).await;
            return;
        }
        let snapshot = slot.snapshot();
        if ran && snapshot.record.options.auto_remove {
            let _ = self.remove_container(&name, true, true).await;
            return;
        }
        if ran
            && super::restart::start_on_boot(
                snapshot.record.restart_policy(),
                snapshot.record.manually_stopped,
            )
        {
            log::info!(
                "{name}: starting (restart policy {})",
                snapshot.record.restart_policy()
            );
            // In the background: the agent serves while containers start.
            let manager = self.clone();
            tokio::spawn(async move {
                if let Err(e) = manager.start_as_policy(&slot).await {
                    log::error!("{e}");
                }
            });
        }
    }

    pub(super) fn runtime_root(&self) -> PathBuf {
        self.0.config.layout.runtime_root()
    }
}

/// Limits above the agent's own hard limits would need CAP_SYS_RESOURCE
/// and fail the start: a container gets at most what the agent has.
fn clamp_rlimits(spec: &mut oci_spec::runtime::Spec) {
    use rustix::process::{Resource, getrlimit};
    let Some(process) = spec.process_mut() else {
        return;
    };
    let Some(rlimits) = process.rlimits().clone() else {
        return;
    };
    let clamped = rlimits
        .into_iter()
        .map(|limit| {
            if limit.typ() == oci_spec::runtime::PosixRlimitType::RlimitNofile
                && let Some(max) = getrlimit(Resource::Nofile).maximum
            {
                let hard = limit.hard().min(max);
                let clamped = oci_spec::runtime::PosixRlimitBuilder::default()
                    .typ(limit.typ())
                    .hard(hard)
                    .soft(limit.soft().min(hard))
                    .build();
                return clamped.unwrap_or(limit);
            }
            limit
        })
        .collect();
    process.set_rlimits(Some(clamped));
}

/// Recomputes the shared writable-layer quota once the containers on
/// disk are all back in the table, whichever way `restore` returns.
struct RebalanceOnDrop<'a>(&'a Manager);

impl Drop for RebalanceOnDrop<'_> {
    fn drop(&mut self) {
        self.0.rebalance_storage();
    }
}

fn create_private_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(mode).create(dir).at(dir)
}

/// The image's `VOLUME`s that no mount of the container covers: an
/// anonymous volume each, filled from the image, as dockerd makes them.
/// A `VOLUME` is only ever a path in the container (dockerd's
/// `filepath.Clean` of it): never read as a `-v` flag, whose `:` would
/// let an image name a host path or another application's volume.
fn add_image_volumes(opts: &mut RunOptions, image: &oci_spec::image::ImageConfiguration) {
    let declared = image
        .config()
        .as_ref()
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default();
    for declared in declared {
        let target = clean_target(&declared);
        if target == "/"
            || opts
                .mounts
                .iter()
                .any(|m| clean_target(&m.target) == target)
        {
            continue;
        }
        let mount = husk_api::containers::Mount {
            kind: husk_api::containers::MountKind::Volume,
            source: String::new(),
            target,
            read_only: false,
            tmpfs_size: None,
            tmpfs_mode: None,
            anonymous: true,
            no_copy: false,
        };
        match mount.check() {
            Ok(()) => opts.mounts.push(mount),
            Err(e) => log::warn!(
                "{}: the image's VOLUME {declared:?} is left out: {e}",
                opts.name
            ),
        }
    }
}

/// A target as a path: `/data/`, `/data/.` and `//data` are `/data`.
fn clean_target(target: &str) -> String {
    let parts: Vec<&str> = target
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod image_volume_tests {
    use super::*;

    fn image(volumes: &[&str]) -> oci_spec::image::ImageConfiguration {
        let volumes: serde_json::Map<String, serde_json::Value> = volumes
            .iter()
            .map(|v| ((*v).to_string(), serde_json::json!({})))
            .collect();
        serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Volumes": volumes},
        }))
        .unwrap()
    }

    #[test]
    fn an_images_volumes_are_paths_never_flags() {
        let mut opts = RunOptions::new("c", "busybox");
        opts.mounts
            .push(husk_api::containers::parse_volume_flag("mine:/data").unwrap());
        add_image_volumes(
            &mut opts,
            &image(&[
                "pgdata:/steal",
                "/srv:/x",
                "/data/",
                "/.",
                "/cache/./",
                "/up/../etc",
            ]),
        );
        // `pgdata:/steal` and `/srv:/x` are odd paths, never a volume's
        // name or a bind; `/data` is the user's; `/` is never a volume;
        // `..` is refused by the target's check.
        let mut added: Vec<&str> = opts.mounts[1..].iter().map(|m| m.target.as_str()).collect();
        added.sort_unstable();
        assert_eq!(added, ["/cache", "/pgdata:/steal", "/srv:/x"]);
        for mount in &opts.mounts[1..] {
            assert_eq!(mount.kind, husk_api::containers::MountKind::Volume);
            assert!(mount.source.is_empty() && mount.anonymous, "{mount:?}");
        }
    }
}
