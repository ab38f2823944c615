//! A batch's net effect on the store: the unit appended durably per batch.

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
        let mut e = Encoder::with_capacity(
            64 + self.upserts.len() * 256 + self.removed.len() * 32 + self.nullifiers.len() * 32,
        );
        e.u8(DELTA_TAG);
        e.u64(self.upserts.len() as u64);
        for r in &self.upserts {
            e.register(r);
        }
        e.u64(self.removed.len() as u64);
        for id in &self.removed {
            e.fixed(id.as_bytes());
        }
        e.u64(self.nullifiers.len() as u64);
        for n in &self.nullifiers {
            e.fixed(n);
        }
        e.buf
    }

    pub fn decode(data: &[u8]) -> Result<Self, StoreError> {
        let (upserts, removed, nullifiers) = read(data, |d| d.register().map(Arc::new))?;
        Ok(BatchDelta { upserts, removed, nullifiers })
    }
}

/// A delta's parts: its upserts, each read by `upsert`, the removed ids and
/// the nullifiers.
type Parts<U> = (Vec<U>, Vec<ResourceId>, Vec<[u8; 32]>);

/// Walk an encoded delta (one layout for decoding it and for reading it in
/// place).
fn read<'a, U>(
    data: &'a [u8],
    mut upsert: impl FnMut(&mut Decoder<'a>) -> Result<U, StoreError>,
) -> Result<Parts<U>, StoreError> {
    let mut d = Decoder::new(data, "batch delta");
    check_tag(&mut d)?;
    let n = d.len()?;
    let mut upserts = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        upserts.push(upsert(&mut d)?);
    }
    let n = d.len()?;
    let mut removed = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        removed.push(ResourceId::from_digest(d.array32()?));
    }
    let n = d.len()?;
    let mut nullifiers = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        nullifiers.push(d.array32()?);
    }
    d.finish()?;
    Ok((upserts, removed, nullifiers))
}

fn check_tag(d: &mut Decoder) -> Result<(), StoreError> {
    match d.u8()? {
        DELTA_TAG => Ok(()),
        tag => Err(StoreError::Corrupt {
            what: "batch delta".into(),
            offset: 0,
            reason: format!("unknown record tag {tag:#x}"),
        }),
    }
}

/// An encoded delta read in place: each upsert's id and encoding bytes,
/// the removed ids and the nullifiers. What a checkpoint folds.
pub(super) struct DeltaSpans<'a> {
    pub upserts: Vec<(ResourceId, &'a [u8])>,
    pub removed: Vec<ResourceId>,
    pub nullifiers: Vec<[u8; 32]>,
}

impl<'a> DeltaSpans<'a> {
    pub fn scan(data: &'a [u8]) -> Result<Self, StoreError> {
        let (upserts, removed, nullifiers) = read(data, |d| d.register_span())?;
        Ok(DeltaSpans { upserts, removed, nullifiers })
    }
}
