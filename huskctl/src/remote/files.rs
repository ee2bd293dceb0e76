//! huskctl's config dir and how its files are written: whole or not
//! at all, the dirs private.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Writes `path` whole or not at all, through a temporary file beside
/// it: renamed over the old file (`replace`), or linked in place, which
/// fails if the file exists (a key is never overwritten).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown} names no file"))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if replace {
            fs::rename(&tmp, path)
        } else {
            fs::hard_link(&tmp, path)
        }
    })();
    let _ = fs::remove_file(&tmp);
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
