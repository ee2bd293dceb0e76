//! Finds the kernel an image is built with. The default is Debian's
//! `linux-image-cloud-amd64`: the newest `/boot/vmlinuz-*-cloud-amd64`,
//! with its modules in `/lib/modules/<release>`.

use std::path::{Path, PathBuf};

const BOOT_DIR: &str = "/boot";
const MODULES_ROOT: &str = "/lib/modules";

/// What to install when no kernel is found.
pub const KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";

/// The release string of a `vmlinuz-<release>` file name.
pub fn release_of(kernel: &Path) -> Option<String> {
    let name = kernel.file_name()?.to_str()?;
    name.strip_prefix("vmlinuz-").map(str::to_owned)
}

/// Orders kernel releases as versions: `6.1.0-9` before `6.1.0-10`.
fn version_key(release: &str) -> Vec<(u64, String)> {
    release
        .split(['.', '-'])
        .map(|part| (part.parse().unwrap_or(0), part.to_owned()))
        .collect()
}

/// The newest Debian cloud kernel installed, if any.
pub fn default_kernel() -> Option<PathBuf> {
    newest_cloud_kernel_in(Path::new(BOOT_DIR))
}

/// The newest `vmlinuz-*-cloud-amd64` in `boot`.
pub fn newest_cloud_kernel_in(boot: &Path) -> Option<PathBuf> {
    std::fs::read_dir(boot)
        .ok()?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let release = release_of(&path)?;
            release
                .ends_with("-cloud-amd64")
                .then(|| (version_key(&release), path))
        })
        .max()
        .map(|(_, path)| path)
}

/// `/lib/modules/<release>` for a kernel named `vmlinuz-<release>`.
pub fn modules_dir_for(kernel: &Path) -> Option<PathBuf> {
    release_of(kernel).map(|release| Path::new(MODULES_ROOT).join(release))
}

/// The modules of [`default_kernel`].
pub fn default_modules_dir() -> Option<PathBuf> {
    default_kernel().and_then(|k| modules_dir_for(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_sort_as_versions() {
        let mut releases = [
            "6.1.0-10-cloud-amd64",
            "6.1.0-9-cloud-amd64",
            "6.12.0-1-cloud-amd64",
        ];
        releases.sort_by_key(|r| version_key(r));
        assert_eq!(
            releases,
            [
                "6.1.0-9-cloud-amd64",
                "6.1.0-10-cloud-amd64",
                "6.12.0-1-cloud-amd64"
            ]
        );
    }

    #[test]
    fn only_cloud_kernels_are_candidates() {
        let boot = tempfile::tempdir().unwrap();
        for name in ["vmlinuz-6.1.0-56-amd64", "config-6.1.0-56-cloud-amd64"] {
            std::fs::write(boot.path().join(name), b"").unwrap();
        }
        assert_eq!(newest_cloud_kernel_in(boot.path()), None);
        for name in [
            "vmlinuz-6.1.0-9-cloud-amd64",
            "vmlinuz-6.1.0-10-cloud-amd64",
        ] {
            std::fs::write(boot.path().join(name), b"").unwrap();
        }
        assert_eq!(
            newest_cloud_kernel_in(boot.path()),
            Some(boot.path().join("vmlinuz-6.1.0-10-cloud-amd64"))
        );
    }

    #[test]
    fn release_comes_from_the_file_name() {
        assert_eq!(
            release_of(Path::new("/boot/vmlinuz-6.1.0-56-cloud-amd64")).as_deref(),
            Some("6.1.0-56-cloud-amd64")
        );
        assert_eq!(release_of(Path::new("/boot/bzImage")), None);
        assert_eq!(
            modules_dir_for(Path::new("/x/vmlinuz-6.1.0-56-cloud-amd64")).unwrap(),
            Path::new("/lib/modules/6.1.0-56-cloud-amd64")
        );
    }
}
