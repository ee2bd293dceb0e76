//! Finding the host tools some writers and their tests run (mke2fs,
//! sgdisk, fsck.vfat, ...): Debian installs them in /usr/sbin, which an
//! unprivileged user's PATH usually lacks.

use std::path::PathBuf;

/// `name` on PATH, or else in /usr/sbin or /sbin.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// [`find`] for tests: panics with the package to install.
#[cfg(test)]
pub(crate) fn require(name: &str, package: &str) -> std::process::Command {
    let path = find(name).unwrap_or_else(|| panic!("{name} not found: apt-get install {package}"));
    std::process::Command::new(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_sbin_tools_without_them_on_path() {
        assert!(super::find("sh").is_some());
        assert!(super::find("no-such-tool-anywhere").is_none());
    }
}
