//! Capability tokens: unforgeable, offline-attenuable chains of keyed-BLAKE3
//! MACs over caveats (macaroon style).
//!
//! - [`CapabilityToken::mint`] starts a chain from a domain's [`RootKey`];
//!   the root token grants everything in that domain.
//! - [`CapabilityToken::attenuate`] appends a [`Caveat`]; it needs no key.
//!   A token grants the intersection of its caveats ([`Permissions`]), and a
//!   caveat claiming more than the token already grants is refused, both when
//!   attenuating and when verifying.
//! - The [`Right::Delegate`] right is what allows attenuation: a token
//!   without it is final (attenuation refused; a chain with a caveat after the
//!   point where Delegate was dropped fails verification).
//! - `context::authorize` checks one access of a batch against its context.

mod caveat;
mod encoding;
mod error;
mod keys;
mod permissions;
mod token;

pub(crate) use caveat::operation_name;
pub use caveat::{Caveat, JobKind, Right};
pub use encoding::TEXT_PREFIX;
pub use error::CapabilityError;
pub use keys::{KeyRing, RootKey};
pub use permissions::Permissions;
pub use token::{CapabilityToken, MAX_CAVEATS, TOKEN_VERSION};
