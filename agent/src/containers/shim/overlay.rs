//! The container's root filesystem: an overlay of the image's layers under
//! its writable layer, mounted by the shim in its private mount namespace
//! (so it never appears in the host's mount table and vanishes with the
//! container).

use std::io;

use rustix::mount::MountFlags;

use super::config::Overlay;

/// One page, less the terminating NUL: mount(2)'s limit on options.
const MAX_OPTIONS: usize = 4095;

/// The `lowerdir=…,upperdir=…,workdir=…` options. Layer names are hex
/// digests; anything overlayfs would parse (`,` `:` `\`) is escaped.
pub fn options(overlay: &Overlay) -> io::Result<String> {
    let escape = |p: &std::path::Path| -> io::Result<String> {
        let s = p
            .to_str()
            .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", p.display())))?;
        Ok(s.replace('\\', "\\\\")
            .replace(':', "\\:")
            .replace(',', "\\,"))
    };
    if overlay.lower.is_empty() {
        return Err(io::Error::other(
            "an overlay needs at least one lower layer",
        ));
    }
    let lower = overlay
        .lower
        .iter()
        .map(|p| escape(p))
        .collect::<io::Result<Vec<_>>>()?
        .join(":");
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={},index=off,redirect_dir=off",
        escape(&overlay.upper)?,
        escape(&overlay.work)?
    );
    if options.len() > MAX_OPTIONS {
        return Err(io::Error::other(format!(
            "the image has too many layers ({}) for one overlay mount",
            overlay.lower.len()
        )));
    }
    Ok(options)
}

/// Mounts the overlay. Changes the working directory to the layers (the
/// relative `lowerdir=` names resolve from it): only for the shim, which
/// is single-threaded.
pub fn mount(overlay: &Overlay) -> io::Result<()> {
    if let Some(map) = &overlay.idmap {
        return mount(&super::idmap::layers(overlay, map)?);
    }
    let options = std::ffi::CString::new(options(overlay)?)
        .map_err(|_| io::Error::other("a NUL byte in the overlay options"))?;
    std::env::set_current_dir(&overlay.layers_dir)?;
    std::fs::create_dir_all(&overlay.target)?;
    rustix::mount::mount(
        "overlay",
        &overlay.target,
        "overlay",
        MountFlags::NODEV,
        Some(options.as_c_str()),
    )
    .map_err(|e| {
        io::Error::other(format!(
            "mounting the overlay on {}: {e}",
            overlay.target.display()
        ))
    })?;
    std::env::set_current_dir("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn overlay(lower: Vec<PathBuf>) -> Overlay {
        Overlay {
            layers_dir: "/var/lib/husk/layers".into(),
            lower,
            upper: "/var/lib/husk/containers/a/upper".into(),
            work: "/var/lib/husk/containers/a/work".into(),
            target: "/var/lib/husk/containers/a/bundle/rootfs".into(),
            idmap: None,
        }
    }

    #[test]
    fn lists_layers_top_first_and_escapes() {
        let o = overlay(vec!["top".into(), "ba:se,x".into()]);
        assert_eq!(
            options(&o).unwrap(),
            "lowerdir=top:ba\\:se\\,x,upperdir=/var/lib/husk/containers/a/upper,\
             workdir=/var/lib/husk/containers/a/work,index=off,redirect_dir=off"
        );
    }

    #[test]
    fn sixty_layers_fit_and_too_many_are_refused() {
        let hex = |i: usize| PathBuf::from(format!("{i:064x}"));
        assert!(options(&overlay((0..60).map(hex).collect())).is_ok());
        let err = options(&overlay((0..70).map(hex).collect())).unwrap_err();
        assert!(err.to_string().contains("too many layers (70)"), "{err}");
        assert!(options(&overlay(vec![])).is_err());
    }
}
