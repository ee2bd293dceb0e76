//! Kernel modules, loaded as udev's coldplug would but without modprobe:
//! every device's `modalias` under /sys/devices is matched against
//! `modules.alias`, and the matches are loaded with their dependencies
//! (`modules.dep`) through finit_module(2). Loading a bus driver makes
//! new devices appear (virtio_pci → virtio devices), so the scan repeats
//! until a round loads nothing new.
//!
//! The tables are boot-time only: they are dropped when this returns.

pub mod alias;
pub mod dep;
pub mod glob;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys;

/// Input files larger than this are refused (a corrupt image, not a real
/// module table).
const FILE_MAX: u64 = 16 * 1024 * 1024;
/// A modalias is one short line.
const MODALIAS_MAX: u64 = 4096;
/// /sys/devices is a tree of real directories; deeper is a loop.
const SYSFS_DEPTH_MAX: usize = 32;
/// Rounds of scan-and-load; real hardware settles in two or three.
const ROUNDS_MAX: usize = 16;

/// Module names compare with `-` and `_` equal, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// What the coldplug did.
#[derive(Debug, Default)]
pub struct Report {
    pub loaded: Vec<String>,
    pub failed: usize,
}

/// The module tables of one kernel release, and what is loaded.
struct Loader {
    dir: PathBuf,
    aliases: Vec<alias::Alias>,
    deps: dep::DepTable,
    builtin: HashSet<String>,
    /// Everything already loaded, attempted, or known not to exist.
    seen: HashSet<String>,
    report: Report,
}

impl Loader {
    fn new(dir: PathBuf) -> Self {
        let read = |name: &str| -> String {
            let path = dir.join(name);
            match sys::read_capped(&path, FILE_MAX) {
                Ok(text) => text,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound || name != "modules.builtin" {
                        log::warn!("modules: {}: {e}", path.display());
                    }
                    String::new()
                }
            }
        };
        let aliases = alias::parse(&read("modules.alias"));
        let deps = dep::parse(&read("modules.dep"));
        let builtin = read("modules.builtin")
            .lines()
            .map(dep::module_name)
            .collect();
        let seen = loaded_modules();
        Self {
            dir,
            aliases,
            deps,
            builtin,
            seen,
            report: Report::default(),
        }
    }

    /// Loads `name` and its dependencies. Returns how many got loaded.
    /// `wanted`: named in the configuration, so its absence is worth a
    /// warning (an alias match for a module the image leaves out is not).
    fn load(&mut self, name: &str, wanted: bool) -> usize {
        let name = normalize(name);
        if self.builtin.contains(&name) || self.seen.contains(&name) {
            return 0;
        }
        if !self.deps.contains_key(&name) {
            if wanted {
                log::warn!("modules: {name}: not in modules.dep");
            } else {
                log::debug!("modules: {name}: not in modules.dep");
            }
            self.seen.insert(name);
            return 0;
        }
        let mut order = Vec::new();
        dep::load_order(&self.deps, &name, &mut self.seen, &mut order);
        let mut count = 0;
        for module in order {
            if self.builtin.contains(&module) {
                continue;
            }
            let Some(entry) = self.deps.get(&module) else {
                continue;
            };
            let path = self.dir.join(&entry.path);
            match insert(&path) {
                Ok(true) => {
                    log::debug!("modules: loaded {module}");
                    self.report.loaded.push(module);
                    count += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    log::warn!("modules: {module} ({}): {e}", path.display());
                    self.report.failed += 1;
                }
            }
        }
        count
    }
}

/// finit_module on one file. `Ok(false)`: it was already loaded.
fn insert(path: &Path) -> std::io::Result<bool> {
    let file = fs::File::open(path)?;
    let name = path.to_string_lossy();
    let compressed = [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|s| name.ends_with(s));
    match sys::finit_module(&file, compressed) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Names in /proc/modules.
fn loaded_modules() -> HashSet<String> {
    sys::read_capped(Path::new("/proc/modules"), FILE_MAX)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_ascii_whitespace().next())
        .map(normalize)
        .collect()
}

/// Every device modalias under `root`, without following symlinks.
pub fn scan_modaliases(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<String>) {
    if depth > SYSFS_DEPTH_MAX {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_dir() {
            walk(&entry.path(), depth + 1, out);
        } else if ft.is_file()
            && entry.file_name() == "modalias"
            && let Ok(text) = sys::read_capped(&entry.path(), MODALIAS_MAX)
            && !text.trim().is_empty()
        {
            out.push(text.trim().to_owned());
        }
    }
}

/// Loads `always` and then whatever the present devices need, until
/// nothing new appears. Logs the summary line of the log contract.
pub fn coldplug(always: &[String]) -> Report {
    let started = Instant::now();
    let release = sys::kernel_release();
    let dir = Path::new(husk_common::paths::MODULES_DIR).join(&release);
    if !dir.is_dir() {
        log::info!("modules: no {} for kernel {release}", dir.display());
        log::info!(
            "modules: loaded 0 modules in {} ms",
            started.elapsed().as_millis()
        );
        return Report::default();
    }
    let mut loader = Loader::new(dir);
    for name in always {
        loader.load(name, true);
    }
    let mut handled: HashSet<String> = HashSet::new();
    for _ in 0..ROUNDS_MAX {
        let mut loaded = 0;
        for modalias in scan_modaliases(Path::new("/sys/devices")) {
            if !handled.insert(modalias.clone()) {
                continue;
            }
            let matches: Vec<String> = alias::lookup(&loader.aliases, &modalias)
                .into_iter()
                .map(str::to_owned)
                .collect();
            for m in matches {
                loaded += loader.load(&m, false);
            }
        }
        if loaded == 0 {
            break;
        }
    }
    let report = loader.report;
    if !report.loaded.is_empty() {
        log::info!("modules: {}", report.loaded.join(" "));
    }
    log::info!(
        "modules: loaded {} modules in {} ms",
        report.loaded.len(),
        started.elapsed().as_millis()
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_walk_finds_modaliases_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("pci0000:00/0000:00:03.0/virtio0")).unwrap();
        fs::write(
            d.join("pci0000:00/0000:00:03.0/modalias"),
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
        )
        .unwrap();
        fs::write(
            d.join("pci0000:00/0000:00:03.0/virtio0/modalias"),
            "virtio:d00000001v00001AF4\n",
        )
        .unwrap();
        // sysfs is full of links back up the tree.
        std::os::unix::fs::symlink(d, d.join("pci0000:00/loop")).unwrap();
        let mut found = scan_modaliases(d);
        found.sort();
        assert_eq!(
            found,
            [
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                "virtio:d00000001v00001AF4"
            ]
        );
    }

    #[test]
    fn names_normalize() {
        assert_eq!(normalize("xhci-pci"), "xhci_pci");
    }

    #[test]
    fn loaded_modules_are_read_from_proc() {
        // Just must not fail; containers may show none.
        let _ = loaded_modules();
    }
}
