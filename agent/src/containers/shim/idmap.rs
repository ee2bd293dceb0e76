//! A container in a user namespace sees its image's files through
//! idmapped mounts of the layers: a file the layer stores as owned by
//! uid 0 appears owned by the container's root (host uid `host_uid`) and
//! so as root inside. The layers on disk stay as the store unpacked them,
//! shared by every container whatever its range. The mounts live in the
//! shim's private mount namespace, and go with it. Where the kernel or
//! the layers' filesystem cannot idmap a mount, the layer is copied with
//! its ids shifted instead ([`super::chowned`]), once per container.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::config::Overlay;
use crate::containers::sys;
use husk_api::containers::UserNamespace;

/// `overlay` with each lower layer replaced by an idmapped mount of it
/// (under `<bundle>/layers`, named 0, 1, … so the overlay's options stay
/// short), and the writable layer's root owned by the container's root.
pub fn layers(overlay: &Overlay, map: &UserNamespace) -> io::Result<Overlay> {
    let userns = sys::user_namespace(map)
        .map_err(|e| io::Error::other(format!("making the user namespace to idmap with: {e}")))?;
    let bundle = overlay
        .target
        .parent()
        .ok_or_else(|| io::Error::other("the overlay's mount point has no parent"))?;
    let dir = bundle.join("layers");
    let copies = overlay
        .upper
        .parent()
        .ok_or_else(|| io::Error::other("the writable layer has no parent"))?
        .join("layers-userns");
    let mut lower = Vec::with_capacity(overlay.lower.len());
    for (i, layer) in overlay.lower.iter().enumerate() {
        let source = overlay.layers_dir.join(layer);
        let name = PathBuf::from(i.to_string());
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            &source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| io::Error::other(format!("open_tree {}: {e}", source.display())))?;
        if let Err(e) = sys::idmap(tree.as_fd(), userns.as_fd()) {
            log::warn!(
                "cannot idmap layer {} ({e}): using a copy with shifted ids",
                source.display()
            );
            std::fs::create_dir_all(&copies)?;
            let copy = copies.join(&name);
            if !copy.exists() {
                super::chowned::copy_layer(&source, &copy, map)?;
            }
            lower.push(copy);
            continue;
        }
        let target = dir.join(&name);
        std::fs::create_dir_all(&target)?;
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            rustix::fs::CWD,
            &target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| io::Error::other(format!("attaching {}: {e}", target.display())))?;
        lower.push(name);
    }
    // New files in the writable layer get the creator's host ids; its root
    // directory must be the container root's, as `/` is in the image.
    rustix::fs::chown(
        &overlay.upper,
        Some(rustix::process::Uid::from_raw(map.host_uid)),
        Some(rustix::process::Gid::from_raw(map.host_gid)),
    )
    .map_err(|e| io::Error::other(format!("chown {}: {e}", overlay.upper.display())))?;
    Ok(Overlay {
        layers_dir: dir,
        lower,
        idmap: None,
        ..overlay.clone()
    })
}
