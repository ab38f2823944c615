//! Name resolution and type checking: rules → typed rules the code
//! generator can translate without further checks.

use super::ast::{BinaryOp, Expr, ExprKind, Rule, RuleKind};
use super::error::{Pos, TelError};
use crate::resource::{LifecycleState, OperationKind};
use crate::vm::memory::{ctx_field, field};
use crate::vm::{BinOp, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Int,
    Bool,
    Str,
    Op,
    Role,
    State,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Int => "a number",
            Ty::Bool => "true/false",
            Ty::Str => "a string",
            Ty::Op => "an operation kind",
            Ty::Role => "a role",
            Ty::State => "a lifecycle state",
        }
    }

    fn is_enum(self) -> bool {
        matches!(self, Ty::Op | Ty::Role | Ty::State)
    }

    /// The enum's values by name, with their VM codes.
    fn values(self) -> Vec<(String, u64)> {
        match self {
            Ty::Op => OperationKind::ALL.iter().map(|k| (snake(&format!("{k:?}")), k.code() as u64)).collect(),
            Ty::Role => Role::ALL.iter().map(|r| (snake(&format!("{r:?}")), r.code() as u64)).collect(),
            Ty::State => LifecycleState::ALL.iter().map(|s| (snake(&format!("{s:?}")), s.code() as u64)).collect(),
            _ => Vec::new(),
        }
    }
}

/// `UpdatedBefore` → `updated_before`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Which resource a field is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Subject,
    /// The resource the innermost aggregate is visiting.
    Current,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Count,
    All,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Typed {
    /// Numbers, booleans (0/1) and enum codes.
    Const(u64),
    Str(String),
    /// A u64 (or slice, for string fields) in a resource header.
    Field(Target, u32),
    /// A u64 (or slice) in the context header.
    Context(u32),
    Env(String),
    /// Arithmetic and comparisons on numbers and enum codes.
    Bin(BinOp, Box<Typed>, Box<Typed>),
    StrEq {
        negate: bool,
        left: Box<Typed>,
        right: Box<Typed>,
    },
    And(Box<Typed>, Box<Typed>),
    Or(Box<Typed>, Box<Typed>),
    Not(Box<Typed>),
    /// Over the other resources; `Count` without a body counts them all.
    Aggregate(Aggregate, Option<Box<Typed>>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypedRule {
    Accept(Option<Typed>),
    Reject { reason: String, condition: Option<Typed> },
    Require { condition: Typed, reason: String },
}

const RESOURCE_FIELDS: &[(&str, Ty, u32)] = &[
    ("quantity", Ty::Int, field::QUANTITY),
    ("version", Ty::Int, field::VERSION),
    ("state", Ty::State, field::STATE),
    ("controller", Ty::Str, field::CONTROLLER),
    ("domain", Ty::Str, field::DOMAIN),
    ("fungibility_domain", Ty::Str, field::FUNGIBILITY_DOMAIN),
    ("contents", Ty::Str, field::CONTENTS),
];

const CONTEXT_VALUES: &[(&str, Ty, u32)] = &[
    ("now", Ty::Int, ctx_field::TIMESTAMP),
    ("op", Ty::Op, ctx_field::OPERATION),
    ("role", Ty::Role, ctx_field::ROLE),
    ("others_readable", Ty::Bool, ctx_field::OTHERS_READABLE),
    ("context_domain", Ty::Str, ctx_field::DOMAIN),
];

/// The most expressions one program's rules may check, counting each time
/// `in` checks its left side again for another value: nested `in` lists
/// multiply that count (and the program's size) at every level, so a rule
/// of a few hundred tokens could otherwise take exponential time and memory
/// to compile, and a server compiles inline programs as a batch is submitted.
pub const MAX_CHECKED_EXPRESSIONS: usize = 1 << 18;

pub fn check(rules: &[Rule]) -> Result<Vec<(Pos, TypedRule)>, TelError> {
    let mut checker = Checker { depth: 0, checked: 0 };
    rules.iter().enumerate().map(|(i, rule)| Ok((rule.pos, checker.rule(i + 1, rule)?))).collect()
}

struct Checker {
    /// How many aggregates enclose the expression being checked.
    depth: usize,
    /// Expressions checked so far (bounded by [`MAX_CHECKED_EXPRESSIONS`]).
    checked: usize,
}

impl Checker {
    fn rule(&mut self, number: usize, rule: &Rule) -> Result<TypedRule, TelError> {
        let line = rule.pos.line;
        Ok(match &rule.kind {
            RuleKind::Accept(condition) => TypedRule::Accept(self.condition(condition.as_ref())?),
            RuleKind::Reject(reason, condition) => TypedRule::Reject {
                reason: reason.clone().unwrap_or_else(|| format!("rule {number} (line {line})")),
                condition: self.condition(condition.as_ref())?,
            },
            RuleKind::Require(condition, reason) => TypedRule::Require {
                condition: self.boolean(condition)?,
                reason: reason
                    .clone()
                    .unwrap_or_else(|| format!("requirement of rule {number} (line {line}) does not hold")),
            },
        })
    }

    fn condition(&mut self, condition: Option<&Expr>) -> Result<Option<Typed>, TelError> {
        condition.map(|c| self.boolean(c)).transpose()
    }

    fn boolean(&mut self, expr: &Expr) -> Result<Typed, TelError> {
        let (typed, ty) = self.expr(expr, None)?;
        expect(ty, Ty::Bool, start(expr), "a condition")?;
        Ok(typed)
    }

    fn expr(&mut self, expr: &Expr, expected: Option<Ty>) -> Result<(Typed, Ty), TelError> {
        let pos = expr.pos;
        self.checked += 1;
        if self.checked > MAX_CHECKED_EXPRESSIONS {
            return Err(TelError::at(
                pos,
                format!(
                    "the program expands to more than {MAX_CHECKED_EXPRESSIONS} expressions (each value of an `in` list \
                     repeats its left side, so nested `in` lists multiply): simplify its rules"
                ),
            ));
        }
        Ok(match &expr.kind {
            ExprKind::Int(v) => (Typed::Const(*v), Ty::Int),
            ExprKind::Str(s) => (Typed::Str(s.clone()), Ty::Str),
            ExprKind::Name(name) => self.name(name, pos, expected)?,
            ExprKind::SelfField(name) => {
                let (_, ty, offset) = RESOURCE_FIELDS.iter().find(|(n, ..)| n == name).ok_or_else(|| {
                    TelError::at(
                        pos,
                        format!("`self.{name}`: resources have no field `{name}` (fields: {})", field_names()),
                    )
                })?;
                (Typed::Field(Target::Subject, *offset), *ty)
            }
            ExprKind::Not(inner) => {
                let (typed, ty) = self.expr(inner, Some(Ty::Bool))?;
                expect(ty, Ty::Bool, start(inner), "`not`")?;
                (Typed::Not(Box::new(typed)), Ty::Bool)
            }
            ExprKind::After(time) | ExprKind::Before(time) => {
                let (typed, ty) = self.expr(time, Some(Ty::Int))?;
                expect(ty, Ty::Int, start(time), "a time")?;
                let op = if matches!(expr.kind, ExprKind::After(_)) { BinOp::Ge } else { BinOp::Lt };
                (Typed::Bin(op, Box::new(Typed::Context(ctx_field::TIMESTAMP)), Box::new(typed)), Ty::Bool)
            }
            ExprKind::In(left, items) => {
                let (mut result, ty) = (None, self.expr(left, None)?.1);
                for item in items {
                    let eq = Expr {
                        kind: ExprKind::Binary(BinaryOp::Eq, left.clone(), Box::new(item.clone())),
                        pos: item.pos,
                    };
                    let (typed, _) = self.expr(&eq, Some(ty))?;
                    result = Some(match result {
                        None => typed,
                        Some(prev) => Typed::Or(Box::new(prev), Box::new(typed)),
                    });
                }
                (result.ok_or_else(|| TelError::at(pos, "`in` needs at least one value"))?, Ty::Bool)
            }
            ExprKind::Binary(op, left, right) => self.binary(*op, left, right, pos)?,
            ExprKind::Call(name, args) => self.call(name, args, pos)?,
        })
    }

    fn name(&mut self, name: &str, pos: Pos, expected: Option<Ty>) -> Result<(Typed, Ty), TelError> {
        if let Some((_, ty, offset)) = RESOURCE_FIELDS.iter().find(|(n, ..)| *n == name) {
            let target = if self.depth > 0 { Target::Current } else { Target::Subject };
            return Ok((Typed::Field(target, *offset), *ty));
        }
        if let Some((_, ty, offset)) = CONTEXT_VALUES.iter().find(|(n, ..)| *n == name) {
            return Ok((Typed::Context(*offset), *ty));
        }
        match name {
            "true" => return Ok((Typed::Const(1), Ty::Bool)),
            "false" => return Ok((Typed::Const(0), Ty::Bool)),
            "others" => {
                return Err(TelError::at(pos, "`others` can only be the first argument of count, sum, all or any"));
            }
            _ => {}
        }
        if let Some(ty) = expected.filter(|t| t.is_enum()) {
            if let Some((_, code)) = ty.values().into_iter().find(|(n, _)| n == name) {
                return Ok((Typed::Const(code), ty));
            }
            let names: Vec<String> = ty.values().into_iter().map(|(n, _)| n).collect();
            return Err(TelError::at(
                pos,
                format!("`{name}` is not {}: expected one of {}", ty.name(), names.join(", ")),
            ));
        }
        for ty in [Ty::Op, Ty::Role, Ty::State] {
            if ty.values().iter().any(|(n, _)| n == name) {
                return Err(TelError::at(
                    pos,
                    format!(
                        "`{name}` is {} value: compare it with `op`, `role` or `state` (e.g. `op == transfer`)",
                        ty.name()
                    ),
                ));
            }
        }
        Err(TelError::at(
            pos,
            format!(
                "unknown name `{name}` (fields: {}; context: {})",
                field_names(),
                CONTEXT_VALUES.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, pos: Pos) -> Result<(Typed, Ty), TelError> {
        // An enum value takes its type from the other side, so resolve that first.
        let (l, lt, r, rt) = if is_free_name(left) && !is_free_name(right) {
            let (r, rt) = self.expr(right, None)?;
            let (l, lt) = self.expr(left, Some(rt))?;
            (l, lt, r, rt)
        } else {
            let (l, lt) = self.expr(left, None)?;
            let (r, rt) = self.expr(right, Some(lt))?;
            (l, lt, r, rt)
        };
        let (l, r) = (Box::new(l), Box::new(r));
        let symbol = op.symbol();
        Ok(match op {
            BinaryOp::And | BinaryOp::Or => {
                expect(lt, Ty::Bool, start(left), &format!("`{symbol}`"))?;
                expect(rt, Ty::Bool, start(right), &format!("`{symbol}`"))?;
                let typed = if op == BinaryOp::And { Typed::And(l, r) } else { Typed::Or(l, r) };
                (typed, Ty::Bool)
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                expect(lt, Ty::Int, start(left), &format!("`{symbol}`"))?;
                expect(rt, Ty::Int, start(right), &format!("`{symbol}`"))?;
                let vm_op = match op {
                    BinaryOp::Add => BinOp::Add,
                    BinaryOp::Sub => BinOp::Sub,
                    BinaryOp::Mul => BinOp::Mul,
                    BinaryOp::Div => BinOp::Div,
                    _ => BinOp::Mod,
                };
                if let (Typed::Const(a), Typed::Const(b)) = (&*l, &*r) {
                    // Fold constants at compile time: `1767225600 + 30d` costs nothing at run time.
                    let value = vm_op.apply(*a, *b).ok_or_else(|| {
                        TelError::at(pos, format!("constant `{a} {symbol} {b}` overflows or divides by zero"))
                    })?;
                    return Ok((Typed::Const(value), Ty::Int));
                }
                (Typed::Bin(vm_op, l, r), Ty::Int)
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                expect(lt, Ty::Int, start(left), &format!("`{symbol}`"))?;
                expect(rt, Ty::Int, start(right), &format!("`{symbol}`"))?;
                let vm_op = match op {
                    BinaryOp::Lt => BinOp::Lt,
                    BinaryOp::Le => BinOp::Le,
                    BinaryOp::Gt => BinOp::Gt,
                    _ => BinOp::Ge,
                };
                (Typed::Bin(vm_op, l, r), Ty::Bool)
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if lt != rt {
                    return Err(TelError::at(pos, format!("cannot compare {} with {}", lt.name(), rt.name())));
                }
                let negate = op == BinaryOp::Ne;
                let typed = match lt {
                    Ty::Str => Typed::StrEq { negate, left: l, right: r },
                    _ => Typed::Bin(if negate { BinOp::Ne } else { BinOp::Eq }, l, r),
                };
                (typed, Ty::Bool)
            }
        })
    }

    fn call(&mut self, name: &str, args: &[Expr], pos: Pos) -> Result<(Typed, Ty), TelError> {
        if name == "env" {
            return match args {
                [Expr { kind: ExprKind::Str(key), .. }] => Ok((Typed::Env(key.clone()), Ty::Str)),
                _ => Err(TelError::at(pos, "`env` takes one string literal: the environment key, e.g. env(\"tier\")")),
            };
        }
        let (kind, body_ty, result) = match name {
            "sum" => (Aggregate::Sum, Some(Ty::Int), Ty::Int),
            "count" => (Aggregate::Count, Some(Ty::Bool), Ty::Int),
            "all" => (Aggregate::All, Some(Ty::Bool), Ty::Bool),
            "any" => (Aggregate::Any, Some(Ty::Bool), Ty::Bool),
            _ => {
                return Err(TelError::at(
                    pos,
                    format!("unknown function `{name}` (functions: count, sum, all, any, env)"),
                ));
            }
        };
        let first =
            args.first().ok_or_else(|| TelError::at(pos, format!("`{name}` needs `others` as its first argument")))?;
        if !matches!(&first.kind, ExprKind::Name(n) if n == "others") {
            return Err(TelError::at(start(first), format!("the first argument of `{name}` must be `others`")));
        }
        match (&args[1..], kind) {
            ([], Aggregate::Count) => Ok((Typed::Aggregate(kind, None), result)),
            ([body], _) => {
                self.depth += 1;
                let checked = self.expr(body, body_ty);
                self.depth -= 1;
                let (typed, ty) = checked?;
                if let Some(want) = body_ty {
                    expect(ty, want, start(body), &format!("the body of `{name}`"))?;
                }
                Ok((Typed::Aggregate(kind, Some(Box::new(typed))), result))
            }
            _ => {
                let usage = match kind {
                    Aggregate::Sum => "sum(others, EXPR)",
                    Aggregate::Count => "count(others) or count(others, CONDITION)",
                    Aggregate::All => "all(others, CONDITION)",
                    Aggregate::Any => "any(others, CONDITION)",
                };
                Err(TelError::at(pos, format!("`{name}` takes {usage}")))
            }
        }
    }
}

/// A bare name that is not a field or context value: possibly an enum value.
fn is_free_name(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Name(n) => {
            !RESOURCE_FIELDS.iter().any(|(f, ..)| f == n)
                && !CONTEXT_VALUES.iter().any(|(f, ..)| f == n)
                && !matches!(n.as_str(), "true" | "false" | "others")
        }
        _ => false,
    }
}

/// Where an expression starts in the source (a binary expression's own
/// position is its operator's).
fn start(expr: &Expr) -> Pos {
    match &expr.kind {
        ExprKind::Binary(_, left, _) | ExprKind::In(left, _) => start(left),
        _ => expr.pos,
    }
}

fn field_names() -> String {
    RESOURCE_FIELDS.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
}

fn expect(found: Ty, wanted: Ty, pos: Pos, what: &str) -> Result<(), TelError> {
    if found == wanted {
        return Ok(());
    }
    Err(TelError::at(pos, format!("{what} needs {}, but this is {}", wanted.name(), found.name())))
}
