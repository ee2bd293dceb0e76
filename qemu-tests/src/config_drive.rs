//! A config drive as a cloud attaches one: a small FAT image labelled
//! `HUSKCFG` holding `user-data`, for the tests that hand a machine its
//! user-data the way the first of the agent's sources finds it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `dir/config-drive.img` (4 MiB) holding `user_data`.
pub fn config_drive(dir: &Path, user_data: &str) -> Result<PathBuf> {
    let path = dir.join("config-drive.img");
    let io = |e| Error::io("building the config drive", e);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io)?;
    file.set_len(4 << 20).map_err(io)?;
    fatfs::format_volume(
        &file,
        fatfs::FormatVolumeOptions::new().volume_label(*b"HUSKCFG    "),
    )
    .map_err(io)?;
    let fs = fatfs::FileSystem::new(&file, fatfs::FsOptions::new()).map_err(io)?;
    let mut f = fs.root_dir().create_file("user-data").map_err(io)?;
    f.write_all(user_data.as_bytes()).map_err(io)?;
    drop(f);
    fs.unmount().map_err(io)?;
    Ok(path)
}
