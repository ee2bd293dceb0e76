//! A deterministic writer for the cpio "newc" format, the one the kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace).
//!
//! Determinism: the caller supplies entries in order; the writer numbers
//! inodes itself and takes one timestamp for every entry, so the same
//! entries give the same bytes on any machine and as any user.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File(Vec<u8>),
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

/// Writes newc entries to `out`; call [`CpioWriter::finish`] at the end.
pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    mtime: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// `mtime` is stamped on every entry (SOURCE_DATE_EPOCH).
    pub fn new(out: W, mtime: u32) -> Self {
        Self {
            out,
            next_inode: 1,
            mtime,
            written: 0,
        }
    }

    /// Appends one entry. `path` is relative to the archive root, without
    /// a leading `/` (the kernel accepts both; tools print it nicer).
    pub fn append(&mut self, path: &str, mode: u32, kind: &EntryKind) -> io::Result<()> {
        let (type_bits, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match kind {
            EntryKind::Directory => (S_IFDIR, &[], 2, (0, 0)),
            EntryKind::File(data) => (S_IFREG, data, 1, (0, 0)),
            EntryKind::Symlink(target) => (S_IFLNK, target.as_bytes(), 1, (0, 0)),
            EntryKind::CharDevice { major, minor } => (S_IFCHR, &[], 1, (*major, *minor)),
        };
        let inode = self.next_inode;
        self.next_inode += 1;
        self.write_header(
            path,
            type_bits | (mode & 0o7777),
            inode,
            nlink,
            data.len(),
            rdev,
        )?;
        self.write_padded(data)
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header(TRAILER, 0, 0, 1, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_header(
        &mut self,
        name: &str,
        mode: u32,
        inode: u32,
        nlink: u32,
        size: usize,
        (rdev_major, rdev_minor): (u32, u32),
    ) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than 4 GiB"),
            )
        })?;
        let name_len = name.len() + 1; // with its NUL
        let fields: [u32; 13] = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            self.mtime,
            size,
            0, // dev major
            0, // dev minor
            rdev_major,
            rdev_minor,
            name_len as u32,
            0, // check (unused by newc)
        ];
        let mut header = Vec::with_capacity(110 + name_len + 3);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        self.write_padded(&header)
    }

    /// newc aligns both the header+name and the data to 4 bytes.
    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new(), 1_700_000_000);
        w.append("etc", 0o755, &EntryKind::Directory).unwrap();
        w.append("etc/hello", 0o644, &EntryKind::File(b"hi\n".to_vec()))
            .unwrap();
        w.append("link", 0o777, &EntryKind::Symlink("etc/hello".into()))
            .unwrap();
        w.append(
            "console",
            0o600,
            &EntryKind::CharDevice { major: 5, minor: 1 },
        )
        .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn layout_is_aligned_and_ends_with_trailer() {
        let bytes = sample();
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(bytes, sample(), "same entries, same bytes");
    }

    /// GNU cpio is the reference reader: it must list what we wrote, with
    /// the types and the timestamp we gave.
    #[test]
    fn gnu_cpio_reads_it_back() {
        if Command::new("cpio").arg("--version").output().is_err() {
            panic!("cpio is not installed: apt-get install cpio");
        }
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, sample()).unwrap();
        let listing = Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -itv --quiet < {}", archive.display()))
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let listing = String::from_utf8(listing.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" etc"));
        assert!(lines[1].starts_with("-rw-r--r--") && lines[1].ends_with(" etc/hello"));
        assert!(lines[2].starts_with("lrwxrwxrwx") && lines[2].ends_with("link -> etc/hello"));
        assert!(lines[3].starts_with("crw-------") && lines[3].contains("5,"));
        assert!(
            lines[1].contains("2023"),
            "mtime 1700000000 is in Nov 2023: {listing}"
        );

        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        let extract = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {} && cpio -id --quiet etc etc/hello < {}",
                out.display(),
                archive.display()
            ))
            .status()
            .unwrap();
        assert!(extract.success());
        assert_eq!(std::fs::read(out.join("etc/hello")).unwrap(), b"hi\n");
    }
}
