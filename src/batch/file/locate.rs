//! Where a value named by a path (`ops[3].resource.quantity`) begins in a
//! batch file's text. serde reports an operation's bad field at the end of
//! the operation, since an operation is read whole before its kind's fields
//! are; the path it names is exact, so the error points at the value itself.

/// One step of a path: an object's key or an array's index.
#[derive(Debug, PartialEq, Eq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// The 1-based line and column (in characters) where the value at `path`
/// begins, or `None` when the path is not one this finds (a malformed path,
/// or a value the text does not hold). `text` must be valid JSON.
pub(super) fn position(text: &str, path: &str) -> Option<(usize, usize)> {
    let steps = steps(path)?;
    let offset = Scanner { text: text.as_bytes(), at: 0 }.find(&steps)?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    Some((line, text[line_start..offset].chars().count() + 1))
}

/// The steps of a path as serde_path_to_error writes it: keys joined by
/// dots, indexes in brackets (`a.b[2].c`); `.` alone is the top.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    if path == "." {
        return Some(steps);
    }
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(open) = rest.strip_prefix('[') {
            let close = open.find(']')?;
            steps.push(Step::Index(open[..close].parse().ok()?));
            rest = &open[close + 1..];
        }
        if !rest.is_empty() || (key.is_empty() && steps.is_empty()) {
            return None;
        }
    }
    Some(steps)
}

/// A forward walk over valid JSON, skipping what the path does not enter.
struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
}

impl<'t> Scanner<'t> {
    /// The byte offset of the value at `steps`, from the value at `self.at`.
    fn find(&mut self, steps: &[Step<'_>]) -> Option<usize> {
        self.blank();
        let Some((step, rest)) = steps.split_first() else {
            return Some(self.at);
        };
        match (self.peek()?, step) {
            (b'{', Step::Key(wanted)) => {
                self.at += 1;
                loop {
                    self.blank();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let key = self.string()?;
                    self.blank();
                    self.expect(b':')?;
                    if key == wanted.as_bytes() {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.blank();
                    if self.peek()? == b',' {
                        self.at += 1;
                    }
                }
            }
            (b'[', Step::Index(wanted)) => {
                self.at += 1;
                for index in 0.. {
                    self.blank();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if index == *wanted {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.blank();
                    if self.peek()? == b',' {
                        self.at += 1;
                    }
                }
                None
            }
            _ => None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string's raw bytes between its quotes (escapes left as written:
    /// batch keys never need them, and a key with one just is not matched).
    fn string(&mut self) -> Option<&'t [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        Some(&self.text[start..self.at - 1])
    }

    fn skip_value(&mut self) -> Option<()> {
        self.blank();
        match self.peek()? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.blank();
                    match self.peek()? {
                        c if c == close => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' | b':' => self.at += 1,
                        b'"' if open == b'{' => drop(self.string()?),
                        _ => self.skip_value()?,
                    }
                }
            }
            _ => {
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"domain\": \"d\",\n  \"ops\": [\n    {\"op\": \"read\", \"id\": \"x\"},\n    {\n      \"op\": \"create\",\n      \"resource\": {\"note\": \"a \\\"q\\\" [}\", \"quantity\": \"lots\"}\n    }\n  ]\n}";

    #[test]
    fn finds_the_value_a_path_names() {
        assert_eq!(position(TEXT, "domain"), Some((2, 13)));
        assert_eq!(position(TEXT, "ops[0]"), Some((4, 5)));
        assert_eq!(position(TEXT, "ops[0].id"), Some((4, 26)));
        // Past a string holding quotes and brackets.
        assert_eq!(position(TEXT, "ops[1].resource.quantity"), Some((7, 54)));
        assert_eq!(position(TEXT, "."), Some((1, 1)));
    }

    #[test]
    fn a_path_the_text_does_not_hold_is_not_found() {
        assert_eq!(position(TEXT, "ops[2]"), None);
        assert_eq!(position(TEXT, "ops[1].resource.nonce"), None);
        assert_eq!(position(TEXT, "domain.x"), None);
        assert_eq!(position(TEXT, "ops[x]"), None);
        assert_eq!(position(TEXT, "ops[1"), None);
        assert_eq!(position(TEXT, ""), None);
    }
}
