//! What the host must provide: QEMU and a kernel with its modules.
//! Missing pieces fail the test with the command that installs them —
//! a silently skipped boot test is worse than a failing one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The packages that provide everything here.
pub const INSTALL_HINT: &str = "apt-get install qemu-system-x86 linux-image-cloud-amd64";

/// A kernel image to boot instead of the newest installed cloud kernel.
pub const KERNEL_ENV: &str = "HUSK_KERNEL";
/// That kernel's modules directory (default `/lib/modules/<release>`).
pub const MODULES_ENV: &str = "HUSK_MODULES";
/// A QEMU binary other than `qemu-system-x86_64` from `$PATH`.
pub const QEMU_ENV: &str = "HUSK_QEMU";

const QEMU_NAME: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The bzImage (`/boot/vmlinuz-…`).
    pub image: PathBuf,
    /// `uname -r` of that kernel, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// `/lib/modules/<release>`, holding `modules.dep`.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// The kernel to boot, found once per test binary.
    pub fn get() -> Result<&'static Kernel> {
        static KERNEL: OnceLock<Result<Kernel, String>> = OnceLock::new();
        KERNEL
            .get_or_init(|| {
                Kernel::find().map_err(|e| match e {
                    Error::Prerequisite(message) => message,
                    other => other.to_string(),
                })
            })
            .as_ref()
            .map_err(|e| Error::Prerequisite(e.clone()))
    }

    /// `$HUSK_KERNEL`, else the newest `/boot/vmlinuz-*-cloud-amd64`.
    pub fn find() -> Result<Kernel> {
        let modules_env = std::env::var_os(MODULES_ENV).map(PathBuf::from);
        let image = match std::env::var_os(KERNEL_ENV) {
            Some(path) => PathBuf::from(path),
            None => newest_cloud_kernel()?,
        };
        let release = match husk_image::kernel::release_of(&image) {
            Some(release) => release,
            // A custom kernel name: the modules directory says it.
            None => modules_env
                .as_deref()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    Error::Prerequisite(format!(
                        "cannot tell the release of {} (not named vmlinuz-<release>); set {MODULES_ENV}",
                        image.display()
                    ))
                })?,
        };
        let modules_dir = modules_env.unwrap_or_else(|| Path::new("/lib/modules").join(&release));
        if std::fs::File::open(&image).is_err() {
            return Err(Error::Prerequisite(format!(
                "kernel {} is missing or unreadable; install it: {INSTALL_HINT}",
                image.display()
            )));
        }
        if !modules_dir.join("modules.dep").is_file() {
            return Err(Error::Prerequisite(format!(
                "{} has no modules.dep; install the kernel's modules: {INSTALL_HINT}",
                modules_dir.display()
            )));
        }
        Ok(Kernel {
            image,
            release,
            modules_dir,
        })
    }
}

/// The newest installed Debian cloud kernel (husk-image's own default).
fn newest_cloud_kernel() -> Result<PathBuf> {
    husk_image::kernel::default_kernel().ok_or_else(|| {
        Error::Prerequisite(format!(
            "no /boot/vmlinuz-*-cloud-amd64; install it: {INSTALL_HINT} (or set {KERNEL_ENV})"
        ))
    })
}

/// `$HUSK_QEMU`, else `qemu-system-x86_64` from `$PATH`.
pub fn qemu_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(QEMU_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(Error::Prerequisite(format!(
                "{QEMU_ENV}={} does not exist; unset it or install QEMU: {INSTALL_HINT}",
                path.display()
            )));
        }
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(QEMU_NAME))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::Prerequisite(format!(
                "{QEMU_NAME} is not in $PATH; install it: {INSTALL_HINT}"
            ))
        })
}
