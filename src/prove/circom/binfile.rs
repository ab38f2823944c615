//! The container iden3's tools share for `.zkey`, `.wtns` and `.r1cs`: a
//! 4-byte magic, a u32 version and a u32 section count, then each section as
//! a u32 type, a u64 byte length and its bytes (all little-endian). Every
//! read here is bounds-checked and an error names the file, the section and
//! the byte offset in the file.

use super::CircomError;

/// One section: its type and where its bytes lie in the file.
#[derive(Clone, Copy, Debug)]
struct Section {
    kind: u32,
    start: usize,
    len: usize,
}

/// A parsed container over the file's bytes (often a memory map).
pub struct BinFile<'a> {
    pub file: &'a str,
    bytes: &'a [u8],
    sections: Vec<Section>,
}

impl<'a> BinFile<'a> {
    /// The sections of `bytes`, checked to lie within it; `magic` and
    /// `versions` are what the format allows.
    pub fn parse(file: &'a str, bytes: &'a [u8], magic: &[u8; 4], versions: &[u32]) -> Result<Self, CircomError> {
        let mut at = Cursor { file, section: "file header", bytes, pos: 0 };
        let found = at.take(4)?;
        if found != magic {
            return Err(at.error_at(
                0,
                format!(
                    "not a .{} file: it starts with {:?}, not {:?}",
                    String::from_utf8_lossy(magic),
                    String::from_utf8_lossy(found),
                    String::from_utf8_lossy(magic)
                ),
            ));
        }
        let version = at.u32()?;
        if !versions.contains(&version) {
            return Err(at.error_at(4, format!("version {version} is not supported (supported: {versions:?})")));
        }
        let count = at.u32()?;
        let mut sections = Vec::new();
        for index in 0..count {
            let header_at = at.pos;
            at.section = "section header";
            let kind = at.u32()?;
            let len = at.u64()?;
            let start = at.pos;
            let end =
                usize::try_from(len).ok().and_then(|len| start.checked_add(len)).filter(|&end| end <= bytes.len());
            let Some(end) = end else {
                return Err(at.error_at(
                    header_at,
                    format!(
                        "section {index} (type {kind}) claims {len} bytes at offset {start}, but the file ends at {} (truncated?)",
                        bytes.len()
                    ),
                ));
            };
            sections.push(Section { kind, start, len: end - start });
            at.pos = end;
        }
        Ok(BinFile { file, bytes, sections })
    }

    /// The one section of type `kind`, to read with a cursor.
    pub fn section(&self, kind: u32, name: &'static str) -> Result<Cursor<'a>, CircomError> {
        let mut found = self.sections.iter().filter(|s| s.kind == kind);
        let Some(section) = found.next() else {
            return Err(CircomError::Malformed {
                file: self.file.into(),
                section: name.into(),
                offset: self.bytes.len(),
                reason: format!("section {kind} ({name}) is missing"),
            });
        };
        if let Some(again) = found.next() {
            return Err(CircomError::Malformed {
                file: self.file.into(),
                section: name.into(),
                offset: again.start,
                reason: format!("section {kind} ({name}) appears twice"),
            });
        }
        Ok(Cursor {
            file: self.file,
            section: name,
            bytes: &self.bytes[..section.start + section.len],
            pos: section.start,
        })
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A reading position in one section; reads past its end are errors.
#[derive(Clone)]
pub struct Cursor<'a> {
    pub file: &'a str,
    pub section: &'static str,
    /// The file's bytes up to the section's end.
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The offset in the file of the next byte read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// A second cursor on the same section, at file offset `offset`
    /// (one this cursor has passed: the sections' parallel decoders).
    pub fn at(&self, offset: usize) -> Cursor<'a> {
        Cursor { pos: offset.min(self.bytes.len()), ..self.clone() }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CircomError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(format!(
                "needs {n} more bytes at offset {}, but the section ends at {} (truncated?)",
                self.pos,
                self.bytes.len()
            )));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The rest of the section, which must be exactly `count` items of
    /// `size` bytes (`what`, for the error). The product is checked: a
    /// header's counts could make it wrap where usize is 32 bits.
    pub fn take_items(&mut self, count: usize, size: usize, what: &str) -> Result<&'a [u8], CircomError> {
        let Some(len) = count.checked_mul(size).filter(|&n| n == self.remaining()) else {
            return Err(self.error(format!(
                "{} bytes, but {count} {what} of {size} bytes are {}",
                self.remaining(),
                count as u128 * size as u128
            )));
        };
        self.take(len)
    }

    pub fn u32(&mut self) -> Result<u32, CircomError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, CircomError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// An error at the cursor.
    pub fn error(&self, reason: String) -> CircomError {
        self.error_at(self.pos, reason)
    }

    pub fn error_at(&self, offset: usize, reason: String) -> CircomError {
        CircomError::Malformed { file: self.file.into(), section: self.section.into(), offset, reason }
    }

    /// The section must end here.
    pub fn end(&self) -> Result<(), CircomError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} bytes left over at the section's end"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(sections: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = b"test".to_vec();
        out.extend(1u32.to_le_bytes());
        out.extend((sections.len() as u32).to_le_bytes());
        for (kind, body) in sections {
            out.extend(kind.to_le_bytes());
            out.extend((body.len() as u64).to_le_bytes());
            out.extend(*body);
        }
        out
    }

    #[test]
    fn sections_are_found_by_type_and_read_within_bounds() {
        let bytes = container(&[(2, &[7, 0, 0, 0]), (1, &[1, 2])]);
        let file = BinFile::parse("x.test", &bytes, b"test", &[1]).unwrap();
        let mut two = file.section(2, "two").unwrap();
        assert_eq!(two.u32().unwrap(), 7);
        two.end().unwrap();
        let err = two.u32().unwrap_err().to_string();
        assert!(err.contains("x.test") && err.contains("section two") && err.contains("truncated"), "{err}");
        let err = file.section(3, "three").err().unwrap().to_string();
        assert!(err.contains("section 3 (three) is missing"), "{err}");
    }

    #[test]
    fn a_wrong_magic_version_or_truncated_section_is_named() {
        let bytes = container(&[(1, &[1, 2, 3])]);
        let err = BinFile::parse("a.zkey", &bytes, b"zkey", &[1]).err().unwrap().to_string();
        assert!(err.contains("not a .zkey file"), "{err}");
        let err = BinFile::parse("a.test", &bytes, b"test", &[2]).err().unwrap().to_string();
        assert!(err.contains("version 1 is not supported"), "{err}");
        let cut = &bytes[..bytes.len() - 1];
        let err = BinFile::parse("a.test", cut, b"test", &[1]).err().unwrap().to_string();
        assert!(err.contains("claims 3 bytes at offset 24") && err.contains("offset 12"), "{err}");
        let twice = container(&[(1, &[]), (1, &[])]);
        let file = BinFile::parse("a.test", &twice, b"test", &[1]).unwrap();
        assert!(file.section(1, "one").err().unwrap().to_string().contains("appears twice"));
    }
}
