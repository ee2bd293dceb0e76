//! Copies a file into another at an offset without filling holes: the
//! destination starts zeroed and sparse, the source's holes are skipped
//! with SEEK_DATA/SEEK_HOLE, and all-zero MiB chunks inside its data are
//! skipped too. A multi-GiB disk image costs the time and space of its
//! data, and 1 MiB of RAM.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading: {0}")]
    Read(io::Error),
    #[error("writing: {0}")]
    Write(io::Error),
}

/// The data extents of `file` from `from` on: (start, end) pairs, or
/// the whole rest when the filesystem cannot tell.
fn next_data(file: &File, from: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    use rustix::fs::{SeekFrom as Whence, seek};
    if from >= len {
        return Ok(None);
    }
    let start = match seek(file, Whence::Data(from)) {
        Ok(start) => start,
        Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => {
            return Ok(Some((from, len)));
        }
        Err(e) => return Err(e.into()),
    };
    let end = seek(file, Whence::Hole(start)).map_err(io::Error::from)?;
    Ok(Some((start, end.min(len))))
}

/// Copies all of `source` into `out` at `offset`; returns the bytes
/// actually written. `out` must read as zeros where nothing is written.
pub fn copy_into(source: &Path, out: &mut File, offset: u64) -> Result<u64, CopyError> {
    let mut input = File::open(source).map_err(CopyError::Read)?;
    let len = input.metadata().map_err(CopyError::Read)?.len();
    copy_file_into(&mut input, len, out, offset)
}

/// [`copy_into`] from an open file of `len` bytes.
pub fn copy_file_into(
    input: &mut File,
    len: u64,
    out: &mut File,
    offset: u64,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; CHUNK];
    let zeros = vec![0u8; CHUNK];
    let mut written = 0;
    let mut pos = 0;
    while let Some((start, end)) = next_data(input, pos, len).map_err(CopyError::Read)? {
        input
            .seek(SeekFrom::Start(start))
            .map_err(CopyError::Read)?;
        let mut at = start;
        while at < end {
            let want = ((end - at) as usize).min(CHUNK);
            input
                .read_exact(&mut buf[..want])
                .map_err(CopyError::Read)?;
            if buf[..want] != zeros[..want] {
                out.seek(SeekFrom::Start(offset + at))
                    .map_err(CopyError::Write)?;
                out.write_all(&buf[..want]).map_err(CopyError::Write)?;
                written += want as u64;
            }
            at += want as u64;
        }
        pos = end;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn holes_stay_holes_and_data_lands_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut f = File::create(&src).unwrap();
        f.set_len(512 << 20).unwrap();
        f.seek(SeekFrom::Start(300 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.seek(SeekFrom::Start((512 << 20) - 3)).unwrap();
        f.write_all(b"end").unwrap();
        let dst_path = dir.path().join("dst");
        let mut dst = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dst_path)
            .unwrap();
        dst.set_len((512 << 20) + 4096).unwrap();
        let written = copy_into(&src, &mut dst, 4096).unwrap();
        // Whole filesystem blocks around the two writes, nothing else.
        assert!((9..=64 * 1024).contains(&written), "{written}");
        let mut probe = [0u8; 6];
        dst.seek(SeekFrom::Start(4096 + (300 << 20))).unwrap();
        dst.read_exact(&mut probe).unwrap();
        assert_eq!(&probe, b"middle");
        dst.seek(SeekFrom::Start(4096 + (512 << 20) - 3)).unwrap();
        dst.read_exact(&mut probe[..3]).unwrap();
        assert_eq!(&probe[..3], b"end");
        assert!(
            dst.metadata().unwrap().blocks() < 1024,
            "the copy filled holes"
        );
    }
}
