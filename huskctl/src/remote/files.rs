//! huskctl's config dir and how its files are written: whole or not
//! at all, the dirs private.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// `$XDG_CONFIG_HOME/husk`, else `$HOME/.config/husk` (relative values
/// are ignored, as XDG says).
pub fn config_dir(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg_config_home)
        .map(|dir| dir.join("husk"))
        .or_else(|| absolute(home).map(|home| home.join(".config/husk")))
}

/// The config dir, or why there is none.
pub fn need_config(config: Option<&Path>) -> Result<&Path, String> {
    config.ok_or_else(|| {
        "no config dir: set HOME or XDG_CONFIG_HOME (or give --tls-dir for the certificates)"
            .to_owned()
    })
}

/// Creates `dir` (and its parents) as 0700 if it is missing: it holds
/// keys, or the names of the files that do.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Writes `path` whole or not at all (husk-common's atomic writes):
/// over the old file (`replace`), or only where there is none (a key is
/// never overwritten).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), String> {
    let shown = path.display();
    let result = if replace {
        husk_common::atomic::write_atomic(path, bytes, mode)
    } else {
        husk_common::atomic::write_new(path, bytes, mode)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(format!("{shown} exists: not overwriting it"))
        }
        Err(e) => Err(format!("cannot write {shown}: {e}")),
    }
}

/// A file's bytes; `what` says what it is for.
pub(super) fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{} ({what}): {e}", path.display()))
}
