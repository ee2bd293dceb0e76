//! One scratch directory per test: serial log, QMP socket, QEMU's output,
//! the initramfs, disk copies. Removed afterwards unless
//! `HUSK_KEEP_TMP` is set, so a failure can be inspected.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::{Error, Result};

/// Set (to anything) to keep every test's directory.
pub const KEEP_TMP_ENV: &str = "HUSK_KEEP_TMP";

/// Long directory names would push the QMP socket path past the 108
/// bytes a unix socket address can hold.
const MAX_NAME_LEN: usize = 40;

#[derive(Debug)]
pub struct TestDir {
    dir: Option<TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// A fresh directory under the system temp dir, named after the test
    /// so concurrent tests never share files.
    pub fn new(test_name: &str) -> Result<TestDir> {
        let name: String = test_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_NAME_LEN)
            .collect();
        let dir = TempDir::with_prefix(format!("husk-{name}-"))
            .map_err(|e| Error::io("creating the test's temp dir", e))?;
        let path = dir.path().to_path_buf();
        Ok(TestDir {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if std::env::var_os(KEEP_TMP_ENV).is_some() {
            eprintln!("qemu-tests: kept {}", dir.keep().display());
        } else if std::thread::panicking() {
            eprintln!(
                "qemu-tests: removing {} (set {KEEP_TMP_ENV}=1 to keep the serial log)",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_shortened_and_distinct() {
        let a = TestDir::new("a/b c::this_is_a_very_long_test_name_that_goes_on_and_on").unwrap();
        let b = TestDir::new("a/b c::this_is_a_very_long_test_name_that_goes_on_and_on").unwrap();
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("husk-a_b_c__this"), "{name}");
        assert!(name.len() < 60, "{name}");
        let kept = a.path().to_path_buf();
        drop(a);
        if std::env::var_os(KEEP_TMP_ENV).is_none() {
            assert!(!kept.exists());
        }
    }
}
