//! A batch's view of the store: earlier operations' effects layered over the
//! committed registers, so later operations in the same batch see them.

use std::collections::HashMap;

use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::view::StoreView;

/// A created resource whose id is still a pending hash request (its
/// register holds a zero id until then).
pub(super) struct PendingCreate {
    pub handle: HashHandle,
    pub register: ResourceRegister,
}

pub(super) enum Lookup<'a> {
    Found(&'a ResourceRegister),
    ConsumedInBatch(usize),
    ConsumedInStore(u64),
    Missing,
}

#[derive(Default)]
pub(super) struct Overlay {
    /// Registers created (ids resolved) or updated in this batch.
    changed: HashMap<ResourceId, ResourceRegister>,
    /// First-change order of `changed`, so the delta is deterministic.
    order: Vec<ResourceId>,
    /// Consumed in this batch, with the consuming operation.
    consumed: HashMap<ResourceId, usize>,
    consumed_order: Vec<ResourceId>,
    pending: Vec<PendingCreate>,
}

impl Overlay {
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

    pub fn put(&mut self, register: ResourceRegister) {
        if !self.changed.contains_key(&register.id) {
            self.order.push(register.id);
        }
        self.changed.insert(register.id, register);
    }

    pub fn consume(&mut self, id: ResourceId, op: usize) {
        if self.consumed.insert(id, op).is_none() {
            self.consumed_order.push(id);
        }
    }

    pub fn create(&mut self, handle: HashHandle, register: ResourceRegister) {
        self.pending.push(PendingCreate { handle, register });
    }

    /// Flush the pool and make every pending creation visible by id. A
    /// duplicate id keeps the first; the flush check fails the later one.
    pub fn resolve(&mut self, store: StoreView<'_>, pool: &mut HashPool) -> Result<(), HashError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        pool.flush()?;
        for mut p in std::mem::take(&mut self.pending) {
            let id = ResourceId::from_digest(pool.get(p.handle).ok_or(HashError::UnknownHandle(p.handle.0))?);
            if self.changed.contains_key(&id) || store.get(&id).is_some() {
                continue;
            }
            p.register.id = id;
            self.put(p.register);
        }
        Ok(())
    }

    /// Final registers (created or updated, not consumed) in change order,
    /// and the consumed ids in consumption order.
    pub fn into_changes(self) -> (Vec<ResourceRegister>, Vec<ResourceId>) {
        let Overlay { mut changed, order, consumed, consumed_order, .. } = self;
        let upserts =
            order.iter().filter(|id| !consumed.contains_key(id)).filter_map(|id| changed.remove(id)).collect();
        (upserts, consumed_order)
    }
}
