//! The syntax tree the parser produces (names not yet resolved).

use super::error::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Int(u64),
    Str(String),
    /// A bare name: a field, a context value, `true`/`false`, or an enum value.
    Name(String),
    /// `self.FIELD`: a field of the subject, also inside aggregates.
    SelfField(String),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `after T` (now >= T) and `before T` (now < T).
    After(Box<Expr>),
    Before(Box<Expr>),
    /// `x in [a, b, …]`.
    In(Box<Expr>, Vec<Expr>),
    /// `name(args…)`; the name's position is the expression's.
    Call(String, Vec<Expr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `accept [if C];`
    Accept(Option<Expr>),
    /// `reject ["reason"] [if C];`
    Reject(Option<String>, Option<Expr>),
    /// `require C [else "reason"];`: reject unless C holds.
    Require(Expr, Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    pub pos: Pos,
}
