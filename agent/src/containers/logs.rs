//! Container logs: one JSON document per line, Docker's json-file format
//! (`{"log":"…\n","stream":"stdout","time":"…"}`), written by the shim
//! with size-based rotation (`container.log`, `.1`, `.2`, … oldest last)
//! and read back by the agent for `logs` and `logs -f`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use husk_api::containers::{LogEntry, Stream};
use serde::{Deserialize, Serialize};

use super::paths::rotated;
use super::time::rfc3339;

/// Docker splits lines longer than this into several entries, so one
/// endless line cannot hold the shim's memory.
pub const MAX_LINE: usize = 16 * 1024;
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: u32 = 3;

/// Where the container's output goes and how much of it is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub path: PathBuf,
    /// Rotate when the current file would grow past this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included (Docker's `max-file`).
    pub max_files: u32,
}

/// The shim's side: appends entries and rotates.
pub struct LogWriter {
    config: LogConfig,
    file: File,
    size: u64,
}

impl LogWriter {
    pub fn open(config: &LogConfig) -> io::Result<Self> {
        if let Some(dir) = config.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(&config.path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            config: config.clone(),
            file,
            size,
        })
    }

    pub fn write(&mut self, stream: Stream, text: &[u8]) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(text).into_owned(),
            stream,
            time: rfc3339(SystemTime::now()),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.config.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `container.log` becomes `.1`, `.1` becomes `.2`, …; the oldest
    /// beyond `max_files` is overwritten.
    fn rotate(&mut self) -> io::Result<()> {
        let path = &self.config.path;
        if self.config.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.config.max_files - 1).rev() {
            match fs::rename(rotated(path, n), rotated(path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(path, rotated(path, 1))?;
        self.file = open_append(path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Splits a stream's bytes into log lines.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`; calls `emit` for each complete (or over-long) line.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            emit(&self.pending[start..start + end + 1]);
            start += end + 1;
        }
        while self.pending.len() - start >= MAX_LINE {
            emit(&self.pending[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.pending.drain(..start);
    }

    /// The last, unterminated line at end of stream.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// The log files of `log`, oldest first.
pub fn files_oldest_first(log: &Path, max_files: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..max_files.max(1))
        .rev()
        .map(|n| rotated(log, n))
        .filter(|p| p.exists())
        .collect();
    files.push(log.to_owned());
    files
}

/// The last `tail` lines (all with None) of the files, oldest first.
pub fn read_lines(files: &[PathBuf], tail: Option<usize>) -> io::Result<Vec<String>> {
    let mut lines = VecDeque::new();
    for path in files {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            lines.push_back(line?);
            if tail.is_some_and(|t| lines.len() > t) {
                lines.pop_front();
            }
        }
    }
    Ok(lines.into())
}

/// Follows the current log file across rotations: the lines appended
/// after the position it starts from.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the beginning of `path` (or once it appears).
    pub fn at_start(path: &Path) -> Self {
        let file = File::open(path).ok();
        let inode = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.ino());
        Self {
            path: path.to_owned(),
            file,
            inode,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call. At the end of a
    /// file that was rotated away, moves on to the new file.
    pub fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            self.read_available(&mut lines)?;
            match fs::metadata(&self.path) {
                Ok(meta) if self.file.is_none() || meta.ino() != self.inode => {
                    // Rotated (or created): the old file is complete.
                    self.file = Some(File::open(&self.path)?);
                    self.inode = meta.ino();
                    self.partial.clear();
                }
                _ => return Ok(lines),
            }
        }
    }

    fn read_available(&mut self, lines: &mut Vec<String>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.partial.extend_from_slice(&buf[..n]);
            while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_size: u64, max_files: u32) -> LogConfig {
        LogConfig {
            path: dir.join("logs/container.log"),
            max_size,
            max_files,
        }
    }

    fn texts(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| serde_json::from_str::<LogEntry>(l).unwrap().log)
            .collect()
    }

    #[test]
    fn splits_lines_and_long_runs() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(b"one\ntw", |l| out.push(l.to_vec()));
        s.feed(b"o\n", |l| out.push(l.to_vec()));
        s.feed(&vec![b'x'; MAX_LINE + 5], |l| out.push(l.to_vec()));
        s.finish(|l| out.push(l.to_vec()));
        assert_eq!(out[0], b"one\n");
        assert_eq!(out[1], b"two\n");
        assert_eq!(out[2].len(), MAX_LINE);
        assert_eq!(out[3], b"xxxxx");
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 300, 3);
        let mut writer = LogWriter::open(&config).unwrap();
        for i in 0..40 {
            writer
                .write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let files = files_oldest_first(&config.path, 3);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(!rotated(&config.path, 3).exists());
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() <= 300);
        }
        let all = texts(&read_lines(&files, None).unwrap());
        assert_eq!(all.last().unwrap(), "line 39\n");
        // What is kept is the newest, in order, with no gap.
        let first: usize = all[0]["line ".len()..].trim().parse().unwrap();
        let expected: Vec<String> = (first..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(all, expected);
        assert_eq!(
            texts(&read_lines(&files, Some(2)).unwrap()),
            ["line 38\n", "line 39\n"]
        );
    }

    #[test]
    fn follower_sees_appends_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 200, 2);
        let mut follower = Follower::at_start(&config.path);
        assert!(follower.poll().unwrap().is_empty());
        let mut writer = LogWriter::open(&config).unwrap();
        writer.write(Stream::Stderr, b"first\n").unwrap();
        let got = follower.poll().unwrap();
        assert_eq!(texts(&got), ["first\n"]);
        let entry: LogEntry = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(entry.stream, Stream::Stderr);
        let mut seen = Vec::new();
        for i in 0..20 {
            writer
                .write(Stream::Stdout, format!("n{i}\n").as_bytes())
                .unwrap();
            seen.extend(texts(&follower.poll().unwrap()));
        }
        let expected: Vec<String> = (0..20).map(|i| format!("n{i}\n")).collect();
        assert_eq!(seen, expected);
    }
}
