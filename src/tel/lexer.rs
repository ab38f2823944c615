//! Tokens with positions. Comments run from `#` or `//` to the end of the
//! line. Integers may contain `_` and carry a duration unit (`s`, `m`, `h`,
//! `d`, `w`), which scales them to seconds.

use super::error::{Pos, TelError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Int(u64),
    Str(String),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Dot,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Int(v) => format!("number {v}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Eof => "the end of the program".into(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Dot => ".",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            _ => "",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

struct Cursor<'s> {
    chars: std::iter::Peekable<std::str::Chars<'s>>,
    pos: Pos,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }
}

pub fn lex(source: &str) -> Result<Vec<Token>, TelError> {
    let mut cur = Cursor { chars: source.chars().peekable(), pos: Pos { line: 1, col: 1 } };
    let mut tokens = Vec::new();
    while let Some(c) = cur.peek() {
        let pos = cur.pos;
        if c.is_whitespace() {
            cur.bump();
            continue;
        }
        if c == '#' {
            skip_line(&mut cur);
            continue;
        }
        let tok = match c {
            '0'..='9' => number(&mut cur)?,
            '"' => Tok::Str(string(&mut cur)?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = cur.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    name.push(c);
                    cur.bump();
                }
                Tok::Ident(name)
            }
            _ => {
                cur.bump();
                match c {
                    '/' if cur.peek() == Some('/') => {
                        skip_line(&mut cur);
                        continue;
                    }
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    '.' => Tok::Dot,
                    '+' => Tok::Plus,
                    '-' => Tok::Minus,
                    '*' => Tok::Star,
                    '/' => Tok::Slash,
                    '%' => Tok::Percent,
                    '<' if cur.eat('=') => Tok::Le,
                    '<' => Tok::Lt,
                    '>' if cur.eat('=') => Tok::Ge,
                    '>' => Tok::Gt,
                    '=' if cur.eat('=') => Tok::EqEq,
                    '=' => return Err(TelError::at(pos, "`=` is not an operator: compare with `==`")),
                    '!' if cur.eat('=') => Tok::NotEq,
                    '!' => return Err(TelError::at(pos, "`!` is not an operator: negate with `not`")),
                    '&' | '|' => {
                        let word = if c == '&' { "and" } else { "or" };
                        return Err(TelError::at(pos, format!("unexpected `{c}`: write `{word}`")));
                    }
                    other => return Err(TelError::at(pos, format!("unexpected character {other:?}"))),
                }
            }
        };
        tokens.push(Token { tok, pos });
    }
    tokens.push(Token { tok: Tok::Eof, pos: cur.pos });
    Ok(tokens)
}

fn skip_line(cur: &mut Cursor) {
    while let Some(c) = cur.peek() {
        if c == '\n' {
            break;
        }
        cur.bump();
    }
}

fn number(cur: &mut Cursor) -> Result<Tok, TelError> {
    let start = cur.pos;
    let mut value: u64 = 0;
    while let Some(c) = cur.peek().filter(|c| c.is_ascii_digit() || *c == '_') {
        cur.bump();
        if let Some(d) = c.to_digit(10) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(d as u64))
                .ok_or_else(|| TelError::at(start, "number does not fit in 64 bits (largest 18446744073709551615)"))?;
        }
    }
    let unit_pos = cur.pos;
    let mut unit = String::new();
    while let Some(c) = cur.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
        unit.push(c);
        cur.bump();
    }
    if unit.is_empty() {
        return Ok(Tok::Int(value));
    }
    let scale = match unit.as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(TelError::at(unit_pos, format!("unknown duration unit `{unit}` (use s, m, h, d or w)")));
        }
    };
    value
        .checked_mul(scale)
        .map(Tok::Int)
        .ok_or_else(|| TelError::at(start, "duration does not fit in 64 bits of seconds"))
}

fn string(cur: &mut Cursor) -> Result<String, TelError> {
    let start = cur.pos;
    cur.bump();
    let mut text = String::new();
    loop {
        let pos = cur.pos;
        match cur.bump() {
            None | Some('\n') => return Err(TelError::at(start, "unterminated string: missing closing `\"`")),
            Some('"') => return Ok(text),
            Some('\\') => match cur.bump() {
                Some('"') => text.push('"'),
                Some('\\') => text.push('\\'),
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(other) => {
                    return Err(TelError::at(pos, format!("unknown escape `\\{other}` (use \\\" \\\\ \\n \\t)")))
                }
                None => return Err(TelError::at(start, "unterminated string: missing closing `\"`")),
            },
            Some(c) => text.push(c),
        }
    }
}
