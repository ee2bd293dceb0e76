//! linux.resources.devices as a cgroup v2 device filter: an eBPF program
//! of type BPF_PROG_TYPE_CGROUP_DEVICE, which the kernel runs on every
//! open and mknod of a device node by a process of the cgroup (cgroup v2
//! has no devices.allow file; this is how runc and crun do it).
//!
//! The rules mean what they mean on cgroup v1, where they came from:
//! - a rule for every device with every access (`a *:* rwm`) resets the
//!   list: it sets the default and drops the rules before it;
//! - the last rule that matches a request decides, and without one the
//!   default does (allow, as a v1 cgroup starts);
//! - an allow rule matches a request whose access it covers whole (`rw`
//!   is not allowed by `r`), a deny rule one whose access it touches at
//!   all (`rw` is denied by `w`).
//!
//! Docker's default list (husk-spec's) is: deny everything, then allow
//! `mknod` of any node and read/write of null, zero, full, random,
//! urandom, tty, console, ptmx and the ptys. A root process with
//! CAP_MKNOD can then make a node for the host's disk, and opening it is
//! refused.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::error::{Result, RuntimeError};

/// `struct bpf_cgroup_dev_ctx`: access_type (access << 16 | type), major,
/// minor.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;

/// BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction, as the kernel reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn op(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes: class | op | source (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

/// One rule, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// None: any type (`a`).
    typ: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: i32,
}

impl Rule {
    fn from_spec(r: &LinuxDeviceCgroup) -> Result<Self> {
        let bad = |why: String| RuntimeError::Config(format!("linux.resources.devices: {why}"));
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => return Err(bad("type p (a FIFO) is not a device".into())),
        };
        let number = |n: Option<i64>, what: &str| -> Result<Option<i32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => i32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(Some)
                    .ok_or_else(|| bad(format!("{what} {n} is not a device number"))),
            }
        };
        let mut access = 0;
        for c in r.access().as_deref().unwrap_or("rwm").chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                other => return Err(bad(format!("access {other:?} is none of r, w, m"))),
            };
        }
        Ok(Rule {
            allow: r.allow(),
            typ,
            major: number(r.major(), "major")?,
            minor: number(r.minor(), "minor")?,
            access,
        })
    }

    /// `a *:* rwm`: every device, every access.
    fn is_everything(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// The devices every container's /dev holds (the OCI spec's default
/// devices: null, zero, full, random, urandom, tty, console, ptmx, and the
/// ptys), allowed whatever the rules say, as runc and crun do: a runtime
/// that made them must let the container use them.
const DEFAULT_DEVICES: [(i32, Option<i32>); 9] = [
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(1)),
    (5, Some(2)),
    (136, None),
];

/// The filter for a container: its spec's rules, then allow rules for the
/// default devices and for the nodes its linux.devices lists. None when
/// the spec has no rules (no filter: every device, as on cgroup v1).
pub fn container_program(
    rules: &[LinuxDeviceCgroup],
    nodes: &[oci_spec::runtime::LinuxDevice],
) -> Result<Option<Vec<Insn>>> {
    if rules.is_empty() {
        return Ok(None);
    }
    let mut all: Vec<Rule> = rules.iter().map(Rule::from_spec).collect::<Result<_>>()?;
    for (major, minor) in DEFAULT_DEVICES {
        all.push(Rule {
            allow: true,
            typ: Some(DEV_CHAR),
            major: Some(major),
            minor,
            access: ACC_ALL,
        });
    }
    for node in nodes {
        let typ = match node.typ() {
            LinuxDeviceType::B => DEV_BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
            // FIFOs and "a" are no device numbers to allow.
            _ => continue,
        };
        // A number out of range is no device (mknod refuses it later);
        // it must not become a wildcard here.
        let (Ok(major), Ok(minor)) = (i32::try_from(node.major()), i32::try_from(node.minor()))
        else {
            continue;
        };
        all.push(Rule {
            allow: true,
            typ: Some(typ),
            major: Some(major),
            minor: Some(minor),
            access: ACC_ALL,
        });
    }
    Ok(Some(assemble(&all)?))
}

/// The filter program for `rules` alone.
#[cfg(test)]
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let rules: Vec<Rule> = rules.iter().map(Rule::from_spec).collect::<Result<_>>()?;
    assemble(&rules)
}

fn assemble(rules: &[Rule]) -> Result<Vec<Insn>> {
    let mut default = true;
    let mut exceptions: Vec<Rule> = Vec::new();
    for &rule in rules {
        if rule.is_everything() {
            default = rule.allow;
            exceptions.clear();
        } else {
            exceptions.push(rule);
        }
    }
    let mut p = vec![
        op(LDX_MEM_W, R2, R1, CTX_ACCESS_TYPE, 0),
        op(ALU32_AND_K, R2, 0, 0, 0xffff),
        op(LDX_MEM_W, R3, R1, CTX_ACCESS_TYPE, 0),
        op(ALU32_RSH_K, R3, 0, 0, 16),
        op(LDX_MEM_W, R4, R1, CTX_MAJOR, 0),
        op(LDX_MEM_W, R5, R1, CTX_MINOR, 0),
    ];
    // The last matching rule decides: check them from the last.
    for rule in exceptions.iter().rev() {
        let mut block = Vec::new();
        // Each check jumps past the rest of the block on a mismatch; the
        // offsets are filled in once the block's length is known.
        let mut skips = Vec::new();
        if let Some(typ) = rule.typ {
            skips.push(block.len());
            block.push(op(JMP_JNE_K, R2, 0, 0, typ));
        }
        if rule.access != ACC_ALL || !rule.allow {
            block.push(op(ALU32_MOV_X, R1, R3, 0, 0));
            block.push(op(ALU32_AND_K, R1, 0, 0, rule.access));
            skips.push(block.len());
            if rule.allow {
                // Allowed only if the request asks nothing more.
                block.push(op(JMP_JNE_X, R1, R3, 0, 0));
            } else {
                // Denied if the request asks any of it.
                block.push(op(JMP_JEQ_K, R1, 0, 0, 0));
            }
        }
        if let Some(major) = rule.major {
            skips.push(block.len());
            block.push(op(JMP_JNE_K, R4, 0, 0, major));
        }
        if let Some(minor) = rule.minor {
            skips.push(block.len());
            block.push(op(JMP_JNE_K, R5, 0, 0, minor));
        }
        block.push(op(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow)));
        block.push(op(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for at in skips {
            // From the instruction after the jump to the block's end.
            block[at].off = i16::try_from(len - at - 1).unwrap_or(i16::MAX);
        }
        p.extend(block);
    }
    p.push(op(ALU64_MOV_K, R0, 0, 0, i32::from(default)));
    p.push(op(JMP_EXIT, 0, 0, 0, 0));
    if p.len() > 4096 {
        return Err(RuntimeError::Config(format!(
            "linux.resources.devices: {} rules are more than a device filter holds",
            rules.len()
        )));
    }
    Ok(p)
}

/// Runs the program on one request the way the kernel would (the subset
/// of eBPF [`program`] emits), for tests: true means allowed.
#[cfg(test)]
pub fn run(program: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> bool {
    let ctx = [((access as u32) << 16) | typ as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = program[pc];
        let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
        pc += 1;
        let jump = |taken: bool, pc: &mut usize| {
            if taken {
                *pc = (*pc as i64 + i64::from(i.off)) as usize;
            }
        };
        match i.code {
            LDX_MEM_W => {
                assert_eq!(src, usize::from(R1), "loads only from the context");
                r[dst] = u64::from(ctx[(i.off / 4) as usize]);
            }
            ALU32_AND_K => r[dst] = u64::from(r[dst] as u32 & i.imm as u32),
            ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
            ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
            ALU64_MOV_K => r[dst] = i64::from(i.imm) as u64,
            JMP_JNE_K => jump(r[dst] != i64::from(i.imm) as u64, &mut pc),
            JMP_JEQ_K => jump(r[dst] == i64::from(i.imm) as u64, &mut pc),
            JMP_JNE_X => jump(r[dst] != r[src], &mut pc),
            JMP_EXIT => return r[0] == 1,
            other => panic!("opcode {other:#x} is not one the program uses"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({
            "allow": allow, "type": typ, "major": major, "minor": minor, "access": access
        }))
        .unwrap()
    }

    /// husk-spec's (Docker's) default list.
    fn docker() -> Vec<LinuxDeviceCgroup> {
        let mut rules = vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", None, None, "m"),
            rule(true, "b", None, None, "m"),
        ];
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            rules.push(rule(true, "c", Some(major), Some(minor), "rwm"));
        }
        rules.push(rule(true, "c", Some(136), None, "rwm"));
        rules
    }

    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn dockers_defaults() {
        let p = program(&docker()).unwrap();
        // The listed devices, read and written.
        assert!(run(&p, DEV_CHAR, RW, 1, 3));
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 9));
        assert!(run(&p, DEV_CHAR, RW, 136, 7));
        // Any node may be made, none other opened: a disk, /dev/mem, kmsg.
        assert!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0));
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 0));
        assert!(!run(&p, DEV_BLOCK, ACC_WRITE, 253, 0));
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 1));
        assert!(!run(&p, DEV_CHAR, RW, 1, 11));
        // 1:3 is a char device, not a block one.
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 1, 3));
    }

    #[test]
    fn the_last_matching_rule_decides() {
        let p = program(&[
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
        ])
        .unwrap();
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 3));
        // A deny rule catches any access it names.
        assert!(!run(&p, DEV_CHAR, RW, 1, 3));
        assert!(run(&p, DEV_BLOCK, RW, 8, 0));
        let p = program(&[
            rule(false, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(1), Some(3), "r"),
        ])
        .unwrap();
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 3));
        // An allow rule only covers the access it names.
        assert!(!run(&p, DEV_CHAR, RW, 1, 3));
        // Everything denied, then everything allowed again.
        let p = program(&[
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "a", None, None, "rwm"),
        ])
        .unwrap();
        assert!(run(&p, DEV_BLOCK, RW, 8, 0));
        // No rules: a v1 cgroup's default, everything.
        assert!(run(&program(&[]).unwrap(), DEV_BLOCK, RW, 8, 0));
    }

    #[test]
    fn bad_rules_are_refused() {
        let e = program(&[rule(true, "c", Some(1), Some(3), "rx")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("access 'x'"), "{e}");
        let e = program(&[rule(true, "c", Some(1 << 40), Some(3), "r")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("major"), "{e}");
        assert!(program(&[rule(true, "p", None, None, "r")]).is_err());
    }
}
