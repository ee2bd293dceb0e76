//! Picks the kernel modules an image needs out of a kernel's module tree:
//! the requested ones and, through `modules.dep`, everything they depend
//! on, never the whole tree. Writes the index files husk-init reads at
//! boot (`modules.dep`, `modules.alias`, `modules.builtin`), cut down to
//! the modules actually shipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The modules every Husk image carries unless the config says otherwise:
/// the buses, disks and NICs of QEMU/KVM and the big clouds, the ACPI
/// power button and input events (orderly shutdown on "stop instance"),
/// overlayfs (container root filesystems) and what reads the ESP.
pub const DEFAULT_MODULES: &[&str] = &[
    // virtio: QEMU, KVM, GCE, most clouds
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_scsi",
    "virtio_console",
    "virtio_rng",
    // AWS (ENA NIC; NVMe is built in), Azure (Hyper-V), Google (gVNIC)
    "ena",
    "hv_vmbus",
    "hv_netvsc",
    "hv_storvsc",
    "gve",
    // power button and its input events
    "button",
    "evdev",
    // containers, the ESP and EFI variables (boot counting)
    "overlay",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "efivarfs",
    // config drives (NoCloud's cidata is usually an ISO 9660 image)
    "isofs",
    // containers' networks: the bridge, veth pairs, and the nftables
    // expressions of the agent's table (NAT, masquerade, conntrack state,
    // fib address types); their dependencies (nf_conntrack, nf_nat,
    // nft_fib_ipv4/6) come through modules.dep
    "bridge",
    "veth",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib_inet",
    // the data partition's project quotas (ext4's quota feature needs the
    // v2 quota format; init loads it before mounting)
    "quota_v2",
    // ext4's metadata checksums: the generic crc32c is built in; the
    // SSE4.2 one is 10x faster, and coldplug loads it through the CPU's
    // modalias where the CPU has the instruction.
    "crc32c_intel",
];

#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {name:?} is neither in {dir}/modules.dep nor built into the kernel")]
    Unknown { name: String, dir: PathBuf },
}

/// A module to ship: its path relative to the modules directory and bytes.
#[derive(Debug)]
pub struct ShippedModule {
    pub relative_path: String,
    pub contents: Vec<u8>,
}

/// The selected modules plus the index files to write beside them.
#[derive(Debug)]
pub struct ModuleSelection {
    pub release: String,
    pub modules: Vec<ShippedModule>,
    pub index_files: Vec<(String, Vec<u8>)>,
    /// Requested modules that are built into this kernel (nothing to ship).
    pub builtin: Vec<String>,
}

/// Module names compare with `-` and `_` as the same character.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name_of(relative_path: &str) -> String {
    let file = relative_path.rsplit('/').next().unwrap_or(relative_path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// `modules.dep`: `kernel/a/b.ko: kernel/c.ko kernel/d.ko`, by module name.
fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            let module = module.trim();
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            Some((module_name_of(module), (module.to_owned(), deps)))
        })
        .collect()
}

/// Resolves `requested` and their dependencies in `modules_dir` (a
/// `/lib/modules/<release>` tree). Requested modules that are built into
/// the kernel are reported, not shipped. `required` modules that exist
/// nowhere are an error; missing optional ones are skipped.
pub fn select(
    modules_dir: &Path,
    required: &[String],
    optional: &[&str],
) -> Result<ModuleSelection, ModulesError> {
    let read = |name: &str| -> Result<String, ModulesError> {
        let path = modules_dir.join(name);
        fs::read_to_string(&path).map_err(|source| ModulesError::Read { path, source })
    };
    let dep = parse_dep(&read("modules.dep")?);
    let builtin_text = read("modules.builtin").unwrap_or_default();
    let builtin_names: BTreeSet<String> = builtin_text.lines().map(module_name_of).collect();

    let mut wanted: Vec<(String, bool)> = required.iter().map(|m| (normalize(m), true)).collect();
    wanted.extend(optional.iter().map(|m| (normalize(m), false)));

    let mut chosen: BTreeSet<String> = BTreeSet::new(); // relative paths
    let mut builtin = Vec::new();
    for (name, is_required) in wanted {
        if let Some((path, deps)) = dep.get(&name) {
            chosen.insert(path.clone());
            // modules.dep already lists the full transitive closure.
            chosen.extend(deps.iter().cloned());
        } else if builtin_names.contains(&name) {
            builtin.push(name);
        } else if is_required {
            return Err(ModulesError::Unknown {
                name,
                dir: modules_dir.to_owned(),
            });
        } else {
            log::debug!("module {name} is not in this kernel; skipped");
        }
    }

    let mut modules = Vec::new();
    for relative_path in &chosen {
        let path = modules_dir.join(relative_path);
        let contents = fs::read(&path).map_err(|source| ModulesError::Read { path, source })?;
        modules.push(ShippedModule {
            relative_path: relative_path.clone(),
            contents,
        });
    }

    let chosen_names: BTreeSet<String> = chosen.iter().map(|p| module_name_of(p)).collect();
    let dep_out: String = dep
        .values()
        .filter(|(path, _)| chosen.contains(path))
        .map(|(path, deps)| format!("{path}: {}\n", deps.join(" ")))
        .collect();
    let alias_out: String = read("modules.alias")?
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(2)
                .is_some_and(|m| chosen_names.contains(&normalize(m)))
        })
        .map(|line| format!("{line}\n"))
        .collect();

    let release = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(ModuleSelection {
        release,
        modules,
        index_files: vec![
            ("modules.dep".into(), dep_out.into_bytes()),
            ("modules.alias".into(), alias_out.into_bytes()),
            ("modules.builtin".into(), builtin_text.into_bytes()),
        ],
        builtin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("kernel/drivers")).unwrap();
        for m in ["a.ko", "b-dep.ko", "c.ko", "unused.ko"] {
            fs::write(root.join("kernel/drivers").join(m), m).unwrap();
        }
        fs::write(
            root.join("modules.dep"),
            "kernel/drivers/a.ko: kernel/drivers/b-dep.ko\n\
             kernel/drivers/b-dep.ko:\n\
             kernel/drivers/c.ko: kernel/drivers/b-dep.ko\n\
             kernel/drivers/unused.ko:\n",
        )
        .unwrap();
        fs::write(
            root.join("modules.alias"),
            "# Aliases extracted from modules themselves.\n\
             alias pci:v00001AF4d* a\n\
             alias virtio:d00000001v* unused\n\
             alias fs-b b_dep\n",
        )
        .unwrap();
        fs::write(root.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        dir
    }

    #[test]
    fn ships_the_closure_and_trims_the_indexes() {
        let tree = fake_tree();
        let sel = select(tree.path(), &["a".into()], &["ext4", "not_here"]).unwrap();
        let paths: Vec<&str> = sel
            .modules
            .iter()
            .map(|m| m.relative_path.as_str())
            .collect();
        assert_eq!(paths, ["kernel/drivers/a.ko", "kernel/drivers/b-dep.ko"]);
        assert_eq!(sel.builtin, ["ext4"]);
        let index = |name: &str| {
            let (_, bytes) = sel.index_files.iter().find(|(n, _)| n == name).unwrap();
            String::from_utf8(bytes.clone()).unwrap()
        };
        assert_eq!(
            index("modules.dep"),
            "kernel/drivers/a.ko: kernel/drivers/b-dep.ko\nkernel/drivers/b-dep.ko: \n"
        );
        assert_eq!(
            index("modules.alias"),
            "alias pci:v00001AF4d* a\nalias fs-b b_dep\n"
        );
    }

    #[test]
    fn a_required_module_that_does_not_exist_is_named() {
        let tree = fake_tree();
        let err = select(tree.path(), &["nope".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    #[test]
    fn real_debian_kernel_defaults_resolve() {
        let Some(dir) = crate::kernel::default_modules_dir() else {
            panic!("no Debian cloud kernel: apt-get install linux-image-cloud-amd64");
        };
        let sel = select(&dir, &[], DEFAULT_MODULES).unwrap();
        let names: BTreeSet<String> = sel
            .modules
            .iter()
            .map(|m| module_name_of(&m.relative_path))
            .collect();
        for needed in [
            "quota_v2",
            "quota_tree",
            "virtio_pci",
            "virtio_net",
            "virtio_blk",
            "overlay",
            "evdev",
            "button",
        ] {
            assert!(names.contains(needed), "{needed} missing from {names:?}");
        }
        // virtio_net pulls net_failover through modules.dep.
        assert!(names.contains("net_failover"), "{names:?}");
    }
}
