//! TEL 2's first pass: constant folding over the typed rules, and the rules
//! no operation can reach dropped.
//!
//! Folding never removes an evaluation that could trap: `x and false` keeps
//! `x`. Arithmetic is not folded here: the checker already turns a constant
//! operation that overflows or divides by zero into a compile error.

use super::check::{Typed, TypedRule};
use super::error::Pos;

/// A rule that survived folding, with the number its rejection code keeps.
pub struct FoldedRule {
    pub pos: Pos,
    pub number: u32,
    pub rule: TypedRule,
}

pub struct Folded {
    pub rules: Vec<FoldedRule>,
    /// Whether an operation can get past the last rule (false when a rule
    /// decides unconditionally).
    pub falls_through: bool,
}

pub fn rules(rules: &[(Pos, TypedRule)]) -> Folded {
    let mut kept = Vec::new();
    for (index, (pos, rule)) in rules.iter().enumerate() {
        let Some(rule) = fold_rule(rule) else { continue };
        let decides = matches!(rule, TypedRule::Accept(None) | TypedRule::Reject { condition: None, .. });
        kept.push(FoldedRule { pos: *pos, number: index as u32 + 1, rule });
        if decides {
            // Every later rule is dead code.
            return Folded { rules: kept, falls_through: false };
        }
    }
    Folded { rules: kept, falls_through: true }
}

/// The folded rule, or `None` when its condition can never hold.
fn fold_rule(rule: &TypedRule) -> Option<TypedRule> {
    Some(match rule {
        TypedRule::Accept(condition) => TypedRule::Accept(fold_condition(condition.as_ref())?),
        TypedRule::Reject { reason, condition } => {
            TypedRule::Reject { reason: reason.clone(), condition: fold_condition(condition.as_ref())? }
        }
        TypedRule::Require { condition, reason } => match expr(condition) {
            Typed::Const(0) => TypedRule::Reject { reason: reason.clone(), condition: None },
            Typed::Const(_) => return None,
            condition => TypedRule::Require { condition, reason: reason.clone() },
        },
    })
}

/// `Some(None)`: always holds; `None`: never holds.
fn fold_condition(condition: Option<&Typed>) -> Option<Option<Typed>> {
    match condition.map(expr) {
        None => Some(None),
        Some(Typed::Const(0)) => None,
        Some(Typed::Const(_)) => Some(None),
        Some(folded) => Some(Some(folded)),
    }
}

/// `expr` with every constant subexpression folded.
pub fn expr(expr: &Typed) -> Typed {
    let boxed = |e: &Typed| Box::new(self::expr(e));
    match expr {
        Typed::Bin(op, left, right) => {
            let (left, right) = (self::expr(left), self::expr(right));
            let folded = match (&left, &right) {
                (Typed::Const(a), Typed::Const(b)) => op.apply(*a, *b),
                _ => None,
            };
            match folded {
                Some(value) => Typed::Const(value),
                None => Typed::Bin(*op, Box::new(left), Box::new(right)),
            }
        }
        Typed::StrEq { negate, left, right } => match (self::expr(left), self::expr(right)) {
            (Typed::Str(a), Typed::Str(b)) => Typed::Const(((a == b) != *negate) as u64),
            (left, right) => Typed::StrEq { negate: *negate, left: Box::new(left), right: Box::new(right) },
        },
        Typed::And(left, right) => match (self::expr(left), self::expr(right)) {
            (Typed::Const(0), _) => Typed::Const(0),
            (Typed::Const(_), right) => truth(right),
            (left, Typed::Const(b)) if b != 0 => truth(left),
            (left, right) => Typed::And(Box::new(left), Box::new(right)),
        },
        Typed::Or(left, right) => match (self::expr(left), self::expr(right)) {
            (Typed::Const(a), _) if a != 0 => Typed::Const(1),
            (Typed::Const(_), right) => truth(right),
            (left, Typed::Const(0)) => truth(left),
            (left, right) => Typed::Or(Box::new(left), Box::new(right)),
        },
        Typed::Not(inner) => match self::expr(inner) {
            Typed::Const(a) => Typed::Const((a == 0) as u64),
            inner => Typed::Not(Box::new(inner)),
        },
        Typed::Aggregate(kind, body) => Typed::Aggregate(*kind, body.as_deref().map(boxed)),
        Typed::Const(_) | Typed::Str(_) | Typed::Field(..) | Typed::Context(_) | Typed::Env(_) => expr.clone(),
    }
}

/// A boolean operand standing alone: `and`/`or` yield 0 or 1, and so does
/// every boolean TEL has (comparisons, `not`, `all`, `any`, `true`,
/// `others_readable`), so it stands for itself; a constant becomes 0 or 1.
fn truth(expr: Typed) -> Typed {
    match expr {
        Typed::Const(a) => Typed::Const((a != 0) as u64),
        other => other,
    }
}
