//! Capability tokens: unforgeable, offline-attenuable chains of keyed-BLAKE3
//! MACs over caveats (macaroon style).

mod token;

pub use token::{CapabilityToken, Caveat, Right};
