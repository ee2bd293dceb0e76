//! Husk's default seccomp profile (Docker's) against syscalls through each
//! x86 ABI, under Husk, crun and runc with the same bundle: a 32-bit
//! syscall follows the profile instead of killing the process, and the
//! x32 bit does not carry a syscall past a rule.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use husk_testkit::elf::{Abi, syscall_probe};

use crate::harness::{self, enter, err};
use crate::{bundle, run};

const EPERM: i32 = 255;
const CLONE_NEWUSER: u32 = 0x1000_0000;

/// A probe: its name, ABI, syscall number, arguments, and the exit status
/// every runtime gives (None: whatever this kernel answers, as long as all
/// three agree).
type Probe = (&'static str, Abi, u32, [u32; 3], Option<i32>);

const PROBES: &[Probe] = &[
    ("getpid64", Abi::X86_64, 39, [0; 3], Some(1)),
    ("getpid32", Abi::I386, 20, [0; 3], Some(1)),
    // Denied by omission, in each ABI's numbers.
    ("mount32", Abi::I386, 21, [0; 3], Some(EPERM)),
    ("mountx32", Abi::X32, 165, [0; 3], Some(EPERM)),
    ("kexec32", Abi::I386, 283, [0; 3], Some(EPERM)),
    // Argument rules hold in 32-bit numbers too.
    ("unshare32", Abi::I386, 310, [0, 0, 0], Some(0)),
    (
        "unshare32-user",
        Abi::I386,
        310,
        [CLONE_NEWUSER, 0, 0],
        Some(EPERM),
    ),
    (
        "unsharex32-user",
        Abi::X32,
        272,
        [CLONE_NEWUSER, 0, 0],
        Some(EPERM),
    ),
    // chown32 (i386 only), allowed: its null path faults (EFAULT, 242).
    ("chown32", Abi::I386, 212, [0; 3], Some(242)),
    // Allowed; the kernel's own answer (ENOSYS without x32 support).
    ("getpidx32", Abi::X32, 39, [0; 3], None),
];

fn status_text(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{s:?}"),
    }
}

#[test]
fn syscalls_of_every_abi_follow_the_default_profile() {
    if !enter("seccomp_abi::syscalls_of_every_abi_follow_the_default_profile") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = husk_spec::default_seccomp_profile().unwrap();
    let compiled = husk_runtime::seccomp::compile(&profile).unwrap();
    println!(
        "Docker's profile: one filter of {} instructions",
        compiled.len()
    );
    assert!(compiled.len() <= 4096, "the kernel takes 4096");
    let mut failures = Vec::new();
    for (name, abi, nr, args, want) in PROBES {
        let b = dir.path().join(name);
        bundle::make(&b, &["/probe"]);
        let probe = b.join("rootfs/probe");
        fs::write(&probe, syscall_probe(*abi, *nr, *args)).unwrap();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = bundle::config(&["/probe"]);
        config["linux"]["seccomp"] = serde_json::to_value(&profile).unwrap();
        bundle::write_config(&b, &config);

        let (code, _, stderr) = run(&b, &b.join("husk"), "probe");
        let husk = format!("exit {code}");
        let mut line = vec![format!("husk {husk}")];
        for peer in ["crun", "runc"] {
            let out = harness::peer_run(peer, &b.join(peer), &b, "probe");
            let got = status_text(out.status);
            if got != husk {
                failures.push(format!(
                    "{name}: {peer} {got}, husk {husk} ({stderr}{})",
                    err(&out)
                ));
            }
            line.push(format!("{peer} {got}"));
        }
        if want.is_some_and(|want| code != want) {
            failures.push(format!("{name}: husk {husk}, want {want:?} ({stderr})"));
        }
        println!("{name:16} {}", line.join(", "));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
