//! Content ids: BLAKE3 over a canonical, versioned binary encoding, printed
//! `cid:blake3:<hex>`.

use std::fmt;
use std::str::FromStr;

/// The version byte that starts every canonical encoding. Bump it when an
/// encoding changes so old and new ids can never collide.
pub const ENCODING_VERSION: u8 = 1;

const PREFIX: &str = "cid:blake3:";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContentId(pub [u8; 32]);

/// Byte-lexicographic order (the order of the state tree's buckets), compared
/// as four big-endian words: ids are compared in every bucket search and
/// change sort, and the derived byte-slice comparison went through a
/// `memcmp` call each time (10% of a 10k-transfer batch when the index was a
/// B-tree keyed by id).
impl Ord for ContentId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let words = |id: &ContentId| {
            let b = &id.0;
            std::array::from_fn::<u64, 4, _>(|i| u64::from_be_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes")))
        };
        words(self).cmp(&words(other))
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ContentId {
    pub const fn from_digest(digest: [u8; 32]) -> Self {
        ContentId(digest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Hash `encoding` directly. Only for code outside the VM's execution
    /// path (CLI, tests, setup): the interpreter files requests in the hash pool.
    pub fn of_encoding(encoding: &[u8]) -> Self {
        ContentId(*blake3::hash(encoding).as_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentIdParseError {
    #[error("content id {given:?} does not start with {PREFIX:?}")]
    MissingPrefix { given: String },
    #[error("content id {given:?}: {reason}")]
    BadHex { given: String, reason: String },
}

impl FromStr for ContentId {
    type Err = ContentIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PREFIX).ok_or_else(|| ContentIdParseError::MissingPrefix { given: s.to_string() })?;
        let bytes =
            hex_decode_32(hex).map_err(|reason| ContentIdParseError::BadHex { given: s.to_string(), reason })?;
        Ok(ContentId(bytes))
    }
}

impl serde::Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decode hex of any even length, saying where it went wrong.
pub fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("hex has odd length {}", text.len()));
    }
    let digit = |i: usize, c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("invalid hex character {:?} at position {i}", c as char)),
        }
    };
    let raw = text.as_bytes();
    (0..raw.len() / 2).map(|i| Ok(digit(2 * i, raw[2 * i])? << 4 | digit(2 * i + 1, raw[2 * i + 1])?)).collect()
}

/// Decode exactly 32 bytes of hex.
pub fn hex_decode_32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex_decode(text)?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("expected 32 bytes (64 hex digits), got {} bytes", b.len()))
}

/// Append-only builder for canonical encodings: fixed-width little-endian
/// integers and length-prefixed byte strings, so distinct values never encode
/// alike. It appends to a caller's buffer (a hash pool's pending bytes, so
/// an encoding needs no buffer of its own); [`canonical`] builds one alone.
pub struct CanonicalWriter<'b> {
    buf: &'b mut Vec<u8>,
}

/// The encoding `write` makes after the version byte and `tag`, in a buffer of its own.
pub fn canonical(tag: &str, write: impl FnOnce(&mut CanonicalWriter<'_>)) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    write(&mut CanonicalWriter::append_to(&mut buf, tag));
    buf
}

impl<'b> CanonicalWriter<'b> {
    /// Start an encoding (version byte, then a domain tag naming what is
    /// encoded) at the end of `buf`.
    pub fn append_to(buf: &'b mut Vec<u8>, tag: &str) -> Self {
        let mut w = CanonicalWriter { buf };
        w.u8(ENCODING_VERSION).bytes(tag.as_bytes());
        w
    }

    #[inline]
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    #[inline]
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.fixed(&v.to_le_bytes())
    }

    #[inline]
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// A fixed-size field (digests, keys): its size is known here, so the
    /// copy is a few moves instead of a `memcpy` call.
    #[inline]
    pub fn fixed<const N: usize>(&mut self, v: &[u8; N]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    #[inline]
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_byte_lexicographic() {
        let mut ids: Vec<ContentId> = (0u32..2000).map(|i| ContentId::of_encoding(&i.to_le_bytes())).collect();
        // Ids that differ only late, and only in one byte at each word edge.
        for at in [0, 7, 8, 15, 16, 24, 31] {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bytes = [0x55u8; 32];
                bytes[at] = v;
                ids.push(ContentId(bytes));
            }
        }
        for a in &ids[..200] {
            for b in &ids {
                assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a} vs {b}");
                assert_eq!(a.partial_cmp(b), Some(a.0.cmp(&b.0)));
            }
        }
        for a in &ids[2000..] {
            for b in &ids[2000..] {
                assert_eq!(a.cmp(b), a.0.cmp(&b.0));
            }
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id = ContentId::of_encoding(b"abc");
        let text = id.to_string();
        assert!(text.starts_with("cid:blake3:"));
        assert_eq!(text.parse::<ContentId>().unwrap(), id);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(matches!("blake3:00".parse::<ContentId>(), Err(ContentIdParseError::MissingPrefix { .. })));
        let err = "cid:blake3:zz".parse::<ContentId>().unwrap_err().to_string();
        assert!(err.contains("invalid hex character"), "{err}");
        let err = "cid:blake3:00".parse::<ContentId>().unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes"), "{err}");
    }

    #[test]
    fn canonical_writer_separates_fields() {
        let a = canonical("t", |w| {
            w.str("ab").str("c");
        });
        let b = canonical("t", |w| {
            w.str("a").str("bc");
        });
        assert_ne!(a, b);
        // Appending to a buffer writes the same bytes after what it held.
        let mut buf = vec![7u8];
        CanonicalWriter::append_to(&mut buf, "t").str("ab").str("c");
        assert_eq!(buf[1..], a[..]);
        assert_eq!(&a[..11], &[ENCODING_VERSION, 1, 0, 0, 0, 0, 0, 0, 0, b't', 2]);
    }
}
