//! `--no-pivot` (runc's msMoveRoot, for a rootfs pivot_root refuses):
//! no mount of the host may stay in the container's mount namespace,
//! not even under the moved root, compared with runc and crun.

use std::fs;

use crate::bundle;
use crate::harness::{Cleanup, call, enter, err};
use crate::lifecycle::state;

/// Every mount of the mount namespace `pid` is in, found with listmount
/// and statmount (Linux 6.8, namespace ids 6.11): unlike mountinfo, which
/// shows only what is reachable from the reader's root, these see what a
/// moved root covers. (device, root in its filesystem, mount point).
fn namespace_mounts(pid: i64) -> Vec<(String, String, String)> {
    use std::os::fd::AsRawFd;
    // x86_64's numbers; the spec's seccomp here is x86_64's too.
    const SYS_STATMOUNT: libc::c_long = 457;
    const SYS_LISTMOUNT: libc::c_long = 458;
    const NS_GET_MNTNS_ID: libc::c_ulong = 0x8008_b705;
    const LSMT_ROOT: u64 = u64::MAX;
    const STATMOUNT_SB_BASIC: u64 = 0x1;
    const STATMOUNT_MNT_ROOT: u64 = 0x8;
    const STATMOUNT_MNT_POINT: u64 = 0x10;
    #[repr(C)]
    struct MntIdReq {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
        mnt_ns_id: u64,
    }
    let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).unwrap();
    let mut ns_id: u64 = 0;
    // SAFETY: the ioctl writes one u64 into ns_id.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_MNTNS_ID, &mut ns_id) };
    assert_eq!(r, 0, "NS_GET_MNTNS_ID: {}", std::io::Error::last_os_error());
    let req = |mnt_id, param| MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id,
        param,
        mnt_ns_id: ns_id,
    };
    let mut ids = vec![0u64; 1024];
    let list = req(LSMT_ROOT, 0);
    // SAFETY: the kernel writes at most ids.len() u64s into ids.
    let n = unsafe { libc::syscall(SYS_LISTMOUNT, &list, ids.as_mut_ptr(), ids.len(), 0) };
    assert!(
        n >= 0,
        "listmount (Linux 6.8, with a namespace id 6.11): {}",
        std::io::Error::last_os_error()
    );
    ids.truncate(n as usize);
    ids.iter()
        .map(|&id| {
            let mut buf = vec![0u8; 16384];
            let stat = req(
                id,
                STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT | STATMOUNT_MNT_POINT,
            );
            // SAFETY: the kernel writes at most buf.len() bytes into buf.
            let r = unsafe { libc::syscall(SYS_STATMOUNT, &stat, buf.as_mut_ptr(), buf.len(), 0) };
            assert_eq!(r, 0, "statmount: {}", std::io::Error::last_os_error());
            // struct statmount: sb_dev_major at 16, sb_dev_minor at 20,
            // mnt_root at 104 and mnt_point at 108 (offsets into str, at 512).
            let u32_at = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
            let string = |at: usize| {
                let start = 512 + u32_at(at) as usize;
                let end = start + buf[start..].iter().position(|&c| c == 0).unwrap();
                String::from_utf8_lossy(&buf[start..end]).into_owned()
            };
            (
                format!("{}:{}", u32_at(16), u32_at(20)),
                string(104),
                string(108),
            )
        })
        .collect()
}

/// This namespace's mounts as (device, root), from mountinfo.
fn own_mounts() -> Vec<(String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[2].to_string(), f[3].to_string())
        })
        .collect()
}

#[test]
fn no_pivot_leaves_no_host_mounts() {
    if !enter("no_pivot::no_pivot_leaves_no_host_mounts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let bs = b.to_str().unwrap();
    let host = own_mounts();
    // The test's own root, which --no-pivot moves the rootfs over: the
    // namespace's root stays, covered.
    let own_root = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[4] == "/").then(|| (f[2].to_string(), f[3].to_string()))
        })
        .unwrap();
    let mut seen = Vec::new();
    for (runtime, flags) in [
        ("husk", vec![]),
        ("husk", vec!["--no-pivot"]),
        ("runc", vec!["--no-pivot"]),
        ("crun", vec!["--no-pivot"]),
    ] {
        let root = dir.path().join(runtime);
        let id = format!("lc-nopivot-{runtime}-{}", flags.len());
        let _cleanup = Cleanup::new(runtime, &root, &id);
        let mut args = vec!["create", "--bundle", bs];
        args.extend(&flags);
        args.push(&id);
        let out = call(runtime, &root, &args);
        assert!(out.status.success(), "{runtime} {flags:?}: {}", err(&out));
        let pid = state(runtime, &root, &id)["pid"].as_i64().unwrap();
        let out = call(runtime, &root, &["start", &id]);
        assert!(out.status.success(), "{}", err(&out));
        let mounts = namespace_mounts(pid);
        let leaked: Vec<_> = mounts
            .iter()
            .filter(|(dev, mroot, _)| {
                host.contains(&(dev.clone(), mroot.clone()))
                    && (dev.clone(), mroot.clone()) != own_root
            })
            .collect();
        let covered_root = mounts
            .iter()
            .filter(|(dev, mroot, _)| (dev.clone(), mroot.clone()) == own_root)
            .count();
        // The container's own view (its /proc/self/mountinfo).
        let view = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let points: Vec<String> = view
            .lines()
            .map(|l| l.split(' ').nth(4).unwrap().to_string())
            .collect();
        println!(
            "{runtime} {flags:?}: {} mounts in its namespace, host mounts left {leaked:?}, \
             the host root {covered_root}x; it sees {points:?}",
            mounts.len()
        );
        seen.push((
            runtime,
            flags.clone(),
            leaked.len(),
            covered_root,
            points,
            mounts,
        ));
    }
    let (_, _, leaked, covered, pivot_points, pivot_mounts) = &seen[0];
    assert_eq!((*leaked, *covered), (0, 0), "husk with pivot_root");
    let (_, _, leaked, covered, points, mounts) = &seen[1];
    assert_eq!(
        *leaked, 0,
        "husk --no-pivot left host mounts in the namespace"
    );
    assert_eq!(*covered, 1, "husk --no-pivot: the namespace's root");
    assert_eq!(
        points, pivot_points,
        "husk --no-pivot: the container's view"
    );
    // The same mounts as with pivot_root, plus the covered root.
    let strip = |m: &[(String, String, String)]| -> Vec<(String, String)> {
        m.iter()
            .filter(|(dev, r, _)| (dev.clone(), r.clone()) != own_root)
            .map(|(_, r, p)| (r.clone(), p.clone()))
            .collect()
    };
    let (mut a, mut b2) = (strip(pivot_mounts), strip(mounts));
    a.sort();
    b2.sort();
    // cgroup2's root is the container's cgroup, named by its id.
    let unname = |v: &mut Vec<(String, String)>| {
        for (r, _) in v.iter_mut() {
            if r.starts_with("/husk/") {
                *r = "/husk/ID".into();
            }
        }
    };
    unname(&mut a);
    unname(&mut b2);
    assert_eq!(a, b2, "husk: --no-pivot mounts differ from pivot_root's");
}
