//! `ResourceRegister`: the unit of state the VM operates on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DomainId;
use super::{Label, LifecycleState};
use crate::content_id::{CanonicalWriter, ContentId};

/// A resource's identity: fixed at creation, never hashing itself.
pub type ResourceId = ContentId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRegister {
    pub id: ResourceId,
    /// ContentId of the logic program that must accept every operation on it.
    pub logic: ContentId,
    /// The domain the resource lives in (cross-domain access needs a grant).
    pub domain: DomainId,
    /// Quantities are conserved per fungibility domain through transfers.
    pub fungibility_domain: Label,
    pub quantity: u64,
    pub metadata: BTreeMap<String, String>,
    /// Hex in JSON, as in batch files.
    #[serde(with = "crate::resource::serde_hex")]
    pub contents: Vec<u8>,
    pub state: LifecycleState,
    /// [`nullifier_key_commitment`] of the nullifier key (Poseidon); consuming
    /// needs the key itself.
    #[serde(with = "crate::resource::serde_hex32")]
    pub nullifier_key_commitment: [u8; 32],
    pub controller: Label,
    pub version: u64,
}

/// The fields a creator chooses; the id is derived from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    pub logic: ContentId,
    pub domain: DomainId,
    pub fungibility_domain: Label,
    pub quantity: u64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, with = "crate::resource::serde_hex")]
    pub contents: Vec<u8>,
    #[serde(with = "crate::resource::serde_hex32")]
    pub nullifier_key_commitment: [u8; 32],
    pub controller: Label,
    /// Makes otherwise identical resources distinct; any 32 bytes.
    #[serde(with = "crate::resource::serde_hex32")]
    pub nonce: [u8; 32],
}

impl NewResource {
    /// The canonical encoding whose BLAKE3 is the new resource's id. It never
    /// contains an id or lifecycle state.
    pub fn id_encoding(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(encoded_len(&self.metadata, &self.contents));
        self.write_id_encoding(&mut buf);
        buf
    }

    /// [`NewResource::id_encoding`], appended to `buf` (a hash pool's pending bytes).
    pub fn write_id_encoding(&self, buf: &mut Vec<u8>) {
        let mut w = CanonicalWriter::append_to(buf, "cvm.resource.id");
        w.fixed(self.logic.as_bytes()).str(self.domain.as_str()).str(&self.fungibility_domain).u64(self.quantity);
        encode_metadata(&mut w, &self.metadata);
        w.bytes(&self.contents).fixed(&self.nullifier_key_commitment).str(&self.controller).fixed(&self.nonce);
    }

    /// The register this creates once its id digest is known.
    pub fn into_register(self, id: ResourceId) -> ResourceRegister {
        ResourceRegister {
            id,
            logic: self.logic,
            domain: self.domain,
            fungibility_domain: self.fungibility_domain,
            quantity: self.quantity,
            metadata: self.metadata,
            contents: self.contents,
            state: LifecycleState::Active,
            nullifier_key_commitment: self.nullifier_key_commitment,
            controller: self.controller,
            version: 0,
        }
    }
}

impl ResourceRegister {
    /// The canonical encoding of the whole register state (id, every field,
    /// lifecycle and version): its BLAKE3 is the register's commitment, the
    /// leaf of the state root.
    pub fn state_encoding(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(encoded_len(&self.metadata, &self.contents));
        self.write_state_encoding(&mut buf);
        buf
    }

    /// [`ResourceRegister::state_encoding`], appended to `buf` (a hash pool's pending bytes).
    pub fn write_state_encoding(&self, buf: &mut Vec<u8>) {
        let mut w = CanonicalWriter::append_to(buf, "cvm.resource.state");
        w.fixed(self.id.as_bytes())
            .fixed(self.logic.as_bytes())
            .str(self.domain.as_str())
            .str(&self.fungibility_domain)
            .u64(self.quantity);
        encode_metadata(&mut w, &self.metadata);
        w.bytes(&self.contents)
            .u8(self.state.code())
            .fixed(&self.nullifier_key_commitment)
            .str(&self.controller)
            .u64(self.version);
    }
}

/// Input to the nullifier of a consumed resource: exactly one 64-byte BLAKE3
/// block (nullifier key, resource id), hashed in derive-key mode under
/// [`NULLIFIER_CONTEXT`].
pub fn nullifier_input(nullifier_key: &[u8; 32], id: &ResourceId) -> [u8; 64] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(nullifier_key);
    block[32..].copy_from_slice(id.as_bytes());
    block
}

pub const NULLIFIER_CONTEXT: &str = "causality-vm 2026 nullifier v1";
/// The BLAKE3 derive-key context of the first nullifier-key commitment. The
/// executor and the circuit use [`nullifier_key_commitment`] instead; kept so
/// older callers still compile.
pub const NULLIFIER_KEY_COMMITMENT_CONTEXT: &str = "causality-vm 2026 nullifier-key commitment v1";

/// The commitment a register holds to its nullifier key: Poseidon over BN254
/// (`Poseidon_nk(nk)`, parameters in docs/PROVING.md) as 32 little-endian
/// bytes. The executor checks a consumed input's key against it, and the
/// compliance circuit proves the same opening.
pub fn nullifier_key_commitment(nullifier_key: &[u8; 32]) -> [u8; 32] {
    crate::crypto::field::nullifier_key_commitment(nullifier_key)
}

/// Room for an encoding: the fixed fields and short strings, plus the
/// variable-length ones.
fn encoded_len(metadata: &BTreeMap<String, String>, contents: &[u8]) -> usize {
    256 + contents.len() + metadata.iter().map(|(k, v)| 16 + k.len() + v.len()).sum::<usize>()
}

fn encode_metadata(w: &mut CanonicalWriter, metadata: &BTreeMap<String, String>) {
    w.u64(metadata.len() as u64);
    for (k, v) in metadata {
        w.str(k).str(v);
    }
}
