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

    /// The error with the offending source line and a caret under the
    /// column; a long line is shown only around the column (`…` where cut).
    pub fn render(&self, source: &str) -> String {
        const AROUND: usize = 60;
        let line: Vec<char> = source.lines().nth(self.line.saturating_sub(1)).unwrap_or("").chars().collect();
        let at = self.col.saturating_sub(1).min(line.len());
        let (from, to) = (at.saturating_sub(AROUND), (at + AROUND).min(line.len()));
        let shown: String = line[from..to].iter().collect();
        let (before, after) = (if from > 0 { "…" } else { "" }, if to < line.len() { "…" } else { "" });
        let gutter = self.line.to_string();
        let pad: String = line[from..at].iter().map(|&c| if c == '\t' { '\t' } else { ' ' }).collect();
        let lead = if from > 0 { " " } else { "" };
        format!("{self}\n{gutter} | {before}{shown}{after}\n{} | {lead}{pad}^", " ".repeat(gutter.len()))
    }
}

impl fmt::Display for TelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let source = format!("accept if controller == \"{}\" and bogus;", "a".repeat(100_000));
        let col = source.find("bogus").unwrap() + 1;
        let rendered = TelError::at(Pos { line: 1, col }, "unknown name").render(&source);
        assert!(rendered.len() < 400, "{} bytes", rendered.len());
        let lines: Vec<&str> = rendered.lines().collect();
        let caret = lines[2].chars().count() - 1;
        assert_eq!(lines[1].chars().nth(caret), Some('b'), "the caret is under the column:\n{rendered}");
        // A short line is shown whole.
        let short = TelError::at(Pos { line: 1, col: 3 }, "x").render("ab?cd");
        assert_eq!(short, "1:3: x\n1 | ab?cd\n  |   ^");
    }
}
