//! TEL 2: folded rules → VM code that does less.
//!
//! - **Conditions become branches.** A rule's condition jumps straight to its
//!   verdict or to the next rule (`branch`), so `and`, `or`, `not` and
//!   `in [...]` cost one compare and one jump per test and never build a
//!   boolean; `all`/`any` leave their loop at the first element that decides.
//! - **Loaded values stay in registers.** A field of the subject, a context
//!   value or an environment lookup used more than once gets a register of
//!   its own for the whole program (the top registers, r15 down), loaded
//!   where it is first needed. The generator tracks which are loaded on
//!   every path reaching each point (jumps only go forward except a loop's,
//!   whose header keeps the state on entry), so it reloads only where some
//!   path has not loaded it yet. Temporaries use the registers below.
//! - **Fused instructions** (program format 2): `CMPI` compares with an
//!   immediate (`LDI` + compare), `JxxI` jumps on a compare with a constant
//!   that fits a byte (`LDI` + compare + `JNZ`: the enum tests), `SEQD`
//!   compares a slice with a data-section string (`STR` + `SEQ`); `x > 0` is
//!   a test of `x` itself.
//! - **Loops walk a pointer**: an aggregate steps its base register by the
//!   resource span and compares it with the end, at the bottom of the loop.
//!
//! Evaluation order and short-circuiting are TEL 1's, so a program traps,
//! rejects and accepts exactly where TEL 1's does.

use super::check::{Aggregate, Target, Typed, TypedRule};
use super::emit::{Emitter, Label};
use super::error::{Pos, TelError};
use super::fold::Folded;
use crate::vm::memory::{ctx_field, CONTEXT_BASE, OTHERS_BASE, RESOURCE_SPAN, SUBJECT_BASE};
use crate::vm::{BinOp, Compare, Instruction, Program, Reg, REGISTER_COUNT};

use super::codegen::NO_RULE_ACCEPTED;

/// At most this many registers hold loaded values; the rest are temporaries.
const MAX_CACHED: usize = 8;

pub fn generate(folded: &Folded) -> Result<Program, TelError> {
    let cacheable = cacheable(folded);
    let mut count = cacheable.len().min(MAX_CACHED);
    loop {
        let mut gen = Gen::new(&cacheable[..count]);
        match gen.program(folded) {
            // A rule that needs more temporaries gets them from the cache.
            Err(_) if gen.out_of_registers && count > 0 => count -= 1,
            Err(e) => return Err(e),
            Ok(()) => return gen.out.finish(),
        }
    }
}

/// A value that does not change during a run, so one load serves every use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Loadable {
    Subject(u32),
    Context(u32),
    Env(String),
}

fn loadable(expr: &Typed) -> Option<Loadable> {
    match expr {
        Typed::Field(Target::Subject, offset) => Some(Loadable::Subject(*offset)),
        Typed::Context(offset) => Some(Loadable::Context(*offset)),
        Typed::Aggregate(Aggregate::Count, None) => Some(Loadable::Context(ctx_field::OTHERS_COUNT)),
        Typed::Env(key) => Some(Loadable::Env(key.clone())),
        _ => None,
    }
}

/// Per value: its uses, and the order of its first use.
type Uses = std::collections::HashMap<Loadable, (usize, usize)>;

/// The values used more than once, most used first (ties in the order of
/// first use). Counted in a map: a program may hold many distinct values.
fn cacheable(folded: &Folded) -> Vec<Loadable> {
    fn walk(expr: &Typed, uses: &mut Uses) {
        let mut note = |value: Loadable| {
            let first = uses.len();
            uses.entry(value).or_insert((0, first)).0 += 1;
        };
        if let Some(value) = loadable(expr) {
            note(value);
            return;
        }
        match expr {
            Typed::Bin(_, a, b) | Typed::And(a, b) | Typed::Or(a, b) => {
                walk(a, uses);
                walk(b, uses);
            }
            Typed::StrEq { left, right, .. } => {
                walk(left, uses);
                walk(right, uses);
            }
            Typed::Not(inner) => walk(inner, uses),
            Typed::Aggregate(_, body) => {
                // The loop reads the count of the others.
                note(Loadable::Context(ctx_field::OTHERS_COUNT));
                if let Some(body) = body {
                    walk(body, uses);
                }
            }
            _ => {}
        }
    }
    let mut uses = Uses::new();
    for rule in &folded.rules {
        match &rule.rule {
            TypedRule::Accept(Some(c)) | TypedRule::Reject { condition: Some(c), .. } => walk(c, &mut uses),
            TypedRule::Require { condition, .. } => walk(condition, &mut uses),
            _ => {}
        }
    }
    let mut uses: Vec<(Loadable, (usize, usize))> = uses.into_iter().filter(|(_, (n, _))| *n > 1).collect();
    uses.sort_unstable_by_key(|(_, (n, first))| (std::cmp::Reverse(*n), *first));
    uses.into_iter().map(|(value, _)| value).collect()
}

/// Which cached values are loaded, one bit per cache slot.
type Loaded = u32;

struct Gen<'c> {
    out: Emitter,
    /// Cached value i lives in register 15 - i.
    cached: &'c [Loadable],
    /// Loaded on every path reaching the current point.
    loaded: Loaded,
    /// Whether the current point can be reached (not after a verdict or `JMP`).
    reachable: bool,
    /// Per label: loaded on every jump to it so far (`None`: no jump yet).
    arriving: Vec<Option<Loaded>>,
    /// First free temporary; temporaries end where the cache begins.
    next: usize,
    out_of_registers: bool,
    /// Base registers of the enclosing aggregates' current resource.
    bases: Vec<Reg>,
    /// The shared ACCEPT at the end, which conditions jump to.
    accept: Option<Label>,
    pos: Pos,
}

impl<'c> Gen<'c> {
    fn new(cached: &'c [Loadable]) -> Gen<'c> {
        Gen {
            out: Emitter::default(),
            cached,
            loaded: 0,
            reachable: true,
            arriving: Vec::new(),
            next: 0,
            out_of_registers: false,
            bases: Vec::new(),
            accept: None,
            pos: Pos { line: 1, col: 1 },
        }
    }

    fn program(&mut self, folded: &Folded) -> Result<(), TelError> {
        let accept = self.label();
        self.accept = Some(accept);
        for rule in &folded.rules {
            self.pos = rule.pos;
            self.next = 0;
            self.rule(rule.number, &rule.rule, accept)?;
        }
        if folded.falls_through && self.reachable {
            self.reject("no rule accepted the operation", NO_RULE_ACCEPTED)?;
        }
        if self.arriving[accept.0].is_some() {
            self.place(accept);
            self.verdict(Instruction::Accept);
        }
        Ok(())
    }

    fn rule(&mut self, number: u32, rule: &TypedRule, accept: Label) -> Result<(), TelError> {
        match rule {
            TypedRule::Accept(None) => self.verdict(Instruction::Accept),
            TypedRule::Accept(Some(condition)) => self.branch(condition, true, accept)?,
            TypedRule::Reject { reason, condition: None } => self.reject(reason, number)?,
            TypedRule::Reject { reason, condition: Some(condition) } => {
                let next = self.label();
                self.branch(condition, false, next)?;
                self.reject(reason, number)?;
                self.place(next);
            }
            TypedRule::Require { condition, reason } => {
                let next = self.label();
                self.branch(condition, true, next)?;
                self.reject(reason, number)?;
                self.place(next);
            }
        }
        Ok(())
    }

    fn reject(&mut self, reason: &str, code: u32) -> Result<(), TelError> {
        let mark = self.next;
        let r = self.alloc()?;
        self.out.string(r, reason);
        self.verdict(Instruction::Reject { reason: r, code });
        self.next = mark;
        Ok(())
    }

    // ---- control flow with the loaded-value state ----

    fn emit(&mut self, instruction: Instruction) {
        self.out.emit(instruction);
    }

    /// ACCEPT, REJECT or JMP: nothing falls through.
    fn verdict(&mut self, instruction: Instruction) {
        self.emit(instruction);
        self.reachable = false;
    }

    fn label(&mut self) -> Label {
        self.arriving.push(None);
        self.out.label()
    }

    fn place(&mut self, label: Label) {
        let arriving = self.arriving[label.0];
        self.loaded = match (self.reachable, arriving) {
            (true, Some(state)) => self.loaded & state,
            (true, None) => self.loaded,
            (false, Some(state)) => state,
            (false, None) => 0,
        };
        self.reachable |= arriving.is_some();
        self.out.place(label);
    }

    fn jump(&mut self, make: impl Fn(u32) -> Instruction, to: Label) {
        if !self.out.is_placed(to) {
            let state = self.arriving[to.0].map_or(self.loaded, |s| s & self.loaded);
            self.arriving[to.0] = Some(state);
        }
        // A backward jump (a loop's) arrives with at least the state the
        // header was placed with: nothing is ever unloaded.
        self.out.jump(make, to);
    }

    fn goto(&mut self, to: Label) {
        if self.accept == Some(to) {
            // A jump to ACCEPT is an ACCEPT.
            self.verdict(Instruction::Accept);
            return;
        }
        self.jump(|target| Instruction::Jmp { target }, to);
        self.reachable = false;
    }

    fn jump_if(&mut self, cond: Reg, when: bool, to: Label) {
        if when {
            self.jump(|target| Instruction::Jnz { cond, target }, to);
        } else {
            self.jump(|target| Instruction::Jz { cond, target }, to);
        }
    }

    // ---- registers ----

    fn alloc(&mut self) -> Result<Reg, TelError> {
        if self.next >= REGISTER_COUNT - self.cached.len() {
            self.out_of_registers = true;
            return Err(TelError::at(
                self.pos,
                format!("this rule is too complex: it needs more than {REGISTER_COUNT} registers; split it into several rules"),
            ));
        }
        self.next += 1;
        Ok(Reg::ALL[self.next - 1])
    }

    /// `expr`'s value, cache slot and register, if it is cached.
    fn slot(&self, expr: &Typed) -> Option<(Loadable, usize, Reg)> {
        let value = loadable(expr)?;
        let slot = self.cached.iter().position(|v| *v == value)?;
        Some((value, slot, Reg::ALL[REGISTER_COUNT - 1 - slot]))
    }

    /// The register of a cached value, loaded first if some path here has not.
    fn cached(&mut self, expr: &Typed) -> Option<Reg> {
        let (value, slot, reg) = self.slot(expr)?;
        if self.loaded & (1 << slot) == 0 {
            self.load(&value, reg);
            self.loaded |= 1 << slot;
        }
        Some(reg)
    }

    /// The register of a cached value that every path here has loaded.
    fn loaded_reg(&self, expr: &Typed) -> Option<Reg> {
        let (_, slot, reg) = self.slot(expr)?;
        (self.loaded & (1 << slot) != 0).then_some(reg)
    }

    fn load(&mut self, value: &Loadable, rd: Reg) {
        match value {
            Loadable::Subject(offset) => self.emit(Instruction::Load { rd, addr: SUBJECT_BASE + offset }),
            Loadable::Context(offset) => self.emit(Instruction::Load { rd, addr: CONTEXT_BASE + offset }),
            Loadable::Env(key) => {
                self.out.string(rd, key);
                self.emit(Instruction::Env { rd, key: rd });
            }
        }
    }

    // ---- values ----

    /// A register holding `expr`: its cache register, or `dst` with the value
    /// computed into it.
    fn operand(&mut self, expr: &Typed, dst: Reg) -> Result<Reg, TelError> {
        if let Some(reg) = self.cached(expr) {
            return Ok(reg);
        }
        self.value_into(expr, dst)?;
        Ok(dst)
    }

    /// A register holding `expr`, a new temporary unless it is cached.
    fn value(&mut self, expr: &Typed) -> Result<Reg, TelError> {
        if let Some(reg) = self.cached(expr) {
            return Ok(reg);
        }
        let dst = self.alloc()?;
        self.value_into(expr, dst)?;
        Ok(dst)
    }

    /// Evaluate `expr` into `dst`, using only temporaries above `self.next`.
    fn value_into(&mut self, expr: &Typed, dst: Reg) -> Result<(), TelError> {
        let mark = self.next;
        if let Some(reg) = self.loaded_reg(expr) {
            self.emit(Instruction::Mov { rd: dst, ra: reg });
            return Ok(());
        }
        // Not loaded yet: into `dst` alone (one instruction, as TEL 1), not
        // into its register and then a copy.
        match expr {
            Typed::Const(v) => self.out.constant(dst, *v),
            Typed::Str(text) => self.out.string(dst, text),
            Typed::Field(Target::Current, offset) => {
                let base = *self.bases.last().ok_or_else(|| TelError::at(self.pos, "field outside an aggregate"))?;
                self.emit(Instruction::LoadR { rd: dst, base, offset: *offset });
            }
            Typed::Field(..) | Typed::Context(_) | Typed::Env(_) | Typed::Aggregate(Aggregate::Count, None) => {
                let value = loadable(expr).ok_or_else(|| TelError::at(self.pos, "not a loadable value"))?;
                self.load(&value, dst);
            }
            Typed::Bin(op, left, right) => self.binary(*op, left, right, dst)?,
            Typed::StrEq { negate, left, right } => {
                self.string_equal(left, right, dst)?;
                if *negate {
                    self.emit(Instruction::Not { rd: dst, ra: dst });
                }
            }
            Typed::And(left, right) | Typed::Or(left, right) => {
                let end = self.label();
                self.value_into(left, dst)?;
                self.jump_if(dst, matches!(expr, Typed::Or(..)), end);
                self.value_into(right, dst)?;
                self.place(end);
            }
            Typed::Not(inner) => {
                let a = self.operand(inner, dst)?;
                self.emit(Instruction::Not { rd: dst, ra: a });
            }
            Typed::Aggregate(Aggregate::Sum, Some(body)) => {
                self.out.constant(dst, 0);
                self.each_other(|gen| {
                    let mark = gen.next;
                    let v = gen.value(body)?;
                    gen.emit(Instruction::Bin { op: BinOp::Add, rd: dst, ra: dst, rb: v });
                    gen.next = mark;
                    Ok(())
                })?;
            }
            Typed::Aggregate(Aggregate::Count, Some(body)) => {
                self.out.constant(dst, 0);
                self.each_other(|gen| {
                    let skip = gen.label();
                    gen.branch(body, false, skip)?;
                    gen.emit(Instruction::AddImm { rd: dst, ra: dst, imm: 1 });
                    gen.place(skip);
                    Ok(())
                })?;
            }
            Typed::Aggregate(kind, body) => {
                // all/any as a value: the deciding element jumps past the default.
                let body = body.as_deref().ok_or_else(|| TelError::at(self.pos, "an aggregate without a body"))?;
                let found = *kind == Aggregate::Any;
                let done = self.label();
                self.out.constant(dst, found as u64);
                self.quantifier(*kind, body, done)?;
                self.out.constant(dst, !found as u64);
                self.place(done);
            }
        }
        self.next = mark;
        Ok(())
    }

    fn binary(&mut self, op: BinOp, left: &Typed, right: &Typed, dst: Reg) -> Result<(), TelError> {
        if let Some((cmp, x, imm)) = compare_with_constant::<u32>(op, left, right) {
            let a = self.operand(x, dst)?;
            self.emit(Instruction::CmpImm { cmp, rd: dst, ra: a, imm });
            return Ok(());
        }
        // Only `x + constant`: an overflow then names its operands in TEL 1's order.
        if let (BinOp::Add, Some(imm)) = (op, constant::<u32>(right)) {
            let a = self.operand(left, dst)?;
            self.emit(Instruction::AddImm { rd: dst, ra: a, imm });
            return Ok(());
        }
        let a = self.operand(left, dst)?;
        let t = self.alloc()?;
        let b = self.operand(right, t)?;
        self.emit(Instruction::Bin { op, rd: dst, ra: a, rb: b });
        Ok(())
    }

    /// `dst` = whether two strings are equal (a literal side compared in place).
    fn string_equal(&mut self, left: &Typed, right: &Typed, dst: Reg) -> Result<(), TelError> {
        let literal = |e: &Typed| match e {
            Typed::Str(text) => Some(text.clone()),
            _ => None,
        };
        if let Some((text, other)) = literal(right).map(|t| (t, left)).or_else(|| literal(left).map(|t| (t, right))) {
            let a = self.operand(other, dst)?;
            let offset = self.out.string_offset(&text);
            self.emit(Instruction::SliceEqData { rd: dst, ra: a, offset });
            return Ok(());
        }
        let a = self.operand(left, dst)?;
        let t = self.alloc()?;
        let b = self.operand(right, t)?;
        self.emit(Instruction::SliceEq { rd: dst, ra: a, rb: b });
        Ok(())
    }

    // ---- conditions ----

    /// Jump to `to` when `expr` is `when`; fall through otherwise.
    fn branch(&mut self, expr: &Typed, when: bool, to: Label) -> Result<(), TelError> {
        let mark = self.next;
        match expr {
            Typed::Const(v) => {
                if (*v != 0) == when {
                    self.goto(to);
                }
            }
            Typed::Not(inner) => self.branch(inner, !when, to)?,
            Typed::And(left, right) | Typed::Or(left, right) => {
                // `a and b` is false as soon as a is; `a or b` true as soon as a is.
                let decided_by_left = matches!(expr, Typed::Or(..));
                if when == decided_by_left {
                    self.branch(left, when, to)?;
                    self.branch(right, when, to)?;
                } else {
                    let skip = self.label();
                    self.branch(left, decided_by_left, skip)?;
                    self.branch(right, when, to)?;
                    self.place(skip);
                }
            }
            Typed::StrEq { negate, left, right } => {
                let t = self.alloc()?;
                self.string_equal(left, right, t)?;
                self.jump_if(t, when != *negate, to);
            }
            Typed::Bin(op, left, right) => {
                let t = self.alloc()?;
                if let Some((x, nonzero)) = zero_test(*op, left, right) {
                    // Unsigned: `x > 0` and `x != 0` hold when x does, `x == 0` and `x <= 0` when it does not.
                    let a = self.operand(x, t)?;
                    self.jump_if(a, when == nonzero, to);
                } else if let Some((cmp, x, imm)) = compare_with_constant::<u8>(*op, left, right) {
                    // `x <cmp> small constant` jumps in one instruction.
                    let cmp = if when { cmp } else { cmp.negated() };
                    let ra = self.operand(x, t)?;
                    self.jump(|target| Instruction::JumpCmpImm { cmp, ra, imm, target }, to);
                } else {
                    let a = self.operand(expr, t)?;
                    self.jump_if(a, when, to);
                }
            }
            Typed::Aggregate(kind @ (Aggregate::All | Aggregate::Any), Some(body)) => {
                // The element that decides jumps out of the loop: a false one
                // for all, a true one for any.
                let exits_with = *kind == Aggregate::Any;
                if when == exits_with {
                    self.quantifier(*kind, body, to)?;
                } else {
                    let skip = self.label();
                    self.quantifier(*kind, body, skip)?;
                    self.goto(to);
                    self.place(skip);
                }
            }
            _ => {
                let t = self.alloc()?;
                let a = self.operand(expr, t)?;
                self.jump_if(a, when, to);
            }
        }
        self.next = mark;
        Ok(())
    }

    /// Loop over the others; jump to `exit` at the first element whose body
    /// is false (all) or true (any); fall through when none is.
    fn quantifier(&mut self, kind: Aggregate, body: &Typed, exit: Label) -> Result<(), TelError> {
        let exits_with = kind == Aggregate::Any;
        self.each_other(|gen| gen.branch(body, exits_with, exit))
    }

    /// `body` once per other resource, in order, with the resource's base
    /// address on top of `self.bases`.
    fn each_other(&mut self, body: impl FnOnce(&mut Self) -> Result<(), TelError>) -> Result<(), TelError> {
        let mark = self.next;
        let end = self.label();
        let count = self.value(&Typed::Aggregate(Aggregate::Count, None))?;
        self.jump_if(count, false, end);
        let (limit, base) = (self.alloc()?, self.alloc()?);
        self.out.constant(limit, RESOURCE_SPAN as u64);
        self.emit(Instruction::Bin { op: BinOp::Mul, rd: limit, ra: count, rb: limit });
        self.emit(Instruction::AddImm { rd: limit, ra: limit, imm: OTHERS_BASE });
        self.out.constant(base, OTHERS_BASE as u64);
        let top = self.label();
        self.place(top);
        self.bases.push(base);
        let done = body(self);
        self.bases.pop();
        done?;
        if self.reachable {
            let t = self.alloc()?;
            self.emit(Instruction::AddImm { rd: base, ra: base, imm: RESOURCE_SPAN });
            self.emit(Instruction::Bin { op: BinOp::Lt, rd: t, ra: base, rb: limit });
            self.jump_if(t, true, top);
        }
        self.place(end);
        self.next = mark;
        Ok(())
    }
}

/// A constant that fits an immediate of type `T`.
fn constant<T: TryFrom<u64>>(expr: &Typed) -> Option<T> {
    match expr {
        Typed::Const(v) => T::try_from(*v).ok(),
        _ => None,
    }
}

/// `(cmp, x, n)` when the comparison is `x <cmp> n` for a constant n that
/// fits `T` (a byte: enum codes, small counts; or 32 bits), either side
/// written first.
fn compare_with_constant<'e, T: TryFrom<u64>>(
    op: BinOp,
    left: &'e Typed,
    right: &'e Typed,
) -> Option<(Compare, &'e Typed, T)> {
    let cmp = Compare::of(op)?;
    match (constant(left), constant(right)) {
        (_, Some(n)) => Some((cmp, left, n)),
        (Some(n), None) => Some((cmp.swapped(), right, n)),
        (None, None) => None,
    }
}

/// `(x, true)` when the comparison is "x is not zero", `(x, false)` when it
/// is "x is zero" (unsigned).
fn zero_test<'e>(op: BinOp, left: &'e Typed, right: &'e Typed) -> Option<(&'e Typed, bool)> {
    match (op, left, right) {
        (BinOp::Gt | BinOp::Ne, x, Typed::Const(0)) | (BinOp::Lt | BinOp::Ne, Typed::Const(0), x) => Some((x, true)),
        (BinOp::Eq | BinOp::Le, x, Typed::Const(0)) | (BinOp::Eq | BinOp::Ge, Typed::Const(0), x) => Some((x, false)),
        _ => None,
    }
}
