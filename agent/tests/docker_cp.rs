//! `docker cp` (Debian's `/usr/bin/docker` 20.10) through Husk's Docker
//! API, both ways, files and directories, running and stopped
//! containers (`docker create` then `cp`), and what an attacker in the
//! container or a hostile archive tries (Docker's CVE-2018-15664, a copy
//! raced with a symlink swap; archives climbing out with `..` or through
//! a symlink they carry; writes into the container's /proc, which the
//! host's root would make to the host's kernel). As root, in a private
//! mount and network namespace with cgroup2, as the other container
//! tests.

mod common;

use std::path::Path;
use std::time::Duration;

use common::docker::Machine;
use common::enter_cgroup2_namespace;

/// A running container of busybox that stays up.
fn sleeper(m: &Machine, name: &str, script: &str) {
    m.ok(&["run", "-d", "--name", name, "busybox", "sh", "-c", script]);
}

/// What the container printed so far.
fn logs(m: &Machine, name: &str) -> String {
    let out = m.docker(&["logs", name]);
    let (stdout, stderr) = common::text(&out);
    format!("{stdout}{stderr}")
}

/// `curl -X PUT` of `tar` into `path` of `container`: the HTTP status and
/// the body.
fn put_archive(m: &Machine, container: &str, path: &str, tar: &[u8]) -> (u16, String) {
    let file = m.path("upload.tar");
    std::fs::write(&file, tar).unwrap();
    let url = format!("http://docker/containers/{container}/archive?path={path}");
    let out = m.curl(&[
        "-X",
        "PUT",
        "-T",
        file.to_str().unwrap(),
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap(), body.to_owned())
}

/// A tar of (name, content or symlink target, is a symlink) entries,
/// written as given (the tar crate's own checks are bypassed).
fn raw_tar(entries: &[(&str, &str, bool)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        if *link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(content).unwrap();
            header.set_size(0);
            header.set_cksum();
            builder.append(&header, std::io::empty()).unwrap();
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            header.set_cksum();
            builder.append(&header, content.as_bytes()).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn docker_cp_copies_both_ways() {
    if !enter_cgroup2_namespace("docker_cp_copies_both_ways") {
        return;
    }
    let m = Machine::start();
    sleeper(
        &m,
        "cp-box",
        "mkdir -p /tmp/tree/sub; echo deep > /tmp/tree/sub/file; ln -s sub/file /tmp/tree/link; \
         echo made inside > /tmp/made.txt; \
         until [ -f /tmp/site/index.html ]; do sleep 0.1; done; cat /tmp/site/index.html; \
         exec sleep 300",
    );
    let work = m.path("work");
    std::fs::create_dir_all(work.join("site/css")).unwrap();
    std::fs::write(work.join("site/index.html"), "<h1>copied in</h1>\n").unwrap();
    std::fs::write(work.join("site/css/style.css"), "h1 {}\n").unwrap();
    // Bigger than any JSON body the API takes: archives are streamed.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(work.join("site/big.bin"), &big).unwrap();

    // (the image has no /tmp: the container makes it)
    common::eventually(Duration::from_secs(20), "the container's files", || {
        m.docker(&["cp", "cp-box:/tmp/made.txt", "-"])
            .status
            .success()
            .then_some(())
    });
    // A directory into one that exists: the container sees it at once.
    m.ok_in(&work, &["cp", "site", "cp-box:/tmp/"]);
    common::eventually(Duration::from_secs(20), "the page in the log", || {
        logs(&m, "cp-box")
            .contains("<h1>copied in</h1>")
            .then_some(())
    });

    // A file and a tree out, with the symlink kept as one.
    m.ok_in(&work, &["cp", "cp-box:/tmp/made.txt", "out.txt"]);
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).unwrap(),
        "made inside\n"
    );
    m.ok_in(&work, &["cp", "cp-box:/tmp/tree", "tree"]);
    assert_eq!(
        std::fs::read_to_string(work.join("tree/sub/file")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(work.join("tree/link")).unwrap(),
        Path::new("sub/file")
    );
    m.ok_in(&work, &["cp", "cp-box:/tmp/site/big.bin", "big-back.bin"]);
    assert!(
        std::fs::read(work.join("big-back.bin")).unwrap() == big,
        "3 MiB both ways"
    );
    let copied_in = m.ok_in(&work, &["cp", "cp-box:/tmp/site/css/style.css", "-"]);
    assert!(copied_in.contains("h1 {}"), "{copied_in}");

    // A missing path and a stopped container are named.
    let missing = m.fails(&["cp", "cp-box:/no/such/file", "x"]);
    assert!(
        // (the CLI's words for a 404 to its HEAD, as with dockerd)
        missing.contains("No such container:path: cp-box:/no/such/file"),
        "{missing}"
    );
    // A link to / left in the writable layer, for the stopped copy below.
    m.ok(&[
        "exec",
        "cp-box",
        "busybox",
        "ln",
        "-s",
        "/",
        "/tmp/rootlink",
    ]);
    m.ok(&["stop", "-t", "1", "cp-box"]);

    // Stopped: its writable layer over its image, read as it was.
    m.ok_in(&work, &["cp", "cp-box:/tmp/made.txt", "after-stop.txt"]);
    assert_eq!(
        std::fs::read_to_string(work.join("after-stop.txt")).unwrap(),
        "made inside\n"
    );
    m.ok_in(&work, &["cp", "cp-box:/bin/busybox", "busybox"]);
    assert!(
        std::fs::read(work.join("busybox")).unwrap() == std::fs::read("/bin/busybox").unwrap(),
        "the image's file, from its layer"
    );
    // Its symlinks still resolve inside it: the host's /tmp is not there.
    let marker = format!("husk-cp-stopped-{}", std::process::id());
    std::fs::write(Path::new("/tmp").join(&marker), "the host's").unwrap();
    let escaped = m.docker(&["cp", &format!("cp-box:/tmp/rootlink/tmp/{marker}"), "-"]);
    let _ = std::fs::remove_file(Path::new("/tmp").join(&marker));
    assert!(
        !escaped.status.success()
            && !String::from_utf8_lossy(&escaped.stdout).contains("the host's"),
        "a stopped container's link reached the host"
    );

    // docker create, then cp in: the files are there for its first run.
    std::fs::create_dir_all(work.join("seed")).unwrap();
    std::fs::write(work.join("seed/conf"), "seeded\n").unwrap();
    m.ok(&[
        "create",
        "--name",
        "cp-made",
        "busybox",
        "cat",
        "/seed/conf",
    ]);
    m.ok_in(&work, &["cp", "seed", "cp-made:/"]);
    m.ok(&["start", "cp-made"]);
    assert_eq!(m.ok(&["wait", "cp-made"]).trim(), "0");
    assert_eq!(logs(&m, "cp-made"), "seeded\n");

    // A stopped container's volume is not in its layers: refused, not
    // answered from the empty directory under it.
    m.ok(&[
        "create",
        "--name",
        "cp-vol",
        "-v",
        "cp-data:/data",
        "busybox",
        "true",
    ]);
    let refused = m.fails(&["cp", "cp-vol:/data/x", "x"]);
    assert!(
        refused.contains("which Husk copies while the container runs only"),
        "{refused}"
    );
}

#[test]
fn docker_cp_cannot_reach_the_host() {
    if !enter_cgroup2_namespace("docker_cp_cannot_reach_the_host") {
        return;
    }
    let m = Machine::start();
    let marker = format!("husk-cp-{}", std::process::id());
    // The attacker: links to the root, and a path it swaps between a
    // directory and a link to / as fast as it can.
    sleeper(
        &m,
        "cp-attacker",
        "mkdir -p /tmp/real; mkfifo /tmp/real/fifo; mknod /tmp/real/null c 1 3; \
         ln -s / /evil; ln -s ../../../../etc /tmp/climb; \
         while true; do mv /tmp/swap /tmp/gone 2>/dev/null; mkdir -p /tmp/swap; \
         rm -rf /tmp/swap; ln -s / /tmp/swap; done",
    );
    let work = m.path("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join(&marker), "payload\n").unwrap();
    common::eventually(Duration::from_secs(20), "the attacker's links", || {
        m.docker(&["cp", "cp-attacker:/tmp/climb", "-"])
            .status
            .success()
            .then_some(())
    });

    // Its FIFO and device node are archived as what they are, never
    // opened by the agent (a FIFO would hang it; a device node opened by
    // the host's root is the host's device).
    let real = m.docker(&["cp", "cp-attacker:/tmp/real", "-"]);
    assert!(real.status.success(), "{real:?}");
    let mut kinds = Vec::new();
    for entry in tar::Archive::new(&real.stdout[..]).entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        kinds.push((path, entry.header().entry_type(), entry.size()));
    }
    assert!(
        kinds.contains(&("real/fifo".into(), tar::EntryType::Fifo, 0)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("real/null".into(), tar::EntryType::Char, 0)),
        "{kinds:?}"
    );

    // Through links to the root: the container's own /etc, not the host's.
    m.ok_in(&work, &["cp", &marker, "cp-attacker:/evil/etc/"]);
    m.ok_in(&work, &["cp", &marker, "cp-attacker:/tmp/climb/"]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "written on the host's /etc"
    );
    let back = m.ok(&["cp", &format!("cp-attacker:/etc/{marker}"), "-"]);
    assert!(back.contains("payload"), "{back}");

    // CVE-2018-15664: copies raced with the swap land in the container's
    // root or its /tmp/swap, never in the host's /.
    for _ in 0..40 {
        let _ = m.docker_in(&work, &["cp", &marker, "cp-attacker:/tmp/swap/"]);
    }
    assert!(
        !Path::new("/").join(&marker).exists(),
        "written on the host's /"
    );

    // Hostile archives, refused by name with nothing written.
    let climbing = raw_tar(&[(&format!("../../../../{marker}-dotdot"), "x", false)]);
    let (code, body) = put_archive(&m, "cp-attacker", "/tmp/real", &climbing);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(".."), "{body}");
    let through_link = raw_tar(&[
        ("hop", "/", true),
        (&format!("hop/{marker}-hop"), "x", false),
    ]);
    let (code, body) = put_archive(&m, "cp-attacker", "/tmp/real", &through_link);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("symlink"), "{body}");
    let whiteout = raw_tar(&[(".wh.passwd", "", false)]);
    let (code, body) = put_archive(&m, "cp-attacker", "/etc", &whiteout);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("whiteout"), "{body}");
    for leftover in [
        format!("/{marker}-dotdot"),
        format!("/{marker}-hop"),
        format!("/tmp/{marker}-dotdot"),
    ] {
        assert!(!Path::new(&leftover).exists(), "{leftover} was written");
    }

    // The container's kernel interfaces: the host's root writing there
    // would set the host's kernel; reading would show what the
    // container may not see.
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let sysctl = raw_tar(&[("core_pattern", "|/tmp/pwn", false)]);
    let (code, body) = put_archive(&m, "cp-attacker", "/proc/sys/kernel", &sysctl);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("kernel interface"), "{body}");
    let nested = raw_tar(&[("proc/sys/kernel/core_pattern", "|/tmp/pwn", false)]);
    let (code, body) = put_archive(&m, "cp-attacker", "/", &nested);
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
    let read = m.fails(&["cp", "cp-attacker:/proc/1/environ", "-"]);
    assert!(read.contains("kernel interface"), "{read}");

    // The agent still serves, and the attacker is where it was.
    let ps = m.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.contains("cp-attacker"), "{ps}");
}
