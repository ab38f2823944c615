//! The token's data. Minting, attenuation, verification and the text form
//! live beside it.

use serde::{Deserialize, Serialize};

use crate::context::{DomainId, Timestamp};
use crate::resource::{OperationKind, ResourceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Right {
    Read,
    Write,
    Delete,
    Transfer,
    Verify,
    Delegate,
}

/// A restriction. A token allows what every one of its caveats allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caveat {
    Rights(Vec<Right>),
    Resources(Vec<ResourceId>),
    Domains(Vec<DomainId>),
    Operations(Vec<OperationKind>),
    ExpiresAt(Timestamp),
    MaxQuantity(u64),
}

/// Rooted in `domain` (its MAC chain starts from that domain's root key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityToken {
    pub domain: DomainId,
    /// A public nonce naming this token lineage.
    pub identifier: [u8; 16],
    pub caveats: Vec<Caveat>,
    /// The last MAC in the chain.
    pub tag: [u8; 32],
}
