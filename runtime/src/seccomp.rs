//! linux.seccomp compiled to BPF with seccompiler.
//!
//! A seccompiler filter has one action for "a rule matched" and one for
//! "nothing matched", while an OCI profile gives each syscall its own
//! action. The kernel runs every installed filter and keeps the most
//! restrictive answer, so the profile becomes several filters:
//! - the default filter: every syscall the profile names (with its
//!   argument conditions) → ALLOW, anything else → the default action;
//! - one filter per other action A: the syscalls with action A → A,
//!   anything else → ALLOW.
//!
//! A syscall listed with ERRNO(38) therefore gets ALLOW from the first and
//! ERRNO(38) from its own filter, and the kernel returns ERRNO(38).
//! Only the native architecture (x86_64) is filtered; seccompiler kills a
//! process making a syscall through another ABI.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::error::{Result, RuntimeError};

/// The compiled filters, in installation order.
#[derive(Debug, Clone, Default)]
pub struct Programs(Vec<BpfProgram>);

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction> {
    use LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        A::ScmpActNotify => {
            return Err(RuntimeError::Unsupported(
                "seccomp action SCMP_ACT_NOTIFY".into(),
            ));
        }
    })
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
    #[cfg(not(target_arch = "aarch64"))]
    TargetArch::x86_64
}

/// Syscalls of one action: number → rules (an unconditional entry wins over
/// conditional ones: seccompiler reads an empty rule list as "always").
#[derive(Default)]
struct Group {
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    unconditional: BTreeSet<i64>,
}

impl Group {
    fn add(&mut self, nr: i64, rule: Option<SeccompRule>) {
        let rules = self.rules.entry(nr).or_default();
        match rule {
            Some(r) if !self.unconditional.contains(&nr) => rules.push(r),
            Some(_) => {}
            None => {
                self.unconditional.insert(nr);
                rules.clear();
            }
        }
    }

    fn merge(&mut self, other: &Group) {
        for (nr, rules) in &other.rules {
            if other.unconditional.contains(nr) {
                self.add(*nr, None);
            } else {
                for r in rules {
                    self.add(*nr, Some(r.clone()));
                }
            }
        }
    }
}

fn compile_filter(
    group: Group,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(group.rules, mismatch, matched, target_arch())
        .map_err(|e| RuntimeError::Config(format!("seccomp: {e}")))?;
    BpfProgram::try_from(filter).map_err(|e| RuntimeError::Config(format!("seccomp: {e}")))
}

/// Compiles linux.seccomp; unknown syscall names are skipped (runc does the
/// same: profiles name syscalls newer or older than the kernel).
pub fn compile(profile: &LinuxSeccomp) -> Result<Programs> {
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut groups: Vec<(SeccompAction, Group)> = Vec::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(entry.action(), entry.errno_ret())?;
        if act == default {
            continue;
        }
        let rule = match entry.args() {
            Some(args) if !args.is_empty() => {
                let mut conditions = Vec::new();
                for arg in args {
                    let (op, value) = match arg.op() {
                        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                        // OCI: (arg & value) == valueTwo.
                        LinuxSeccompOperator::ScmpCmpMaskedEq => (
                            SeccompCmpOp::MaskedEq(arg.value()),
                            arg.value_two().unwrap_or(0),
                        ),
                    };
                    let index = u8::try_from(arg.index()).unwrap_or(u8::MAX);
                    conditions.push(
                        SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
                            .map_err(|e| RuntimeError::Config(format!("seccomp: {e}")))?,
                    );
                }
                Some(
                    SeccompRule::new(conditions)
                        .map_err(|e| RuntimeError::Config(format!("seccomp: {e}")))?,
                )
            }
            _ => None,
        };
        let pos = match groups.iter().position(|(a, _)| *a == act) {
            Some(pos) => pos,
            None => {
                groups.push((act.clone(), Group::default()));
                groups.len() - 1
            }
        };
        for name in entry.names() {
            match syscalls::Sysno::from_str(name) {
                Ok(nr) => groups[pos].1.add(i64::from(nr.id()), rule.clone()),
                Err(_) => log::debug!("seccomp: unknown syscall {name}: skipped"),
            }
        }
    }
    if profile.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        log::debug!("seccomp: filter flags are ignored");
    }
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        let mut named = Group::default();
        for (_, g) in &groups {
            named.merge(g);
        }
        programs.push(compile_filter(named, default, SeccompAction::Allow)?);
    }
    for (act, group) in groups {
        if act != SeccompAction::Allow {
            programs.push(compile_filter(group, SeccompAction::Allow, act)?);
        }
    }
    Ok(Programs(programs))
}

impl Programs {
    /// Installs the filters (needs no_new_privs or CAP_SYS_ADMIN).
    pub fn apply(&self) -> Result<()> {
        for p in &self.0 {
            seccompiler::apply_filter(p)
                .map_err(|e| RuntimeError::Other(format!("installing the seccomp filter: {e}")))?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn one_filter_per_action_plus_the_default() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }));
        assert_eq!(compile(&p).unwrap().0.len(), 2);
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }));
        assert_eq!(compile(&p).unwrap().0.len(), 2);
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(compile(&p).is_err());
    }
}
