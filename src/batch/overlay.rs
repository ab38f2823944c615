//! A batch's view of the store: earlier operations' effects layered over the
//! committed registers, so later operations in the same batch see them.

use std::sync::Arc;

use crate::digest_map::{digest_map, DigestMap};
use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::view::StoreView;

/// A created resource whose id is still a pending hash request (its
/// register holds a zero id until then).
pub(super) struct PendingCreate {
    pub handle: HashHandle,
    pub register: Arc<ResourceRegister>,
}

pub(super) enum Lookup<'a> {
    Found(&'a Arc<ResourceRegister>),
    ConsumedInBatch(usize),
    ConsumedInStore(u64),
    Missing,
}

/// Registers are shared (`Arc`): a load takes a reference count, and the
/// final registers move into the batch's delta and then the store's index
/// without being copied again.
pub(super) struct Overlay {
    /// Registers created (ids resolved) or updated in this batch.
    changed: DigestMap<ResourceId, Arc<ResourceRegister>>,
    /// First-change order of `changed`, so the delta is deterministic.
    order: Vec<ResourceId>,
    /// Consumed in this batch, with the consuming operation.
    consumed: DigestMap<ResourceId, usize>,
    consumed_order: Vec<ResourceId>,
    pending: Vec<PendingCreate>,
}

impl Overlay {
    /// An overlay sized for a batch of `ops` operations.
    pub fn with_capacity(ops: usize) -> Self {
        Overlay {
            changed: digest_map(2 * ops),
            order: Vec::with_capacity(2 * ops),
            consumed: digest_map(ops),
            consumed_order: Vec::with_capacity(ops),
            pending: Vec::with_capacity(2 * ops),
        }
    }

    pub fn lookup<'a>(&'a self, store: StoreView<'a>, id: &ResourceId) -> Lookup<'a> {
        if let Some(op) = self.consumed.get(id) {
            return Lookup::ConsumedInBatch(*op);
        }
        if let Some(r) = self.changed.get(id) {
            return Lookup::Found(r);
        }
        if let Some(r) = store.get(id) {
            return Lookup::Found(r);
        }
        match store.consumed_in(id) {
            Some(batch) => Lookup::ConsumedInStore(batch),
            None => Lookup::Missing,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn put(&mut self, register: Arc<ResourceRegister>) {
        let id = register.id;
        if self.changed.insert(id, register).is_none() {
            self.order.push(id);
        }
    }

    pub fn consume(&mut self, id: ResourceId, op: usize) {
        if self.consumed.insert(id, op).is_none() {
            self.consumed_order.push(id);
        }
    }

    pub fn create(&mut self, handle: HashHandle, register: Arc<ResourceRegister>) {
        self.pending.push(PendingCreate { handle, register });
    }

    /// Flush the pool and make every pending creation visible by id. A
    /// duplicate id keeps the first; the flush check fails the later one. An
    /// id that already exists in the store is not looked up here: the flush
    /// check fails its creator, and a failure at the flush always runs the
    /// batch again without it, so this pass's view of it is discarded.
    pub fn resolve(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        pool.flush()?;
        let pending = std::mem::take(&mut self.pending);
        self.changed.reserve(pending.len());
        for mut p in pending {
            let id = ResourceId::from_digest(pool.get(p.handle).ok_or(HashError::UnknownHandle(p.handle.0))?);
            if self.changed.contains_key(&id) {
                continue;
            }
            // Unshared unless a witness kept a copy of the register as created.
            Arc::make_mut(&mut p.register).id = id;
            self.put(p.register);
        }
        Ok(())
    }

    /// Final registers (created or updated, not consumed) in change order,
    /// and the consumed ids in consumption order.
    pub fn into_changes(self) -> (Vec<Arc<ResourceRegister>>, Vec<ResourceId>) {
        let Overlay { mut changed, order, consumed, consumed_order, .. } = self;
        let upserts =
            order.iter().filter(|id| !consumed.contains_key(id)).filter_map(|id| changed.remove(id)).collect();
        (upserts, consumed_order)
    }
}
