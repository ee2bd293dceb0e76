//! Hostile bundles, under Husk and under crun and runc: Husk refuses
//! everything they refuse.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{self, enter, err, text};
use crate::{bundle, run};

/// runc's CVE-2024-21626: a cwd through a descriptor the runtime holds
/// open while it sets the container up (`/proc/self/fd/N`) puts the
/// container's process in a directory outside its root, from where
/// `..` reaches the host. Every such cwd is refused, or lands inside the
/// root.
#[test]
fn a_cwd_through_a_held_descriptor_is_refused() {
    if !enter("hostile::a_cwd_through_a_held_descriptor_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // What the container sees of its cwd and above: on the host side of
    // a leak, `..` climbs to the host's root, which has no /bin/busybox
    // of the image's but does have the test's temporary directory.
    let script = "pwd; ls -d ../../../../../../*";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let mut refused_by_husk = Vec::new();
    for fd in 3..16 {
        let mut config = bundle::config(&["sh", "-c", script]);
        config["process"]["cwd"] = format!("/proc/self/fd/{fd}").into();
        bundle::write_config(&b, &config);
        let id = format!("cwd{fd}");
        let (code, out, stderr) = run(&b, &dir.path().join("husk"), &id);
        if code == 0 {
            // Allowed only inside the root: the image's own tree.
            assert!(out.starts_with('/'), "fd {fd}: cwd {out:?}");
            assert!(
                !out.contains(&dir.path().display().to_string()),
                "fd {fd}: {out}"
            );
        } else {
            refused_by_husk.push(fd);
            assert!(
                stderr.contains("outside the container's root") || stderr.contains("chdir to cwd"),
                "fd {fd}: {stderr}"
            );
        }
        for peer in ["crun", "runc"] {
            let out = harness::peer_run(peer, &dir.path().join(peer), &b, &id);
            if !out.status.success() {
                assert!(
                    refused_by_husk.contains(&fd),
                    "{peer} refuses cwd /proc/self/fd/{fd} ({}), husk ran it: {}",
                    err(&out).trim(),
                    text(&out)
                );
            }
        }
    }
    println!("husk refused cwd /proc/self/fd/N for N in {refused_by_husk:?}");
}

/// The same through a descriptor the caller hands over on purpose
/// (`--preserve-fds`, as systemd's socket activation does): a host
/// directory open as fd 3 must never become the container's cwd.
#[test]
fn a_preserved_host_directory_is_not_a_cwd() {
    if !enter("hostile::a_preserved_host_directory_is_not_a_cwd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host-secret");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("marker"), "host\n").unwrap();
    let script = "pwd; cat marker";
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    let mut config = bundle::config(&["sh", "-c", script]);
    config["process"]["cwd"] = "/proc/self/fd/3".into();
    bundle::write_config(&b, &config);
    // fd 3 is the host directory when the runtime starts.
    let with_fd3 = |program: &Path, args: &[&str]| {
        Command::new("sh")
            .args(["-c", "exec 3<\"$1\"; shift; exec \"$@\"", "sh"])
            .arg(&host)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let bs = b.to_str().unwrap();
    // `RUNTIME [GLOBAL…] --root STATE run --preserve-fds 1 --bundle B fd3`.
    let run_fd3 = |program: &Path, global: &[&str], state: &Path| {
        let mut args = global.to_vec();
        let state = state.to_str().unwrap();
        args.extend([
            "--root",
            state,
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            bs,
            "fd3",
        ]);
        with_fd3(program, &args)
    };
    let husk = run_fd3(&harness::husk(), &["oci"], &dir.path().join("husk"));
    assert!(
        !text(&husk).contains("host"),
        "husk ran in the host's directory: {}",
        text(&husk)
    );
    assert!(!husk.status.success(), "{}", text(&husk));
    assert!(
        err(&husk).contains("outside the container's root"),
        "{}",
        err(&husk)
    );
    for peer in ["crun", "runc"] {
        harness::require(peer);
        let global: &[&str] = if peer == "crun" {
            &["--cgroup-manager=disabled"]
        } else {
            &[]
        };
        let out = run_fd3(Path::new(peer), global, &dir.path().join(peer));
        println!(
            "{peer}: {} {}{}",
            out.status,
            text(&out).trim(),
            err(&out).trim()
        );
    }
}

/// runc's CVE-2019-19921 class: an image whose /proc (or /sys, or a
/// directory on the way to a mount) is a symlink tries to move procfs or
/// sysfs where the masks do not reach. Husk refuses a symlinked proc,
/// sysfs or cgroup destination outright, resolves every other
/// destination inside the root, and refuses whatever crun or runc
/// refuse.
#[test]
fn symlinked_mount_destinations_cannot_move_the_kernel_filesystems() {
    if !enter("hostile::symlinked_mount_destinations_cannot_move_the_kernel_filesystems") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (case, the image's symlink and where it points, whether Husk must
    // refuse it)
    let cases = [
        ("proc-to-sys", "proc", "sys", true),
        ("proc-to-abs", "proc", "/tmp/fake", true),
        ("sys-to-tmp", "sys", "tmp", true),
        ("dev-up", "dev", "../../../../../../run/fakedev", true),
        // A link on the way to a bind's destination, climbing out: the
        // bind lands inside the root.
        ("bind-up", "data", "../../../../../../run/fakedata", false),
    ];
    let script = "grep -c . /proc/self/status >/dev/null && cat /proc/kcore | wc -c";
    for (name, link, to, refused) in cases {
        let b = bundle::make(&dir.path().join(name), &["sh", "-c", script]);
        let mut config = bundle::config(&["sh", "-c", script]);
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/data/x", "type": "bind", "source": "/var/empty",
                "options": ["rbind", "ro"]
            }));
        std::fs::create_dir_all("/var/empty").unwrap();
        bundle::write_config(&b, &config);
        let rootfs = b.join("rootfs");
        let at = rootfs.join(link);
        let _ = std::fs::remove_dir_all(&at);
        std::os::unix::fs::symlink(to, &at).unwrap();
        std::fs::create_dir_all(rootfs.join("tmp/fake")).unwrap();
        let (code, out, stderr) = crate::run(&b, &dir.path().join("husk"), name);
        if refused {
            assert_ne!(code, 0, "{name}: husk ran it: {out}");
            assert!(
                stderr.contains("is a symlink in the image"),
                "{name}: {stderr}"
            );
        } else {
            assert_eq!(code, 0, "{name}: {stderr}");
            // Masked: /proc/kcore reads as empty.
            assert_eq!(out.trim(), "0", "{name}: {out}");
            assert!(
                !Path::new("/run/fakedata").exists(),
                "{name}: left the root"
            );
            assert!(rootfs.join("run/fakedata/x").is_dir(), "{name}: not inside");
        }
        for peer in ["crun", "runc"] {
            let out = harness::peer_run(peer, &dir.path().join(peer), &b, name);
            println!("{name}: {peer}: {} {}", out.status, err(&out).trim());
            if !out.status.success() {
                assert_ne!(code, 0, "{name}: {peer} refuses it, husk ran it");
            }
        }
    }
}

/// runtime-tools' linux_ns_path_type: a `linux.namespaces[].path` naming a
/// namespace of another kind. Joined blindly, a mount namespace in place
/// of a network one (here the test's own, as `/proc/1/ns/mnt` would be the
/// host's) sets the container up in it. Refused for every kind before
/// anything is made, as crun refuses it, and the mount table is unchanged.
#[test]
fn namespace_paths_of_the_wrong_kind_are_refused() {
    if !enter("hostile::namespace_paths_of_the_wrong_kind_are_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = mounts();
    for (kind, other) in [
        ("pid", "net"),
        ("network", "mnt"),
        ("ipc", "mnt"),
        ("uts", "mnt"),
        ("mount", "net"),
        ("cgroup", "mnt"),
        ("user", "mnt"),
    ] {
        let b = bundle::make(&dir.path().join(kind), &["true"]);
        let mut config = bundle::config(&["true"]);
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != kind);
        namespaces
            .push(serde_json::json!({"type": kind, "path": format!("/proc/self/ns/{other}")}));
        bundle::write_config(&b, &config);
        let (code, _, stderr) = crate::run(&b, &dir.path().join("husk"), kind);
        assert_ne!(code, 0, "{kind}: husk ran it");
        assert!(
            stderr.contains(&format!("not a {kind} one")),
            "{kind}: {stderr}"
        );
        let crun = harness::peer_run("crun", &dir.path().join("crun"), &b, kind);
        assert!(!crun.status.success(), "{kind}: crun ran it");
        assert_eq!(mounts(), before, "{kind}: the mount table changed");
    }
}
