//! Loading and checking a bundle's config.json before anything is made, so
//! a bad spec fails `create` with the problem named and nothing left behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::error::{Result, RuntimeError};

/// A loaded bundle: its directory (absolute), spec and rootfs path.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = std::path::absolute(dir)
            .map_err(|e| RuntimeError::os(format!("bundle {}", dir.display()), e))?;
        let config = dir.join("config.json");
        let text = std::fs::read(&config)
            .map_err(|e| RuntimeError::os(format!("reading {}", config.display()), e))?;
        let spec: Spec = serde_json::from_slice(&text)
            .map_err(|e| RuntimeError::Config(format!("{}: {e}", config.display())))?;
        let rootfs = validate(&spec)?;
        let rootfs = if rootfs.is_absolute() {
            rootfs
        } else {
            dir.join(rootfs)
        };
        if !rootfs.is_dir() {
            return Err(RuntimeError::Config(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        Ok(Self { dir, spec, rootfs })
    }
}

/// Checks what the runtime relies on; returns root.path.
pub fn validate(spec: &Spec) -> Result<PathBuf> {
    let bad = |m: String| Err(RuntimeError::Config(m));
    let Some(root) = spec.root() else {
        return bad("no root: the spec must name the container's root filesystem".into());
    };
    if root.path().as_os_str().is_empty() {
        return bad("root.path is empty".into());
    }
    let Some(process) = spec.process() else {
        return bad("no process: nothing to run".into());
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return bad("process.args is empty".into());
    }
    if !process.cwd().is_absolute() {
        return bad(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        ));
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return bad(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            ));
        }
    }
    super::hooks::validate(spec.hooks().as_ref())?;
    // A profile asked for and silently not applied would be a container
    // less confined than its engine believes (runc refuses it too when
    // AppArmor is off).
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(RuntimeError::Unsupported(
            "process.apparmorProfile: Husk's runtime has no AppArmor".into(),
        ));
    }
    if let Some(linux) = spec.linux() {
        for p in linux
            .masked_paths()
            .iter()
            .flatten()
            .chain(linux.readonly_paths().iter().flatten())
        {
            if !p.starts_with('/') {
                return bad(format!("masked/readonly path {p} is not absolute"));
            }
        }
    }
    Ok(root.path().clone())
}
