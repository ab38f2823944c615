//! TEL 1: typed rules → VM code, one expression at a time. Its output is
//! frozen: the same source gives the same bytes (and ContentId) in every release.
//!
//! Rules run in order; each evaluates its condition into r0 and either
//! decides (ACCEPT, REJECT) or falls through to the next. Past the last rule
//! the program rejects. Registers are handed out as a stack: an expression
//! evaluates into the register it is given and uses the ones above it.
//! `and`/`or` short-circuit, so `others_readable and all(others, …)` never
//! touches the others when they are not readable.

use super::check::{Aggregate, Target, Typed, TypedRule};
use super::emit::{Emitter, Label};
use super::error::{Pos, TelError};
use crate::vm::memory::{ctx_field, CONTEXT_BASE, OTHERS_BASE, RESOURCE_SPAN, SUBJECT_BASE};
use crate::vm::{BinOp, Instruction, Program, Reg, REGISTER_COUNT};

/// Reject code of the final "no rule accepted" rejection; rule n rejects with code n.
pub const NO_RULE_ACCEPTED: u32 = 0;

pub fn generate(rules: &[(Pos, TypedRule)]) -> Result<Program, TelError> {
    let mut gen = Gen::default();
    for (index, (pos, rule)) in rules.iter().enumerate() {
        gen.pos = *pos;
        gen.rule(index as u32 + 1, rule)?;
    }
    let r0 = reg(0);
    gen.string(r0, "no rule accepted the operation");
    gen.emit(Instruction::Reject { reason: r0, code: NO_RULE_ACCEPTED });
    gen.finish()
}

/// Register `index`; callers stay below REGISTER_COUNT (see `alloc`).
fn reg(index: usize) -> Reg {
    Reg::ALL[index % REGISTER_COUNT]
}

#[derive(Default)]
struct Gen {
    out: Emitter,
    /// First free register.
    next: usize,
    /// Base registers of the enclosing aggregates' current resource.
    bases: Vec<Reg>,
    /// Position of the rule being generated, for errors.
    pos: Pos,
}

impl Gen {
    fn emit(&mut self, instruction: Instruction) {
        self.out.emit(instruction);
    }

    fn label(&mut self) -> Label {
        self.out.label()
    }

    fn place(&mut self, label: Label) {
        self.out.place(label)
    }

    fn jump(&mut self, make: impl Fn(u32) -> Instruction, to: Label) {
        self.out.jump(make, to)
    }

    fn alloc(&mut self) -> Result<Reg, TelError> {
        if self.next >= REGISTER_COUNT {
            return Err(TelError::at(
                self.pos,
                format!("this rule is too complex: it needs more than {REGISTER_COUNT} registers; split it into several rules"),
            ));
        }
        self.next += 1;
        Ok(reg(self.next - 1))
    }

    fn free_to(&mut self, mark: usize) {
        self.next = mark;
    }

    fn string(&mut self, rd: Reg, text: &str) {
        self.out.string(rd, text)
    }

    fn constant(&mut self, rd: Reg, value: u64) {
        self.out.constant(rd, value)
    }

    fn rule(&mut self, number: u32, rule: &TypedRule) -> Result<(), TelError> {
        self.next = 0;
        let r0 = self.alloc()?;
        let next = self.label();
        match rule {
            TypedRule::Accept(condition) => {
                if let Some(condition) = condition {
                    self.expr(condition, r0)?;
                    self.jump(|target| Instruction::Jz { cond: r0, target }, next);
                }
                self.emit(Instruction::Accept);
            }
            TypedRule::Reject { reason, condition } => {
                if let Some(condition) = condition {
                    self.expr(condition, r0)?;
                    self.jump(|target| Instruction::Jz { cond: r0, target }, next);
                }
                self.string(r0, reason);
                self.emit(Instruction::Reject { reason: r0, code: number });
            }
            TypedRule::Require { condition, reason } => {
                self.expr(condition, r0)?;
                self.jump(|target| Instruction::Jnz { cond: r0, target }, next);
                self.string(r0, reason);
                self.emit(Instruction::Reject { reason: r0, code: number });
            }
        }
        self.place(next);
        Ok(())
    }

    /// Evaluate `expr` into `dst`, using only registers above `self.next`.
    fn expr(&mut self, expr: &Typed, dst: Reg) -> Result<(), TelError> {
        let mark = self.next;
        match expr {
            Typed::Const(v) => self.constant(dst, *v),
            Typed::Str(text) => self.string(dst, text),
            Typed::Field(Target::Subject, offset) => {
                self.emit(Instruction::Load { rd: dst, addr: SUBJECT_BASE + offset })
            }
            Typed::Field(Target::Current, offset) => {
                let base = *self.bases.last().ok_or_else(|| TelError::at(self.pos, "field outside an aggregate"))?;
                self.emit(Instruction::LoadR { rd: dst, base, offset: *offset });
            }
            Typed::Context(offset) => self.emit(Instruction::Load { rd: dst, addr: CONTEXT_BASE + offset }),
            Typed::Env(key) => {
                self.string(dst, key);
                self.emit(Instruction::Env { rd: dst, key: dst });
            }
            Typed::Bin(op, left, right) => {
                self.expr(left, dst)?;
                let t = self.alloc()?;
                self.expr(right, t)?;
                self.emit(Instruction::Bin { op: *op, rd: dst, ra: dst, rb: t });
            }
            Typed::StrEq { negate, left, right } => {
                self.expr(left, dst)?;
                let t = self.alloc()?;
                self.expr(right, t)?;
                self.emit(Instruction::SliceEq { rd: dst, ra: dst, rb: t });
                if *negate {
                    self.emit(Instruction::Not { rd: dst, ra: dst });
                }
            }
            Typed::And(left, right) | Typed::Or(left, right) => {
                let end = self.label();
                self.expr(left, dst)?;
                if matches!(expr, Typed::And(..)) {
                    self.jump(|target| Instruction::Jz { cond: dst, target }, end);
                } else {
                    self.jump(|target| Instruction::Jnz { cond: dst, target }, end);
                }
                self.expr(right, dst)?;
                self.place(end);
            }
            Typed::Not(inner) => {
                self.expr(inner, dst)?;
                self.emit(Instruction::Not { rd: dst, ra: dst });
            }
            Typed::Aggregate(Aggregate::Count, None) => {
                self.emit(Instruction::Load { rd: dst, addr: CONTEXT_BASE + ctx_field::OTHERS_COUNT })
            }
            Typed::Aggregate(kind, body) => self.aggregate(*kind, body.as_deref(), dst)?,
        }
        self.free_to(mark);
        Ok(())
    }

    /// A loop over the other resources, visiting other i at
    /// `OTHERS_BASE + i * RESOURCE_SPAN`.
    fn aggregate(&mut self, kind: Aggregate, body: Option<&Typed>, dst: Reg) -> Result<(), TelError> {
        let (i, n, base, t) = (self.alloc()?, self.alloc()?, self.alloc()?, self.alloc()?);
        let (top, end) = (self.label(), self.label());
        self.constant(dst, (kind == Aggregate::All) as u64);
        self.constant(i, 0);
        self.emit(Instruction::Load { rd: n, addr: CONTEXT_BASE + ctx_field::OTHERS_COUNT });
        self.place(top);
        self.emit(Instruction::Bin { op: BinOp::Lt, rd: t, ra: i, rb: n });
        self.jump(|target| Instruction::Jz { cond: t, target }, end);
        self.constant(t, RESOURCE_SPAN as u64);
        self.emit(Instruction::Bin { op: BinOp::Mul, rd: base, ra: i, rb: t });
        self.emit(Instruction::AddImm { rd: base, ra: base, imm: OTHERS_BASE });
        if let Some(body) = body {
            self.bases.push(base);
            let done = self.expr(body, t);
            self.bases.pop();
            done?;
        }
        match kind {
            Aggregate::Sum | Aggregate::Count => {
                self.emit(Instruction::Bin { op: BinOp::Add, rd: dst, ra: dst, rb: t })
            }
            Aggregate::All | Aggregate::Any => {
                let next = self.label();
                if kind == Aggregate::All {
                    self.jump(|target| Instruction::Jnz { cond: t, target }, next);
                } else {
                    self.jump(|target| Instruction::Jz { cond: t, target }, next);
                }
                self.constant(dst, (kind == Aggregate::Any) as u64);
                self.jump(|target| Instruction::Jmp { target }, end);
                self.place(next);
            }
        }
        self.emit(Instruction::AddImm { rd: i, ra: i, imm: 1 });
        self.jump(|target| Instruction::Jmp { target }, top);
        self.place(end);
        Ok(())
    }

    fn finish(self) -> Result<Program, TelError> {
        self.out.finish()
    }
}
