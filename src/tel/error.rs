//! TEL errors: a position and a message.

use std::fmt;

/// A line:column position, both counted from 1 (columns in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A lexing, parsing, type or compile error, printed `LINE:COL: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TelError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl TelError {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        TelError { line: pos.line, col: pos.col, message: message.into() }
    }

    /// The error with the offending source line and a caret under the column.
    pub fn render(&self, source: &str) -> String {
        let line = source.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let gutter = self.line.to_string();
        let pad: String =
            line.chars().take(self.col.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        format!("{self}\n{gutter} | {line}\n{} | {pad}^", " ".repeat(gutter.len()))
    }
}

impl fmt::Display for TelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}
