//! A guest for other container engines: the product kernel and image
//! plus the checker, a busybox image archive and Debian's containerd,
//! ctr, runc shim and crun with their shared libraries (the host's
//! binaries, at the host's paths). `tests/engines.rs` checks containerd
//! through it and `cargo xtask bench runtime` times it.

use std::path::Path;

pub use husk_check::{CONTAINERD_BENCH as BENCH_SCENARIO, ENGINE_IMAGE};
use husk_check::{ENGINE_ARCHIVE, ENGINE_BINARIES};

use crate::error::{Error, Result};
use crate::{GuestImage, InitConfig, Kernel, TestDir, Vm, VmBuilder, host_binary};

/// The initramfs holds ~90 MB of Go binaries (39 MB compressed),
/// unpacked and then copied into init's tmpfs; containerd, the shims
/// and ctr run beside them.
const MEMORY_MIB: u32 = 1024;

/// Boots the engines guest with `config` (its checker services) and
/// `image_archive`, an OCI archive of an image named [`ENGINE_IMAGE`]
/// (`husk_testkit::oci_archive`).
pub fn boot(dir: TestDir, config: &InitConfig, image_archive: &[u8]) -> Result<Vm> {
    let archive = dir.path().join("busybox-oci.tar");
    std::fs::write(&archive, image_archive)
        .map_err(|e| Error::io("writing the image archive", e))?;
    let binaries: Vec<(&Path, &str)> = ENGINE_BINARIES
        .iter()
        .map(|path| (Path::new(path), *path))
        .collect();
    let mut image = GuestImage::builder()
        .init_config(config.to_toml())
        .checker()
        .file(&archive, ENGINE_ARCHIVE, 0o644);
    for (host, guest, mode) in host_binary::with_libraries(&binaries)? {
        image = image.file(host, &guest, mode);
    }
    let initrd = image.build(dir.path())?;
    VmBuilder::new(dir)
        .kernel(&Kernel::get()?.image)
        .initrd(initrd)
        .memory_mib(MEMORY_MIB)
        .launch()
}
