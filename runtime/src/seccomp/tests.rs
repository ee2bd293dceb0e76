//! The compiled filter, run by a classic-BPF interpreter on the syscalls
//! of each ABI.

use super::*;

const X32: u32 = x32::X32_SYSCALL_BIT;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | 38;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).unwrap()
}

fn insns(p: &LinuxSeccomp) -> Vec<Insn> {
    compile(p).unwrap().0.unwrap().insns
}

fn verdict(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    bpf::run(prog, &data)
}

fn x86_64(prog: &[Insn], nr: u32, args: [u64; 6]) -> u32 {
    verdict(prog, abi::AUDIT_ARCH_X86_64, nr, args)
}

fn i386(prog: &[Insn], nr: u32) -> u32 {
    verdict(prog, abi::AUDIT_ARCH_I386, nr, [0; 6])
}

/// Docker's shape: an allow list, ENOSYS for clone3, clone only without
/// namespace flags, personality with listed values.
fn docker_like(arches: &[&str]) -> LinuxSeccomp {
    profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": arches,
        "syscalls": [
            {"names": ["read", "write", "getpid", "exit_group", "ioctl", "chown32",
                       "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }))
}

#[test]
fn one_filter_whatever_the_actions() {
    let p = docker_like(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let programs = compile(&p).unwrap();
    assert!(!programs.is_empty());
    assert!(programs.len() < 200, "{} instructions", programs.len());
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(compile(&p).is_err());
}

#[test]
fn each_abi_follows_the_profile_with_its_own_numbers() {
    let prog = insns(&docker_like(&[
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
    ]));
    // x86_64: getpid 39, mount 165, clone3 435.
    assert_eq!(x86_64(&prog, 39, [0; 6]), ALLOW);
    assert_eq!(x86_64(&prog, 165, [0; 6]), EPERM);
    assert_eq!(x86_64(&prog, 435, [0; 6]), ENOSYS);
    // i386: getpid 20, mount 21, chown32 212 (i386 only), clone3 435.
    assert_eq!(i386(&prog, 20), ALLOW);
    assert_eq!(i386(&prog, 21), EPERM);
    assert_eq!(i386(&prog, 212), ALLOW);
    assert_eq!(i386(&prog, 435), ENOSYS);
    // x32: getpid 39|bit, mount 165|bit; ioctl is 514|bit, and 16|bit
    // (x86_64's ioctl) is not an x32 syscall.
    assert_eq!(x86_64(&prog, 39 | X32, [0; 6]), ALLOW);
    assert_eq!(x86_64(&prog, 165 | X32, [0; 6]), EPERM);
    assert_eq!(x86_64(&prog, 514 | X32, [0; 6]), ALLOW);
    assert_eq!(x86_64(&prog, 16 | X32, [0; 6]), EPERM);
    assert_eq!(x86_64(&prog, 16, [0; 6]), ALLOW);
    // An architecture the profile does not list.
    assert_eq!(verdict(&prog, 0xc000_00b7, 172, [0; 6]), KILL);
}

#[test]
fn unlisted_abis_are_killed_not_waved_through() {
    let prog = insns(&docker_like(&["SCMP_ARCH_X86_64"]));
    assert_eq!(x86_64(&prog, 39, [0; 6]), ALLOW);
    // The x32 bit on an allowed number would pass a filter that only
    // compared numbers.
    assert_eq!(x86_64(&prog, 39 | X32, [0; 6]), KILL);
    assert_eq!(i386(&prog, 20), KILL);
    // No list: the native ABI alone.
    let prog = insns(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]
    })));
    assert_eq!(x86_64(&prog, 165, [0; 6]), EPERM);
    assert_eq!(x86_64(&prog, 165 | X32, [0; 6]), KILL);
    assert_eq!(i386(&prog, 21), KILL);
}

#[test]
fn argument_rules_are_ored_and_compare_all_64_bits() {
    let prog = insns(&docker_like(&[
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
    ]));
    let personality = 135;
    for (arg, want) in [(0, ALLOW), (8, ALLOW), (9, EPERM), (8 | 1 << 32, EPERM)] {
        assert_eq!(
            x86_64(&prog, personality, [arg, 0, 0, 0, 0, 0]),
            want,
            "{arg:#x}"
        );
    }
    let clone = 56;
    let newuser = 0x1000_0000;
    assert_eq!(x86_64(&prog, clone, [0x11, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&prog, clone, [newuser, 0, 0, 0, 0, 0]), EPERM);
    // Through x32 (clone is shared, 56|bit): the same rule.
    assert_eq!(x86_64(&prog, clone | X32, [newuser, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(x86_64(&prog, clone | X32, [0x11, 0, 0, 0, 0, 0]), ALLOW);
}

/// Every operator against its meaning on u64s, at the edges of both
/// halves.
#[test]
fn operators_match_their_meaning() {
    let values: [u64; 9] = [
        0,
        1,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        0xffff_ffff_0000_0000,
        u64::MAX,
    ];
    let ops = [
        ("SCMP_CMP_EQ", (|a, v| a == v) as fn(u64, u64) -> bool),
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
        ("SCMP_CMP_GT", |a, v| a > v),
        ("SCMP_CMP_GE", |a, v| a >= v),
        ("SCMP_CMP_MASKED_EQ", |a, v| a & v == 1),
    ];
    for (op, meaning) in ops {
        for v in values {
            let prog = insns(&profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 2, "value": v, "valueTwo": 1, "op": op}]}]
            })));
            for a in values {
                let want = if meaning(a, v) { ALLOW } else { EPERM };
                assert_eq!(
                    x86_64(&prog, 0, [0, 0, a, 0, 0, 0]),
                    want,
                    "{op} arg {a:#x} value {v:#x}"
                );
            }
        }
    }
}

#[test]
fn a_long_allow_list_finds_every_syscall() {
    // Every x86_64 syscall but mount, allowed: the search must find each.
    let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.name())
        .filter(|n| *n != "mount")
        .collect();
    let prog = insns(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })));
    assert!(prog.len() <= bpf::MAX_INSNS);
    for s in syscalls::x86_64::Sysno::iter() {
        let want = if s.name() == "mount" { EPERM } else { ALLOW };
        assert_eq!(x86_64(&prog, s.id() as u32, [0; 6]), want, "{}", s.name());
    }
    for nr in [1000, 0x3fff_ffff] {
        assert_eq!(x86_64(&prog, nr, [0; 6]), EPERM);
    }
}

#[test]
fn bad_argument_indexes_are_refused() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    }));
    let e = compile(&p).unwrap_err().to_string();
    assert!(e.contains("argument index 6"), "{e}");
}
