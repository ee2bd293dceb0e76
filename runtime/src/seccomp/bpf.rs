//! A classic-BPF assembler for seccomp filters: the few instructions a
//! filter needs, and labels for jumps.
//!
//! Conditional jumps in classic BPF reach at most 255 instructions ahead,
//! which a 400-syscall filter overruns. So every conditional jump here
//! either falls through or skips exactly one instruction, and that one is
//! an unconditional `ja` (32-bit offset) to a label: no distance limit,
//! and the program reads like the code that made it.

use std::collections::HashMap;

pub use libc::sock_filter as Insn;

/// Where a jump lands; made by [`Program::label`], placed by [`Program::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label(usize);

/// The comparisons of conditional jumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
}

impl Cmp {
    fn code(self) -> u16 {
        let op = match self {
            Cmp::Eq => libc::BPF_JEQ,
            Cmp::Gt => libc::BPF_JGT,
            Cmp::Ge => libc::BPF_JGE,
        };
        (libc::BPF_JMP | op | libc::BPF_K) as u16
    }
}

enum Item {
    Insn(Insn),
    Jump(Label),
    /// A conditional jump straight to a label within 255 instructions
    /// (true: to the label, false: fall through).
    Near {
        code: u16,
        k: u32,
        to: Label,
    },
}

#[derive(Default)]
pub struct Program {
    items: Vec<Item>,
    labels: Vec<Option<usize>>,
}

/// The most instructions the kernel takes in one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

fn insn(code: u32, k: u32, jt: u8, jf: u8) -> Insn {
    Insn {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

impl Program {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub fn bind(&mut self, label: Label) {
        let at = self.items.len();
        self.labels[label.0] = Some(at);
    }

    /// `A = *(u32 *)(seccomp_data + offset)`.
    pub fn load(&mut self, offset: u32) {
        self.push(insn(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            offset,
            0,
            0,
        ));
    }

    /// `A &= k`.
    pub fn and(&mut self, k: u32) {
        self.push(insn(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, k, 0, 0));
    }

    pub fn ret(&mut self, action: u32) {
        self.push(insn(libc::BPF_RET | libc::BPF_K, action, 0, 0));
    }

    pub fn jump(&mut self, to: Label) {
        self.items.push(Item::Jump(to));
    }

    /// Goes to `to` when `A cmp k` holds, else falls through.
    pub fn jump_if(&mut self, cmp: Cmp, k: u32, to: Label) {
        // True: fall onto the `ja`; false: skip it.
        self.push(Insn {
            code: cmp.code(),
            jt: 0,
            jf: 1,
            k,
        });
        self.jump(to);
    }

    /// Goes to `to` unless `A cmp k` holds.
    pub fn jump_unless(&mut self, cmp: Cmp, k: u32, to: Label) {
        self.push(Insn {
            code: cmp.code(),
            jt: 1,
            jf: 0,
            k,
        });
        self.jump(to);
    }

    /// Returns `action` when `A cmp k` holds, else falls through.
    pub fn ret_if(&mut self, cmp: Cmp, k: u32, action: u32) {
        self.push(Insn {
            code: cmp.code(),
            jt: 0,
            jf: 1,
            k,
        });
        self.ret(action);
    }

    /// Goes to `to`, which must be at most 255 instructions ahead, when
    /// `A cmp k` holds: one instruction instead of two.
    pub fn jump_near_if(&mut self, cmp: Cmp, k: u32, to: Label) {
        self.items.push(Item::Near {
            code: cmp.code(),
            k,
            to,
        });
    }

    /// Returns `action` unless `A cmp k` holds, else falls through.
    pub fn ret_unless(&mut self, cmp: Cmp, k: u32, action: u32) {
        self.push(Insn {
            code: cmp.code(),
            jt: 1,
            jf: 0,
            k,
        });
        self.ret(action);
    }

    fn push(&mut self, i: Insn) {
        self.items.push(Item::Insn(i));
    }

    /// The instructions, jumps resolved; None when a label was never bound
    /// or jumps backwards (a compiler bug; the kernel would refuse it).
    pub fn finish(self) -> Option<Vec<Insn>> {
        let mut positions = HashMap::new();
        for (i, at) in self.labels.iter().enumerate() {
            positions.insert(i, (*at)?);
        }
        let mut out = Vec::with_capacity(self.items.len());
        for (pc, item) in self.items.into_iter().enumerate() {
            out.push(match item {
                Item::Insn(i) => i,
                Item::Jump(Label(l)) => {
                    let target = positions[&l];
                    let offset = target.checked_sub(pc + 1)?;
                    insn(
                        libc::BPF_JMP | libc::BPF_JA,
                        u32::try_from(offset).ok()?,
                        0,
                        0,
                    )
                }
                Item::Near { code, k, to } => {
                    let offset = positions[&to.0].checked_sub(pc + 1)?;
                    Insn {
                        code,
                        jt: u8::try_from(offset).ok()?,
                        jf: 0,
                        k,
                    }
                }
            });
        }
        Some(out)
    }
}

/// Runs a filter on one syscall the way the kernel would (the subset of
/// classic BPF the assembler emits), for tests.
#[cfg(test)]
pub fn run(program: &[Insn], data: &[u8; 64]) -> u32 {
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = program[pc];
        let code = u32::from(i.code);
        pc += 1;
        match code {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = word(i.k),
            c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
            c if c == libc::BPF_RET | libc::BPF_K => return i.k,
            c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
            c => {
                let taken = match c & 0xf0 {
                    x if x == libc::BPF_JEQ => a == i.k,
                    x if x == libc::BPF_JGT => a > i.k,
                    x if x == libc::BPF_JGE => a >= i.k,
                    _ => panic!("instruction {c:#x} is not one the assembler emits"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
        }
    }
}
