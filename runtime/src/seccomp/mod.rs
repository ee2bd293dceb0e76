//! linux.seccomp compiled to one classic-BPF filter covering every ABI the
//! profile lists, as libseccomp does for crun and runc.
//!
//! An x86_64 process can make syscalls through three ABIs, and a filter
//! sees each with other numbers: x86_64 itself; i386 (`int 0x80`, or a
//! 32-bit binary), architecture AUDIT_ARCH_I386 with its own table; and
//! x32, architecture AUDIT_ARCH_X86_64 with the number | 0x40000000. A
//! filter that checked only x86_64 numbers would let x32 numbers past
//! every rule, and one that killed every other ABI (as Husk's filter did)
//! kills 32-bit programs that Docker's profile runs. So the filter:
//!
//! 1. dispatches on the architecture: every ABI the profile's
//!    `architectures` names gets its section (no list: x86_64 alone), and
//!    any other architecture kills the process (libseccomp's "bad arch");
//! 2. in the x86_64 section, sends numbers with the x32 bit to the x32
//!    section when the profile lists x32, and kills the process otherwise;
//! 3. in each section, finds the syscall by binary search over its numbers
//!    in that ABI (names a table lacks are skipped, as runc does), runs
//!    its rules in profile order (the conditions of a rule all hold: its
//!    action), and falls back to the default action.
//!
//! One filter for the whole profile, where Husk used to install one per
//! action: `Seccomp_filters` in /proc/PID/status reads 1, as under crun.

mod abi;
mod bpf;
mod x32;

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use self::abi::Abi;
use self::bpf::{Cmp, Insn, Label, Program};
use super::error::{Result, RuntimeError};

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(index: u32) -> u32 {
    16 + 8 * index
}

/// The compiled profile: nothing (no linux.seccomp) or one filter.
#[derive(Debug, Clone, Default)]
pub struct Programs(Option<Filter>);

#[derive(Debug, Clone)]
struct Filter {
    insns: Vec<Insn>,
    flags: u32,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32> {
    use LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        A::ScmpActErrno => libc::SECCOMP_RET_ERRNO | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
        A::ScmpActKill | A::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        A::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        A::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        A::ScmpActLog => libc::SECCOMP_RET_LOG,
        A::ScmpActTrace => libc::SECCOMP_RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        A::ScmpActNotify => {
            return Err(RuntimeError::Unsupported(
                "seccomp action SCMP_ACT_NOTIFY".into(),
            ));
        }
    })
}

/// One argument condition, 64 bits wide in every ABI: i386's arguments
/// arrive zero-extended, and x32's are whole 64-bit registers that the
/// kernel reads whole, so comparing only the low half would let high
/// bits past a check.
#[derive(Debug, Clone, Copy)]
struct Condition {
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

#[derive(Debug, Clone)]
struct Rule {
    conditions: Vec<Condition>,
    action: u32,
}

/// One ABI's syscalls: number → rules in profile order.
type Table = BTreeMap<u32, Vec<Rule>>;

fn abis(profile: &LinuxSeccomp) -> Vec<Abi> {
    let mut abis = Vec::new();
    for arch in profile.architectures().iter().flatten() {
        let abi = match arch {
            Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::I386,
            Arch::ScmpArchX32 => Abi::X32,
            other => {
                log::debug!("seccomp: architecture {other:?} does not run here: skipped");
                continue;
            }
        };
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    if abis.is_empty() {
        abis.push(Abi::X86_64);
    }
    abis
}

fn conditions(entry: &oci_spec::runtime::LinuxSyscall) -> Result<Vec<Condition>> {
    let mut out = Vec::new();
    for arg in entry.args().iter().flatten() {
        let index = u32::try_from(arg.index())
            .ok()
            .filter(|i| *i < 6)
            .ok_or_else(|| {
                RuntimeError::Config(format!(
                    "seccomp: argument index {} (syscalls have 6)",
                    arg.index()
                ))
            })?;
        out.push(Condition {
            index,
            op: arg.op(),
            value: arg.value(),
            value_two: arg.value_two().unwrap_or(0),
        });
    }
    Ok(out)
}

fn flags(profile: &LinuxSeccomp) -> Result<u32> {
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The process installing the filter has one thread.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            other => {
                return Err(RuntimeError::Unsupported(format!(
                    "seccomp filter flag {other:?}"
                )));
            }
        } as u32;
    }
    Ok(flags)
}

/// Compiles linux.seccomp.
pub fn compile(profile: &LinuxSeccomp) -> Result<Programs> {
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let abis = abis(profile);
    let mut tables: Vec<(Abi, Table)> = abis.iter().map(|a| (*a, Table::new())).collect();
    for entry in profile.syscalls().iter().flatten() {
        let rule = Rule {
            conditions: conditions(entry)?,
            action: action(entry.action(), entry.errno_ret())?,
        };
        for name in entry.names() {
            let mut known = false;
            for (abi, table) in &mut tables {
                if let Some(nr) = abi.number(name) {
                    known = true;
                    table.entry(nr).or_default().push(rule.clone());
                }
            }
            if !known {
                log::debug!("seccomp: unknown syscall {name}: skipped");
            }
        }
    }
    let insns = assemble(default, &tables)?;
    Ok(Programs(Some(Filter {
        insns,
        flags: flags(profile)?,
    })))
}

fn assemble(default: u32, tables: &[(Abi, Table)]) -> Result<Vec<Insn>> {
    let mut p = Program::default();
    let table = |abi| tables.iter().find(|(a, _)| *a == abi).map(|(_, t)| t);
    let x32 = table(Abi::X32).map(|t| (p.label(), t));
    let i386 = table(Abi::I386).map(|t| (p.label(), t));
    let x86_64 = table(Abi::X86_64);

    p.load(ARCH);
    if let Some((label, _)) = i386 {
        p.jump_if(Cmp::Eq, abi::AUDIT_ARCH_I386, label);
    }
    // x32 shares x86_64's architecture: one way in for both.
    if x86_64.is_none() && x32.is_none() {
        p.ret(libc::SECCOMP_RET_KILL_PROCESS);
    } else {
        p.ret_unless(
            Cmp::Eq,
            abi::AUDIT_ARCH_X86_64,
            libc::SECCOMP_RET_KILL_PROCESS,
        );
        p.load(NR);
        match x32 {
            Some((label, _)) => p.jump_if(Cmp::Ge, x32::X32_SYSCALL_BIT, label),
            None => p.ret_if(
                Cmp::Ge,
                x32::X32_SYSCALL_BIT,
                libc::SECCOMP_RET_KILL_PROCESS,
            ),
        }
        match x86_64 {
            Some(t) => section(&mut p, t, default),
            // x32 listed without x86_64: native numbers are a bad arch.
            None => p.ret(libc::SECCOMP_RET_KILL_PROCESS),
        }
    }
    if let Some((label, t)) = x32 {
        p.bind(label);
        section(&mut p, t, default);
    }
    if let Some((label, t)) = i386 {
        p.bind(label);
        p.load(NR);
        section(&mut p, t, default);
    }
    let insns = p
        .finish()
        .ok_or_else(|| RuntimeError::Other("seccomp: the filter's jumps do not resolve".into()))?;
    if insns.len() > bpf::MAX_INSNS {
        return Err(RuntimeError::Config(format!(
            "seccomp: the profile compiles to {} instructions; the kernel takes {}",
            insns.len(),
            bpf::MAX_INSNS
        )));
    }
    Ok(insns)
}

/// What a syscall number leads to in the search.
#[derive(Clone, Copy)]
enum Target {
    /// One unconditional rule first: its action.
    Return(u32),
    /// Rules with conditions: their block.
    Block(Label),
}

/// One ABI: the syscall number is in A.
fn section(p: &mut Program, table: &Table, default: u32) {
    let mut blocks = Vec::new();
    let targets: Vec<(u32, Target)> = table
        .iter()
        .map(|(nr, rules)| match rules.first() {
            Some(first) if first.conditions.is_empty() => (*nr, Target::Return(first.action)),
            _ => {
                let label = p.label();
                blocks.push((label, rules));
                (*nr, Target::Block(label))
            }
        })
        .collect();
    search(p, &targets, default);
    for (label, rules) in blocks {
        p.bind(label);
        for rule in rules {
            let next = p.label();
            for c in &rule.conditions {
                condition(p, c, next);
            }
            p.ret(rule.action);
            p.bind(next);
            if rule.conditions.is_empty() {
                // Nothing after an unconditional rule is reached.
                break;
            }
        }
        p.ret(default);
    }
}

/// The most numbers a leaf of the search compares one by one.
const LEAF: usize = 8;

/// A binary search over the sorted numbers: about log2(n / 8) comparisons
/// down to a leaf of up to eight, instead of a walk through every one.
fn search(p: &mut Program, targets: &[(u32, Target)], default: u32) {
    if targets.len() <= LEAF {
        leaf(p, targets, default);
        return;
    }
    let mid = targets.len() / 2;
    let upper = p.label();
    p.jump_if(Cmp::Ge, targets[mid].0, upper);
    search(p, &targets[..mid], default);
    p.bind(upper);
    search(p, &targets[mid..], default);
}

/// A leaf: one comparison per number, each jumping straight to a return
/// of its action placed after the leaf (one per action, shared), or to
/// its block of rules; then the default.
fn leaf(p: &mut Program, targets: &[(u32, Target)], default: u32) {
    let mut returns: Vec<(u32, Label)> = Vec::new();
    for (nr, target) in targets {
        match target {
            Target::Return(action) if *action == default => {}
            Target::Return(action) => {
                let label = match returns.iter().find(|(a, _)| a == action) {
                    Some((_, label)) => *label,
                    None => {
                        let label = p.label();
                        returns.push((*action, label));
                        label
                    }
                };
                p.jump_near_if(Cmp::Eq, *nr, label);
            }
            Target::Block(label) => p.jump_if(Cmp::Eq, *nr, *label),
        }
    }
    p.ret(default);
    for (action, label) in returns {
        p.bind(label);
        p.ret(action);
    }
}

/// Falls through when the condition holds, jumps to `fail` otherwise.
/// Arguments are little-endian u64s: the low word first.
fn condition(p: &mut Program, c: &Condition, fail: Label) {
    use LinuxSeccompOperator as Op;
    let (lo_at, hi_at) = (arg_low(c.index), arg_low(c.index) + 4);
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (hi, lo) = split(c.value);
    let pass = p.label();
    match c.op {
        Op::ScmpCmpEq => {
            p.load(hi_at);
            p.jump_unless(Cmp::Eq, hi, fail);
            p.load(lo_at);
            p.jump_unless(Cmp::Eq, lo, fail);
        }
        Op::ScmpCmpNe => {
            p.load(hi_at);
            p.jump_unless(Cmp::Eq, hi, pass);
            p.load(lo_at);
            p.jump_if(Cmp::Eq, lo, fail);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            // hi > v.hi passes, hi < v.hi fails, equal: the low words decide.
            p.load(hi_at);
            p.jump_if(Cmp::Gt, hi, pass);
            p.jump_unless(Cmp::Eq, hi, fail);
            p.load(lo_at);
            let cmp = if c.op == Op::ScmpCmpGt {
                Cmp::Gt
            } else {
                Cmp::Ge
            };
            p.jump_unless(cmp, lo, fail);
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            p.load(hi_at);
            p.jump_unless(Cmp::Ge, hi, pass);
            p.jump_unless(Cmp::Eq, hi, fail);
            p.load(lo_at);
            // Lt fails on lo >= v.lo, Le on lo > v.lo.
            let cmp = if c.op == Op::ScmpCmpLt {
                Cmp::Ge
            } else {
                Cmp::Gt
            };
            p.jump_if(cmp, lo, fail);
        }
        Op::ScmpCmpMaskedEq => {
            // OCI: (arg & value) == valueTwo.
            let (mask_hi, mask_lo) = split(c.value);
            let (want_hi, want_lo) = split(c.value_two);
            p.load(hi_at);
            p.and(mask_hi);
            p.jump_unless(Cmp::Eq, want_hi, fail);
            p.load(lo_at);
            p.and(mask_lo);
            p.jump_unless(Cmp::Eq, want_lo, fail);
        }
    }
    p.bind(pass);
}

impl Programs {
    /// Installs the filter (needs no_new_privs or CAP_SYS_ADMIN).
    pub fn apply(&self) -> Result<()> {
        if let Some(filter) = &self.0 {
            super::sys::seccomp_filter(&filter.insns, filter.flags)
                .map_err(|e| RuntimeError::Other(format!("installing the seccomp filter: {e}")))?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The filter's length in instructions (0 without one).
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |f| f.insns.len())
    }
}

#[cfg(test)]
mod tests;
