//! Recursive-descent parser: tokens → rules.
//!
//! ```text
//! program    := ["tel" INT ";"] rule*
//! rule       := "accept" ["if" expr] ";"
//!             | "reject" [STRING] ["if" expr] ";"
//!             | "require" expr ["else" STRING] ";"
//! expr       := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | compare
//! compare    := "after" sum | "before" sum
//!             | sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]
//!             | sum "in" "[" expr ("," expr)* "]"
//! sum        := product (("+" | "-") product)*
//! product    := atom (("*" | "/" | "%") atom)*
//! atom       := INT | STRING | NAME | "self" "." NAME | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"
//! ```

use super::ast::{BinaryOp, Expr, ExprKind, Rule, RuleKind};
use super::error::{Pos, TelError};
use super::lexer::{Tok, Token};

/// The most tokens one rule may have.
pub const MAX_RULE_TOKENS: usize = 1000;

/// Words that cannot be used as names.
const KEYWORDS: &[&str] =
    &["accept", "reject", "require", "if", "else", "and", "or", "not", "in", "after", "before", "self"];

/// A parsed file: the version its `tel N;` line asks for, and its rules.
pub struct Parsed {
    pub version: Option<(Pos, u64)>,
    pub rules: Vec<Rule>,
}

pub fn parse(tokens: &[Token]) -> Result<Parsed, TelError> {
    let mut parser = Parser { tokens, at: 0 };
    let version = parser.version()?;
    let mut rules = Vec::new();
    while parser.peek().tok != Tok::Eof {
        if parser.is_word("tel") {
            return Err(TelError::at(parser.peek().pos, "`tel N;` may only be the first line of a file"));
        }
        rules.push(parser.rule()?);
    }
    Ok(Parsed { version, rules })
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &'t Token {
        // The lexer always ends with Eof, and `bump` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> &'t Token {
        let token = self.peek();
        if token.tok != Tok::Eof {
            self.at += 1;
        }
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(name) if name == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.bump();
        }
        found
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<Pos, TelError> {
        let token = self.peek();
        if token.tok == tok {
            self.bump();
            return Ok(token.pos);
        }
        let wanted = tok.describe();
        Err(TelError::at(token.pos, format!("expected {wanted} {context}, found {}", token.tok.describe())))
    }

    /// The leading `tel N;`, if there is one.
    fn version(&mut self) -> Result<Option<(Pos, u64)>, TelError> {
        if !self.is_word("tel") {
            return Ok(None);
        }
        self.bump();
        let pos = self.peek().pos;
        let version = match self.bump().tok {
            Tok::Int(n) => n,
            ref other => {
                let at = self.tokens[self.at.saturating_sub(1)].pos;
                return Err(TelError::at(
                    at,
                    format!("expected a version number after `tel`, found {}", other.describe()),
                ));
            }
        };
        self.expect(Tok::Semi, "after the version")?;
        Ok(Some((pos, version)))
    }

    fn rule(&mut self) -> Result<Rule, TelError> {
        let start = self.peek();
        let pos = start.pos;
        // Bounding a rule's length bounds the nesting the recursive parser,
        // checker and code generator see, so no input can exhaust the stack.
        let length = self.tokens[self.at..].iter().take_while(|t| !matches!(t.tok, Tok::Semi | Tok::Eof)).count();
        if length > MAX_RULE_TOKENS {
            return Err(TelError::at(
                pos,
                format!("this rule has {length} tokens, more than the limit of {MAX_RULE_TOKENS}: split it into several rules"),
            ));
        }
        let kind = match &start.tok {
            Tok::Ident(word) if word == "accept" => {
                self.bump();
                RuleKind::Accept(self.condition()?)
            }
            Tok::Ident(word) if word == "reject" => {
                self.bump();
                let reason = match &self.peek().tok {
                    Tok::Str(text) => {
                        self.bump();
                        Some(text.clone())
                    }
                    _ => None,
                };
                RuleKind::Reject(reason, self.condition()?)
            }
            Tok::Ident(word) if word == "require" => {
                self.bump();
                let condition = self.expr()?;
                let reason = if self.eat_word("else") {
                    match &self.bump().tok {
                        Tok::Str(text) => Some(text.clone()),
                        other => {
                            let at = self.tokens[self.at.saturating_sub(1)].pos;
                            return Err(TelError::at(
                                at,
                                format!("expected a reason string after `else`, found {}", other.describe()),
                            ));
                        }
                    }
                } else {
                    None
                };
                RuleKind::Require(condition, reason)
            }
            other => {
                return Err(TelError::at(
                    pos,
                    format!("expected a rule (`accept`, `reject` or `require`), found {}", other.describe()),
                ))
            }
        };
        self.expect(Tok::Semi, "to end the rule")?;
        Ok(Rule { kind, pos })
    }

    fn condition(&mut self) -> Result<Option<Expr>, TelError> {
        if self.eat_word("if") {
            Ok(Some(self.expr()?))
        } else {
            Ok(None)
        }
    }

    fn expr(&mut self) -> Result<Expr, TelError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            let pos = self.bump().pos;
            let right = self.and()?;
            left = binary(BinaryOp::Or, left, right, pos);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, TelError> {
        let mut left = self.not()?;
        while self.is_word("and") {
            let pos = self.bump().pos;
            let right = self.not()?;
            left = binary(BinaryOp::And, left, right, pos);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, TelError> {
        if self.is_word("not") {
            let pos = self.bump().pos;
            let inner = self.not()?;
            return Ok(Expr { kind: ExprKind::Not(Box::new(inner)), pos });
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, TelError> {
        for (word, after) in [("after", true), ("before", false)] {
            if self.is_word(word) {
                let pos = self.bump().pos;
                let time = Box::new(self.sum()?);
                let kind = if after { ExprKind::After(time) } else { ExprKind::Before(time) };
                return Ok(Expr { kind, pos });
            }
        }
        let left = self.sum()?;
        if self.is_word("in") {
            let pos = self.bump().pos;
            self.expect(Tok::LBracket, "after `in`")?;
            let mut items = vec![self.expr()?];
            while self.peek().tok == Tok::Comma {
                self.bump();
                items.push(self.expr()?);
            }
            self.expect(Tok::RBracket, "to close the list")?;
            return Ok(Expr { kind: ExprKind::In(Box::new(left), items), pos });
        }
        let Some(op) = comparison(&self.peek().tok) else { return Ok(left) };
        let pos = self.bump().pos;
        let right = self.sum()?;
        if comparison(&self.peek().tok).is_some() {
            return Err(TelError::at(self.peek().pos, "comparisons cannot be chained: join them with `and`"));
        }
        Ok(binary(op, left, right, pos))
    }

    fn sum(&mut self) -> Result<Expr, TelError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinaryOp::Add,
                Tok::Minus => BinaryOp::Sub,
                _ => return Ok(left),
            };
            let pos = self.bump().pos;
            let right = self.product()?;
            left = binary(op, left, right, pos);
        }
    }

    fn product(&mut self) -> Result<Expr, TelError> {
        let mut left = self.atom()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinaryOp::Mul,
                Tok::Slash => BinaryOp::Div,
                Tok::Percent => BinaryOp::Mod,
                _ => return Ok(left),
            };
            let pos = self.bump().pos;
            let right = self.atom()?;
            left = binary(op, left, right, pos);
        }
    }

    fn atom(&mut self) -> Result<Expr, TelError> {
        let token = self.bump();
        let pos = token.pos;
        let kind = match &token.tok {
            Tok::Int(v) => ExprKind::Int(*v),
            Tok::Str(s) => ExprKind::Str(s.clone()),
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(Tok::RParen, "to close `(`")?;
                return Ok(inner);
            }
            Tok::Ident(word) if word == "self" => {
                self.expect(Tok::Dot, "after `self`")?;
                let field = self.bump();
                match &field.tok {
                    Tok::Ident(name) => ExprKind::SelfField(name.clone()),
                    other => {
                        return Err(TelError::at(
                            field.pos,
                            format!("expected a field name after `self.`, found {}", other.describe()),
                        ))
                    }
                }
            }
            Tok::Ident(word) if KEYWORDS.contains(&word.as_str()) => {
                return Err(TelError::at(pos, format!("expected a value, found the keyword `{word}`")));
            }
            Tok::Ident(name) if self.peek().tok == Tok::LParen => {
                self.bump();
                let mut args = Vec::new();
                if self.peek().tok != Tok::RParen {
                    args.push(self.expr()?);
                    while self.peek().tok == Tok::Comma {
                        self.bump();
                        args.push(self.expr()?);
                    }
                }
                self.expect(Tok::RParen, &format!("to close the arguments of `{name}`"))?;
                ExprKind::Call(name.clone(), args)
            }
            Tok::Ident(name) => ExprKind::Name(name.clone()),
            other => return Err(TelError::at(pos, format!("expected a value, found {}", other.describe()))),
        };
        Ok(Expr { kind, pos })
    }
}

fn comparison(tok: &Tok) -> Option<BinaryOp> {
    Some(match tok {
        Tok::EqEq => BinaryOp::Eq,
        Tok::NotEq => BinaryOp::Ne,
        Tok::Lt => BinaryOp::Lt,
        Tok::Le => BinaryOp::Le,
        Tok::Gt => BinaryOp::Gt,
        Tok::Ge => BinaryOp::Ge,
        _ => return None,
    })
}

fn binary(op: BinaryOp, left: Expr, right: Expr, pos: Pos) -> Expr {
    Expr { kind: ExprKind::Binary(op, Box::new(left), Box::new(right)), pos }
}
