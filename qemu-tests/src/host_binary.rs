//! Dynamically linked host binaries in test images: Debian's containerd,
//! ctr, the shim and crun run in a guest whose only other executables
//! are static. Each comes with its ELF interpreter and the shared
//! libraries it needs, found as the loader finds them: by running `ldd`
//! (glibc's own resolution, DT_NEEDED closure and search path, which a
//! hand-written ELF walk would only imitate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The mode of every shipped file: libraries and the interpreter are
/// mapped executable, and the interpreter must pass the kernel's exec
/// check.
const MODE: u32 = 0o755;

/// The test image's top-level links (image-build's skeleton: merged
/// /usr, as on Debian). A file cannot go under a link in the cpio, so a
/// library ldd found under `/lib` is written under `/usr/lib`, where
/// the guest's `/lib/…` reaches it.
const MERGED_USR: [(&str, &str); 3] = [
    ("/lib/", "/usr/lib/"),
    ("/bin/", "/usr/bin/"),
    ("/sbin/", "/usr/bin/"),
];

/// `binaries`, each a (host path, guest path), with everything they need
/// to run: the extra files of a [`GuestImage`](crate::GuestImage)
/// (`.file(host, guest, mode)`), each library once.
pub fn with_libraries(binaries: &[(&Path, &str)]) -> Result<Vec<(PathBuf, String, u32)>> {
    let mut files = Vec::new();
    // By guest path: two binaries may name one library by two host
    // paths (/lib/… and /usr/lib/…), and the image takes a path once.
    let mut libraries = BTreeMap::new();
    for (host, guest) in binaries {
        if !host.is_file() {
            return Err(Error::Prerequisite(format!(
                "{} is not installed (its Debian package provides it)",
                host.display()
            )));
        }
        files.push((host.to_path_buf(), (*guest).to_owned(), MODE));
        for lib in libraries_of(host)? {
            libraries.entry(guest_path(&lib)).or_insert(lib);
        }
    }
    files.extend(
        libraries
            .into_iter()
            .map(|(guest, host)| (host, guest, MODE)),
    );
    Ok(files)
}

/// The interpreter and shared libraries `binary` loads, as the paths
/// `ldd` resolved them to (none for a static binary).
pub fn libraries_of(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::io(format!("running ldd {}", binary.display()), e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // ldd says so, and exits 1, for a binary without PT_INTERP.
    if stdout.contains("statically linked") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(Error::Build(format!(
            "ldd {} failed ({}): {}",
            binary.display(),
            out.status,
            stderr.trim()
        )));
    }
    parse_ldd(&stdout).map_err(|e| Error::Build(format!("ldd {}: {e}", binary.display())))
}

/// The paths in ldd's output: `name => /path (0x…)` for a library,
/// `/path (0x…)` for the interpreter; the vDSO (`linux-vdso.so.1
/// (0x…)`) is the kernel's and has no file.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((_, target)) => target.trim(),
            None => line,
        };
        if target.starts_with("not found") {
            return Err(format!("a library is missing: {line}"));
        }
        let path = target.split(" (").next().unwrap_or(target).trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        } else if !line.contains("vdso") {
            return Err(format!("an ldd line not understood: {line}"));
        }
    }
    Ok(paths)
}

/// Where a library goes in the guest: where ldd found it, through the
/// image's merged-/usr links. The file name stays the one the loader
/// asks for (the soname link's, not its target's).
fn guest_path(host: &Path) -> String {
    let path = host.to_string_lossy();
    for (link, target) in MERGED_USR {
        if let Some(rest) = path.strip_prefix(link) {
            return format!("{target}{rest}");
        }
    }
    path.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRUN_LDD: &str = "\tlinux-vdso.so.1 (0x00007ffd0e5f2000)
\tlibsystemd.so.0 => /lib/x86_64-linux-gnu/libsystemd.so.0 (0x00007f9c7cab8000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9c7c89e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f9c7cc13000)
";

    #[test]
    fn ldd_output_gives_libraries_and_interpreter_not_the_vdso() {
        let paths = parse_ldd(CRUN_LDD).unwrap();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libsystemd.so.0",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let err = parse_ldd("\tlibyajl.so.2 => not found\n").unwrap_err();
        assert!(err.contains("libyajl.so.2"), "{err}");
    }

    #[test]
    fn libraries_go_through_the_images_merged_usr_links() {
        assert_eq!(
            guest_path(Path::new("/lib/x86_64-linux-gnu/libc.so.6")),
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        // /lib64 is no link in the image: the interpreter stays where
        // PT_INTERP names it.
        assert_eq!(
            guest_path(Path::new("/lib64/ld-linux-x86-64.so.2")),
            "/lib64/ld-linux-x86-64.so.2"
        );
    }

    #[test]
    fn the_hosts_shell_comes_with_libc_and_busybox_alone() {
        let files = with_libraries(&[
            (Path::new("/bin/sh"), "/usr/bin/sh"),
            (Path::new("/bin/busybox"), "/usr/bin/busybox"),
        ])
        .unwrap();
        let guests: Vec<&str> = files.iter().map(|(_, g, _)| g.as_str()).collect();
        assert_eq!(guests[..2], ["/usr/bin/sh", "/usr/bin/busybox"]);
        assert!(
            guests.iter().any(|g| g.ends_with("/libc.so.6")),
            "{guests:?}"
        );
        assert!(
            guests.contains(&"/lib64/ld-linux-x86-64.so.2"),
            "{guests:?}"
        );
    }
}
