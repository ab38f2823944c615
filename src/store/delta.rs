//! A batch's net effect on the store: the unit appended durably per batch.

use std::ops::Range;
use std::sync::Arc;

use crate::resource::{ResourceId, ResourceRegister};

use super::codec::{Decoder, Encoder};
use super::StoreError;

/// What one committed batch changes. Registers in `upserts` carry their final
/// state (shared with the batch's results and, once committed, the index);
/// `removed` are consumed (they leave the live set, their nullifiers enter
/// the nullifier set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchDelta {
    pub upserts: Vec<Arc<ResourceRegister>>,
    pub removed: Vec<ResourceId>,
    pub nullifiers: Vec<[u8; 32]>,
}

const DELTA_TAG: u8 = 0xD1;

impl BatchDelta {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty() && self.nullifiers.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_in_place().bytes
    }

    /// The encoding, with where its parts lie.
    pub fn encode_in_place(&self) -> EncodedDelta {
        let mut e = Encoder::with_capacity(
            64 + self.upserts.len() * 256 + self.removed.len() * 32 + self.nullifiers.len() * 32,
        );
        let mut upserts = Vec::with_capacity(self.upserts.len());
        e.u8(DELTA_TAG);
        e.u64(self.upserts.len() as u64);
        for r in &self.upserts {
            let start = e.buf.len();
            e.register(r);
            upserts.push(start..e.buf.len());
        }
        e.u64(self.removed.len() as u64);
        let start = e.buf.len();
        for id in &self.removed {
            e.fixed(id.as_bytes());
        }
        let removed = start..e.buf.len();
        e.u64(self.nullifiers.len() as u64);
        let start = e.buf.len();
        for n in &self.nullifiers {
            e.fixed(n);
        }
        let nullifiers = start..e.buf.len();
        EncodedDelta { bytes: e.buf, upserts, removed, nullifiers }
    }

    pub fn decode(data: &[u8]) -> Result<Self, StoreError> {
        EncodedDelta::read(data.to_vec())?.decode()
    }
}

/// The 32-byte digests side by side in `bytes`.
fn digests(bytes: &[u8]) -> impl Iterator<Item = [u8; 32]> + '_ {
    bytes.chunks_exact(32).map(|d| d.try_into().expect("32 bytes"))
}

fn too_many(n: usize) -> StoreError {
    StoreError::Corrupt { what: "batch delta".into(), offset: None, reason: format!("{n} digests cannot fit") }
}

fn check_tag(d: &mut Decoder) -> Result<(), StoreError> {
    match d.u8()? {
        DELTA_TAG => Ok(()),
        tag => Err(StoreError::Corrupt {
            what: "batch delta".into(),
            offset: None,
            reason: format!("unknown record tag {tag:#x}"),
        }),
    }
}

/// A delta's log encoding and where its parts lie: what a checkpoint folds,
/// kept in memory from the commit (or the replay on open) until then, so
/// it reads no file and walks no encoding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EncodedDelta {
    pub bytes: Vec<u8>,
    /// Each upsert's register encoding (which starts with its id).
    upserts: Vec<Range<usize>>,
    /// The removed ids and the nullifiers, 32 bytes each.
    removed: Range<usize>,
    nullifiers: Range<usize>,
}

impl EncodedDelta {
    /// Find the parts of an encoded delta, every length checked: the one
    /// walk of the layout, for decoding it and for reading it in place.
    pub fn read(bytes: Vec<u8>) -> Result<EncodedDelta, StoreError> {
        let mut d = Decoder::new(&bytes, "batch delta");
        check_tag(&mut d)?;
        let n = d.len()?;
        let mut upserts = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let start = d.pos();
            d.register_span()?;
            upserts.push(start..d.pos());
        }
        let block = |d: &mut Decoder| -> Result<Range<usize>, StoreError> {
            let n = d.len()?;
            let start = d.pos();
            d.take(n.checked_mul(32).ok_or_else(|| too_many(n))?)?;
            Ok(start..d.pos())
        };
        let removed = block(&mut d)?;
        let nullifiers = block(&mut d)?;
        d.finish()?;
        Ok(EncodedDelta { bytes, upserts, removed, nullifiers })
    }

    /// The delta itself (errors name offsets in the whole encoding).
    pub fn decode(&self) -> Result<BatchDelta, StoreError> {
        let upserts = self
            .upserts
            .iter()
            .map(|span| {
                let mut d = Decoder::new(&self.bytes[..span.end], "batch delta");
                d.take(span.start)?;
                let register = d.register()?;
                d.finish()?;
                Ok(Arc::new(register))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(BatchDelta { upserts, removed: self.removed().collect(), nullifiers: self.nullifiers().collect() })
    }

    /// Each upsert's id and register encoding.
    pub fn upserts(&self) -> impl Iterator<Item = (ResourceId, &[u8])> + '_ {
        self.upserts.iter().map(|span| {
            let bytes = &self.bytes[span.clone()];
            (ResourceId::from_digest(bytes[..32].try_into().expect("an encoding starts with its id")), bytes)
        })
    }

    pub fn upsert_count(&self) -> usize {
        self.upserts.len()
    }

    pub fn removed(&self) -> impl Iterator<Item = ResourceId> + '_ {
        digests(&self.bytes[self.removed.clone()]).map(ResourceId::from_digest)
    }

    pub fn removed_count(&self) -> usize {
        self.removed.len() / 32
    }

    pub fn nullifiers(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        digests(&self.bytes[self.nullifiers.clone()])
    }

    /// The removed ids side by side, 32 bytes each.
    pub fn removed_bytes(&self) -> &[u8] {
        &self.bytes[self.removed.clone()]
    }

    /// The nullifiers side by side, 32 bytes each.
    pub fn nullifier_bytes(&self) -> &[u8] {
        &self.bytes[self.nullifiers.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceRegister;

    fn register(n: u8) -> Arc<ResourceRegister> {
        Arc::new(ResourceRegister {
            id: ResourceId::from_digest([n; 32]),
            logic: Default::default(),
            domain: crate::DomainId::new("d"),
            fungibility_domain: "f".into(),
            quantity: n as u64,
            metadata: [("k".to_string(), "v".repeat(n as usize))].into(),
            contents: vec![n; n as usize],
            state: crate::resource::LifecycleState::Active,
            nullifier_key_commitment: [n; 32],
            controller: "c".into(),
            version: n as u64,
        })
    }

    /// The parts found while encoding are the parts found reading the bytes
    /// back, and they are the delta's; an empty delta too; damage is an error.
    #[test]
    fn an_encoding_read_in_place_gives_back_the_deltas_parts() {
        let deltas = [
            BatchDelta::default(),
            BatchDelta {
                upserts: (1..=5).map(register).collect(),
                removed: (6..=8).map(|n| ResourceId::from_digest([n; 32])).collect(),
                nullifiers: vec![[9; 32], [10; 32]],
            },
        ];
        for delta in deltas {
            let encoded = delta.encode_in_place();
            assert_eq!(EncodedDelta::read(encoded.bytes.clone()).unwrap(), encoded);
            assert_eq!(BatchDelta::decode(&encoded.bytes).unwrap(), delta);
            let upserts: Vec<(ResourceId, Vec<u8>)> = encoded.upserts().map(|(id, b)| (id, b.to_vec())).collect();
            let expected: Vec<(ResourceId, Vec<u8>)> = delta
                .upserts
                .iter()
                .map(|r| {
                    let mut e = Encoder::default();
                    e.register(r);
                    (r.id, e.buf)
                })
                .collect();
            assert_eq!(upserts, expected);
            assert_eq!(encoded.removed().collect::<Vec<_>>(), delta.removed);
            assert_eq!(encoded.nullifiers().collect::<Vec<_>>(), delta.nullifiers);
            assert_eq!((encoded.upsert_count(), encoded.removed_count()), (delta.upserts.len(), delta.removed.len()));
            for cut in [1, 9, encoded.bytes.len() - 1] {
                assert!(EncodedDelta::read(encoded.bytes[..cut].to_vec()).is_err(), "cut at {cut}");
            }
            let mut longer = encoded.bytes.clone();
            longer.push(0);
            assert!(EncodedDelta::read(longer).is_err());
        }
    }
}
