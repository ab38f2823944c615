//! The compact forms: a versioned binary encoding and its text form
//! `cvmcap1.<base64url>`, for files and the command line.
//!
//! Binary layout (integers little-endian):
//! ```text
//! version u8 | domain u16 len + UTF-8 | identifier [16] | caveat count u8 |
//! caveats… | tag [32]
//! caveat: kind u8, then
//!   rights / operations: count u8, codes u8…
//!   resources:           count u16, ids [32]…
//!   domains:             count u16, (len u16 + UTF-8)…
//!   expires / max qty:   u64
//! ```
//! Lists must be strictly increasing, so every token has exactly one encoding.

use super::caveat::{kind, operation_from_code, Caveat, JobKind, Right};
use super::token::{CapabilityToken, MAX_CAVEATS, TOKEN_VERSION};
use super::CapabilityError;
use crate::content_id::ContentId;
use crate::resource::DomainId;

/// Starts every token's text form; the digit is the text form's version.
pub const TEXT_PREFIX: &str = "cvmcap1.";

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl CapabilityToken {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.caveats.len() * 16);
        out.push(TOKEN_VERSION);
        put_str(&mut out, self.domain.as_str());
        out.extend_from_slice(&self.identifier);
        out.push(self.caveats.len().min(u8::MAX as usize) as u8);
        for caveat in &self.caveats {
            out.push(caveat.kind_code());
            match caveat {
                Caveat::Rights(rights) => {
                    out.push(rights.len().min(u8::MAX as usize) as u8);
                    out.extend(rights.iter().map(|r| r.code()));
                }
                Caveat::Operations(ops) => {
                    out.push(ops.len().min(u8::MAX as usize) as u8);
                    out.extend(ops.iter().map(|k| k.code()));
                }
                Caveat::Jobs(kinds) => {
                    out.push(kinds.len().min(u8::MAX as usize) as u8);
                    out.extend(kinds.iter().map(|k| k.code()));
                }
                Caveat::Resources(ids) => {
                    out.extend_from_slice(&(ids.len().min(u16::MAX as usize) as u16).to_le_bytes());
                    for id in ids {
                        out.extend_from_slice(id.as_bytes());
                    }
                }
                Caveat::Domains(domains) => {
                    out.extend_from_slice(&(domains.len().min(u16::MAX as usize) as u16).to_le_bytes());
                    for d in domains {
                        put_str(&mut out, d.as_str());
                    }
                }
                Caveat::ExpiresAt(v) | Caveat::MaxQuantity(v) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        out.extend_from_slice(&self.tag);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CapabilityError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8("the version byte")?;
        if version != TOKEN_VERSION {
            return Err(CapabilityError::UnsupportedVersion { found: version, supported: TOKEN_VERSION });
        }
        let domain = r.domain("the domain")?;
        let identifier: [u8; 16] = r.array("the identifier")?;
        let count_at = r.pos;
        let count = r.u8("the caveat count")? as usize;
        if count > MAX_CAVEATS {
            return Err(CapabilityError::Malformed {
                offset: count_at,
                reason: format!("caveat count {count} is over the limit of {MAX_CAVEATS}"),
            });
        }
        let mut caveats = Vec::with_capacity(count);
        for index in 0..count {
            caveats.push(r.caveat(index)?);
        }
        let tag: [u8; 32] = r.array("the tag")?;
        if r.pos != bytes.len() {
            return Err(CapabilityError::TrailingBytes { offset: r.pos, count: bytes.len() - r.pos });
        }
        Ok(CapabilityToken { domain, identifier, caveats, tag })
    }

    /// `cvmcap1.` followed by the base64url (no padding) of [`Self::to_bytes`].
    pub fn to_text(&self) -> String {
        let mut text = String::from(TEXT_PREFIX);
        base64url_encode(&self.to_bytes(), &mut text);
        text
    }

    /// Parse the text form; surrounding whitespace is ignored. Each way the
    /// text can be wrong has its own error naming the position.
    pub fn from_text(text: &str) -> Result<Self, CapabilityError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CapabilityError::EmptyText);
        }
        let payload = text.strip_prefix(TEXT_PREFIX).ok_or_else(|| CapabilityError::WrongPrefix {
            expected: TEXT_PREFIX,
            found: text.chars().take(TEXT_PREFIX.len()).collect(),
        })?;
        let bytes = base64url_decode(payload, TEXT_PREFIX.len())?;
        // Shorter than the smallest token (version, a one-byte domain, the
        // identifier, no caveats, the tag): a fragment, not a token of
        // another version.
        const SMALLEST: usize = 1 + 2 + 1 + 16 + 1 + 32;
        if bytes.len() < SMALLEST {
            return Err(CapabilityError::TruncatedText {
                reason: format!(
                    "it decodes to {} bytes and the smallest token is {SMALLEST}: is the text complete?",
                    bytes.len()
                ),
            });
        }
        CapabilityToken::from_bytes(&bytes)
    }
}

impl std::str::FromStr for CapabilityToken {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CapabilityToken::from_text(s)
    }
}

/// In JSON (batch files, API requests) a token is its text form.
impl serde::Serialize for CapabilityToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> serde::Deserialize<'de> for CapabilityToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        CapabilityToken::from_text(&text).map_err(serde::de::Error::custom)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], CapabilityError> {
        let available = self.bytes.len() - self.pos;
        if available < n {
            return Err(CapabilityError::Truncated { what: what.to_string(), offset: self.pos, needed: n, available });
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CapabilityError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, CapabilityError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, CapabilityError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CapabilityError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn domain(&mut self, what: &str) -> Result<DomainId, CapabilityError> {
        let len = self.u16(&format!("the length of {what}"))? as usize;
        let at = self.pos;
        let raw = self.take(len, what)?;
        let name = std::str::from_utf8(raw)
            .map_err(|e| CapabilityError::Malformed { offset: at, reason: format!("{what} is not UTF-8: {e}") })?;
        DomainId::parse(name)
            .map_err(|reason| CapabilityError::Malformed { offset: at, reason: format!("{what}: {reason}") })
    }

    fn caveat(&mut self, index: usize) -> Result<Caveat, CapabilityError> {
        let at = self.pos;
        let what = |field: &str| format!("caveat {index}'s {field}");
        let code = self.u8(&what("kind"))?;
        let caveat = match code {
            kind::RIGHTS => {
                let n = self.u8(&what("right count"))? as usize;
                let mut rights = Vec::with_capacity(n);
                for _ in 0..n {
                    let code_at = self.pos;
                    let c = self.u8(&what("rights"))?;
                    rights.push(Right::from_code(c).ok_or_else(|| CapabilityError::Malformed {
                        offset: code_at,
                        reason: format!("caveat {index} names unknown right code {c}"),
                    })?);
                }
                Caveat::Rights(rights)
            }
            kind::OPERATIONS => {
                let n = self.u8(&what("operation count"))? as usize;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    let code_at = self.pos;
                    let c = self.u8(&what("operation kinds"))?;
                    ops.push(operation_from_code(c).ok_or_else(|| CapabilityError::Malformed {
                        offset: code_at,
                        reason: format!("caveat {index} names unknown operation kind code {c}"),
                    })?);
                }
                Caveat::Operations(ops)
            }
            kind::JOBS => {
                let n = self.u8(&what("job kind count"))? as usize;
                let mut kinds = Vec::with_capacity(n);
                for _ in 0..n {
                    let code_at = self.pos;
                    let c = self.u8(&what("job kinds"))?;
                    kinds.push(JobKind::from_code(c).ok_or_else(|| CapabilityError::Malformed {
                        offset: code_at,
                        reason: format!("caveat {index} names unknown job kind code {c}"),
                    })?);
                }
                Caveat::Jobs(kinds)
            }
            kind::RESOURCES => {
                let n = self.u16(&what("resource count"))? as usize;
                let mut ids = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    ids.push(ContentId(self.array(&what("resource ids"))?));
                }
                Caveat::Resources(ids)
            }
            kind::DOMAINS => {
                let n = self.u16(&what("domain count"))? as usize;
                let mut domains = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    domains.push(self.domain(&what("domain"))?);
                }
                Caveat::Domains(domains)
            }
            kind::EXPIRES_AT => Caveat::ExpiresAt(self.u64(&what("expiry"))?),
            kind::MAX_QUANTITY => Caveat::MaxQuantity(self.u64(&what("max quantity"))?),
            other => {
                return Err(CapabilityError::Malformed { offset: at, reason: format!("unknown caveat kind {other}") })
            }
        };
        if caveat.clone().normalized() != caveat {
            return Err(CapabilityError::Malformed {
                offset: at,
                reason: format!("caveat {index} ({caveat}) lists values out of order or twice"),
            });
        }
        Ok(caveat)
    }
}

fn base64url_encode(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(BASE64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
}

/// Decode unpadded base64url; `offset` is where `text` starts in the full
/// token text, so positions in errors point into what the user typed.
fn base64url_decode(text: &str, offset: usize) -> Result<Vec<u8>, CapabilityError> {
    let mut values = Vec::with_capacity(text.len());
    for (i, ch) in text.char_indices() {
        let value = match ch {
            'A'..='Z' => ch as u8 - b'A',
            'a'..='z' => ch as u8 - b'a' + 26,
            '0'..='9' => ch as u8 - b'0' + 52,
            '-' => 62,
            '_' => 63,
            _ => return Err(CapabilityError::BadCharacter { ch, position: offset + i }),
        };
        values.push(value as u32);
    }
    if values.len() % 4 == 1 {
        return Err(CapabilityError::TruncatedText {
            reason: format!(
                "{} base64url characters cannot encode whole bytes (a character is missing or extra at the end)",
                values.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(values.len() * 3 / 4);
    for chunk in values.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, v)| acc | v << (18 - 6 * i));
        let produced = chunk.len() - 1;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits below the last whole byte must be zero, or two texts would decode alike.
        let unused = n & ((1u32 << (8 * (3 - produced))) - 1);
        if unused != 0 {
            return Err(CapabilityError::NonCanonicalText { position: offset + text.len() - 1 });
        }
        out.extend_from_slice(&bytes[..produced]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut s = String::new();
        base64url_encode(bytes, &mut s);
        s
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let vectors: [(&[u8], &str); 8] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "-_-_"),
        ];
        for (bytes, text) in vectors {
            assert_eq!(encode(bytes), text);
            assert_eq!(base64url_decode(text, 0).unwrap(), bytes);
        }
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(&encode(&bytes), 0).unwrap(), bytes, "length {len}");
        }
    }

    #[test]
    fn base64url_rejects_bad_input_precisely() {
        assert!(matches!(base64url_decode("Zm9v+", 8), Err(CapabilityError::BadCharacter { ch: '+', position: 12 })));
        assert!(matches!(base64url_decode("Zm9vY", 0), Err(CapabilityError::TruncatedText { .. })));
        // "Zh" decodes like "Zg" but with a stray low bit.
        assert!(matches!(base64url_decode("Zh", 8), Err(CapabilityError::NonCanonicalText { position: 9 })));
    }
}
