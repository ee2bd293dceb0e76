//! Downloading a UKI onto the data partition: into `<name>.part`, resumed
//! from where an earlier attempt (or boot) stopped, with HTTP ranges; the
//! length is capped at the signed size and the SHA-256 checked over the
//! whole file before it is renamed to its final name.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;

use super::hashing::{Digest, HashingWriter};
use super::repo::UkiTarget;
use super::{UpdateError, fault};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Downloads `target` as `dir/<file_name>`; returns its path. A complete,
/// verified file already there is reused.
pub async fn fetch(
    target: &UkiTarget,
    dir: &Path,
    file_name: &str,
) -> Result<PathBuf, UpdateError> {
    let io_err =
        |path: &Path, e: std::io::Error| UpdateError::Io(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let done = dir.join(file_name);
    if done.is_file() && verify_off_thread(&done, target).await.is_ok() {
        return Ok(done);
    }
    let part = dir.join(format!("{file_name}.part"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(|e| io_err(&part, e))?;
    let mut have = file.metadata().map_err(|e| io_err(&part, e))?.len();
    if have > target.size {
        file.set_len(0).map_err(|e| io_err(&part, e))?;
        have = 0;
    }
    if have > 0 {
        log::info!(
            "update: resuming the download at {have} of {} bytes",
            target.size
        );
    }
    if have < target.size {
        match target.url.scheme() {
            "file" => copy_file(target, &mut file, have).await?,
            _ => {
                let response = crate::http_client::get(&target.url, have, TIMEOUT)
                    .await
                    .map_err(|e| UpdateError::Download(format!("{}: {e}", target.url)))?;
                match response.status {
                    206 => {}
                    200 => {
                        // The server ignored the range: start over.
                        file.set_len(0).map_err(|e| io_err(&part, e))?;
                        have = 0;
                    }
                    status => {
                        return Err(UpdateError::Download(format!(
                            "{}: HTTP {status}",
                            target.url
                        )));
                    }
                }
                let mut stream = response.into_stream();
                let mut halfway_passed = have * 2 >= target.size;
                while let Some(chunk) = stream.next().await {
                    let chunk =
                        chunk.map_err(|e| UpdateError::Download(format!("{}: {e}", target.url)))?;
                    if have + chunk.len() as u64 > target.size {
                        return Err(refuse_length(&part, target));
                    }
                    file.write_all(&chunk).map_err(|e| io_err(&part, e))?;
                    have += chunk.len() as u64;
                    if !halfway_passed && have * 2 >= target.size {
                        halfway_passed = true;
                        file.sync_data().map_err(|e| io_err(&part, e))?;
                        fault::point("download").await;
                    }
                }
            }
        }
    }
    file.sync_all().map_err(|e| io_err(&part, e))?;
    drop(file);
    if let Err(e) = verify_off_thread(&part, target).await {
        // A wrong file must not be resumed from.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, &done).map_err(|e| io_err(&done, e))?;
    Ok(done)
}

fn refuse_length(part: &Path, target: &UkiTarget) -> UpdateError {
    let _ = std::fs::remove_file(part);
    UpdateError::Refused(format!(
        "{}: longer than the signed {} bytes",
        target.url, target.size
    ))
}

async fn copy_file(
    target: &UkiTarget,
    out: &mut std::fs::File,
    from: u64,
) -> Result<(), UpdateError> {
    let path = target
        .url
        .to_file_path()
        .map_err(|()| UpdateError::Download(format!("{}: not a path", target.url)))?;
    let err = |e: std::io::Error| UpdateError::Download(format!("{}: {e}", path.display()));
    let mut source = std::fs::File::open(&path).map_err(err)?;
    source.seek(SeekFrom::Start(from)).map_err(err)?;
    let mut limited = source.take(target.size - from + 1);
    let copied = std::io::copy(&mut limited, out).map_err(err)?;
    if from + copied > target.size {
        return Err(UpdateError::Refused(format!(
            "{}: longer than the signed {} bytes",
            target.url, target.size
        )));
    }
    Ok(())
}

/// [`verify`] on a blocking thread: hashing a UKI takes a moment the
/// agent's one async thread owes to the API.
async fn verify_off_thread(path: &Path, target: &UkiTarget) -> Result<(), UpdateError> {
    let (path, target) = (path.to_owned(), target.clone());
    tokio::task::spawn_blocking(move || verify(&path, &target))
        .await
        .map_err(|e| UpdateError::Io(format!("verifying the download: {e}")))?
}

/// The file's length and SHA-256 against the signed ones. Not the last
/// check: the ESP copy hashes what it writes ([`super::esp`]), as this
/// file may change after it returns.
pub fn verify(path: &Path, target: &UkiTarget) -> Result<(), UpdateError> {
    let err = |e: std::io::Error| UpdateError::Io(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hashed = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut hashed).map_err(err)?;
    let (_, Digest { size, sha256 }) = hashed.finish();
    if size != target.size {
        return Err(UpdateError::Refused(format!(
            "{}: {size} bytes, the signed size is {}",
            target.url, target.size
        )));
    }
    if sha256 != target.sha256 {
        return Err(UpdateError::Refused(format!(
            "{}: SHA-256 {sha256} does not match the signed {}",
            target.url, target.sha256
        )));
    }
    Ok(())
}
