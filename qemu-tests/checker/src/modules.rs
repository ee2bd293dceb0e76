//! `modules`: the kernel modules coldplug and the always-load list must
//! have brought in.

use std::fs;
use std::path::Path;

use super::{Outcome, say};

/// PCI vendor id of virtio devices.
const VIRTIO_VENDOR: &str = "0x1af4";

pub fn run(_: &[String]) -> Outcome {
    let text =
        fs::read_to_string("/proc/modules").map_err(|e| format!("reading /proc/modules: {e}"))?;
    let loaded = module_names(&text);
    say("modules", &format!("loaded: {}", loaded.join(" ")));
    let mut required = vec!["overlay"];
    if has_virtio_pci_device() {
        required.push("virtio_pci");
    }
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|m| !loaded.iter().any(|l| l == m) && !builtin(m))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not loaded: {}", missing.join(", ")))
    }
}

/// First column of /proc/modules.
pub fn module_names(proc_modules: &str) -> Vec<String> {
    proc_modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Built-in modules are absent from /proc/modules but may appear here.
fn builtin(name: &str) -> bool {
    Path::new("/sys/module").join(name).exists()
}

fn has_virtio_pci_device() -> bool {
    let Ok(devices) = fs::read_dir("/sys/bus/pci/devices") else {
        return false;
    };
    devices.filter_map(|d| d.ok()).any(|d| {
        fs::read_to_string(d.path().join("vendor")).is_ok_and(|v| v.trim() == VIRTIO_VENDOR)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_first_column() {
        let text = "overlay 151552 0 - Live 0x0000000000000000\n\
                    virtio_pci 24576 0 - Live 0x0000000000000000\n";
        assert_eq!(module_names(text), ["overlay", "virtio_pci"]);
    }
}
