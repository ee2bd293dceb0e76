//! `modules.dep`: `path/of/mod.ko: path/of/dep.ko …`, paths relative to
//! the release's module directory. Every line lists a module's complete
//! dependency closure; the load order comes from walking it depth-first.

use std::collections::{HashMap, HashSet};

use super::normalize;

/// A module file and the names of the modules it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub path: String,
    pub deps: Vec<String>,
}

/// The dependency table, by normalized module name.
pub type DepTable = HashMap<String, DepEntry>;

/// A module's name from its file path: the base name without `.ko` (and
/// any compression suffix), `-` as `_`.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split_once(".ko").map_or(base, |(stem, _)| stem);
    normalize(stem)
}

/// Parses modules.dep text; malformed lines are skipped.
pub fn parse(text: &str) -> DepTable {
    let mut table = DepTable::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() || path.starts_with('#') {
            continue;
        }
        let deps = deps.split_ascii_whitespace().map(module_name).collect();
        table.insert(
            module_name(path),
            DepEntry {
                path: path.to_owned(),
                deps,
            },
        );
    }
    table
}

/// Appends `name` and everything it needs to `order`, dependencies first,
/// skipping what `seen` already holds. Unknown names are left out;
/// cycles (which depmod never writes) end the walk instead of hanging.
pub fn load_order(
    table: &DepTable,
    name: &str,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
) {
    visit(table, name, seen, order, 0);
}

/// Deeper than this is a broken table, not a real chain of modules.
const MAX_DEPTH: usize = 64;

fn visit(
    table: &DepTable,
    name: &str,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH || !seen.insert(name.to_owned()) {
        return;
    }
    let Some(entry) = table.get(name) else {
        return;
    };
    for dep in &entry.deps {
        visit(table, dep, seen, order, depth + 1);
    }
    order.push(name.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/hid/hid-generic.ko.xz: kernel/drivers/hid/hid.ko.xz
";

    fn order(table: &DepTable, names: &[&str]) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for n in names {
            load_order(table, n, &mut seen, &mut out);
        }
        out
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio_pci.ko"),
            "virtio_pci"
        );
        assert_eq!(
            module_name("kernel/drivers/hid/hid-generic.ko.xz"),
            "hid_generic"
        );
        assert_eq!(module_name("x.ko.zst"), "x");
    }

    #[test]
    fn parses_paths_and_deps() {
        let t = parse(SAMPLE);
        assert_eq!(t["overlay"].path, "kernel/fs/overlayfs/overlay.ko");
        assert!(t["overlay"].deps.is_empty());
        assert_eq!(
            t["virtio_pci"].deps,
            [
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio",
                "virtio_ring"
            ]
        );
        assert_eq!(t["hid_generic"].deps, ["hid"]);
    }

    #[test]
    fn dependencies_come_first_once() {
        let t = parse(SAMPLE);
        let o = order(&t, &["virtio_net", "virtio_pci"]);
        let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
        assert!(pos("failover") < pos("net_failover"));
        assert!(pos("net_failover") < pos("virtio_net"));
        assert!(pos("virtio") < pos("virtio_net"));
        assert!(pos("virtio_ring") < pos("virtio_pci"));
        assert_eq!(o.last().map(String::as_str), Some("virtio_pci"));
        let unique: HashSet<_> = o.iter().collect();
        assert_eq!(unique.len(), o.len());
        assert_eq!(o.len(), 8);
    }

    #[test]
    fn cycles_and_unknown_names_end() {
        let t = parse("a.ko: b.ko\nb.ko: a.ko\n");
        assert_eq!(order(&t, &["a"]), ["b", "a"]);
        assert!(order(&t, &["nope"]).is_empty());
    }

    #[test]
    fn the_real_debian_file_orders_virtio_net() {
        let Ok(text) = std::fs::read_to_string("/lib/modules/6.1.0-56-cloud-amd64/modules.dep")
        else {
            return;
        };
        let t = parse(&text);
        assert!(t.len() > 1000);
        let o = order(&t, &["virtio_net"]);
        assert_eq!(o.last().map(String::as_str), Some("virtio_net"));
        assert!(o.contains(&"failover".to_owned()));
    }
}
