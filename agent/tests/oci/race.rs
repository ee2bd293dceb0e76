//! runc's CVE-2021-30465: a mount destination swapped for a symlink while
//! the container is being set up. A host process (here a thread, as a
//! neighbour sharing a volume would) exchanges `/proc` and `/data` of the
//! rootfs with symlinks pointing out of it, atomically and without pause,
//! while containers are created one after another. Every container that
//! starts must have its procfs masked and read-only where masked, the
//! others must be refused, and nothing may land outside the rootfs.

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{CWD, RenameFlags, renameat_with};

use crate::harness::enter;
use crate::{bundle, run};

/// What each container checks, without writing anything that would reach
/// the host: wherever its procfs is (the swapping goes on while it runs,
/// moving the mounted directory between the two names), /proc/kcore is
/// masked (empty) and /proc/sys is read-only.
const CHECK: &str = "for p in /proc /proc.swap; do \
                       [ -f $p/kcore ] && [ -s $p/kcore ] && echo UNMASKED; \
                     done; \
                     for p in /proc /proc.swap; do [ -f $p/mounts ] && m=$p/mounts; done; \
                     [ -n \"$m\" ] && grep -E ' /proc(.swap)?/sys ' $m | grep -qv ' ro,' \
                       && echo WRITABLE; \
                     echo checked";

const RUNS: usize = 40;

#[test]
fn destinations_swapped_during_create_stay_inside_the_root() {
    if !enter("race::destinations_swapped_during_create_stay_inside_the_root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(outside.join("proc")).unwrap();
    fs::create_dir_all(outside.join("data/x")).unwrap();
    let b = bundle::make(&dir.path().join("bundle"), &["sh", "-c", CHECK]);
    let mut config = bundle::config(&["sh", "-c", CHECK]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/data/x", "type": "bind", "source": "/var/empty",
            "options": ["rbind", "ro"]
        }));
    fs::create_dir_all("/var/empty").unwrap();
    bundle::write_config(&b, &config);
    let rootfs = b.join("rootfs");
    fs::create_dir_all(rootfs.join("data/x")).unwrap();
    // The swap partners: an absolute link and a climbing one.
    symlink(outside.join("proc"), rootfs.join("proc.swap")).unwrap();
    symlink(
        "../../../../../../../../..".to_string() + outside.join("data").to_str().unwrap(),
        rootfs.join("data.swap"),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, rootfs) = (Arc::clone(&stop), rootfs.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for name in ["proc", "data"] {
                    let (a, b) = (rootfs.join(name), rootfs.join(format!("{name}.swap")));
                    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
                    swaps += 1;
                }
            }
            swaps
        })
    };
    let (mut inside, mut refused) = (0, 0);
    let mut failures = Vec::new();
    for i in 0..RUNS {
        let (code, out, stderr) = run(&b, &dir.path().join("state"), &format!("race{i}"));
        match code {
            0 if out.trim() == "checked" => inside += 1,
            0 => failures.push(format!("run {i}: {out}")),
            _ if stderr.contains("husk-agent oci") => refused += 1,
            _ => failures.push(format!("run {i}: exit {code}: {out}{stderr}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    println!("{RUNS} creates during {swaps} swaps: {inside} inside, {refused} refused");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing was made outside the root (a mount there would be in the
    // container's namespace, gone with its old root: what it would have
    // cost is an unmasked /proc, which the containers check).
    for (path, what) in [
        (outside.join("proc"), "proc"),
        (outside.join("data/x"), "data/x"),
    ] {
        let entries = fs::read_dir(&path).unwrap().count();
        assert_eq!(entries, 0, "{what} outside the root was written to");
    }
    assert_eq!(inside + refused, RUNS);
}
