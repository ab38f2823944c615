//! Everything that can go wrong with a token, its text form or a key ring.

use std::path::PathBuf;

/// Why a token, its text form or a key ring was refused.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    // --- the MAC chain and attenuation ---
    /// The recomputed MAC differs from the token's tag.
    #[error(
        "token tag does not match its caveat chain under the root key of domain {domain}: \
         the token is forged, was tampered with, was truncated, or belongs to another key"
    )]
    TagMismatch { domain: String },

    /// A caveat claims more than the caveats before it already granted.
    #[error("caveat {index} ({caveat}) would widen the token: {reason}")]
    Widening { index: usize, caveat: String, reason: String },

    /// A caveat was appended to a token whose rights no longer include Delegate.
    #[error("caveat {index} ({caveat}) was appended to a token without the delegate right; such a token is final")]
    NotDelegatable { index: usize, caveat: String },

    /// A caveat that cannot be represented (empty domain name, list too long).
    #[error("invalid caveat ({caveat}): {reason}")]
    InvalidCaveat { caveat: String, reason: String },

    #[error("token has {count} caveats, more than the limit of {max}")]
    TooManyCaveats { count: usize, max: usize },

    // --- the text and binary forms ---
    #[error("token text is empty")]
    EmptyText,

    #[error("token text must start with {expected:?}, found {found:?}")]
    WrongPrefix { expected: &'static str, found: String },

    #[error("token text has invalid character {ch:?} at position {position} (base64url expected: A-Z a-z 0-9 - _)")]
    BadCharacter { ch: char, position: usize },

    #[error("token text is not canonical: the last character, at position {position}, has unused low bits set")]
    NonCanonicalText { position: usize },

    #[error("token text is truncated: {reason}")]
    TruncatedText { reason: String },

    #[error("token encoding is truncated at byte {offset} while reading {what}: needed {needed} more bytes, {available} left")]
    Truncated { what: String, offset: usize, needed: usize, available: usize },

    #[error("token encoding version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },

    #[error("token encoding has {count} trailing bytes after the tag, starting at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },

    #[error("token encoding is invalid at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },

    // --- keys ---
    #[error("root key: {reason}")]
    BadKey { reason: String },

    #[error("key ring {path}: {reason}")]
    KeyRingFormat { path: PathBuf, reason: String },

    #[error("key ring {path}: {action}: {source}")]
    KeyRingIo {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}
