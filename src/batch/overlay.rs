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
///
/// Created registers are not put in a map as their ids resolve: most are
/// never looked up in their own batch, and a map insert per creation (and a
/// removal per creation when the delta is built) cost more than executing
/// the transfer that made them. They are indexed on the first lookup that
/// misses everything else.
pub(super) struct Overlay {
    /// Registers updated in this batch (the newest version).
    changed: DigestMap<ResourceId, Arc<ResourceRegister>>,
    /// First-change order of `changed`, so the delta is deterministic.
    order: Vec<ResourceId>,
    /// Consumed in this batch, with the consuming operation.
    consumed: DigestMap<ResourceId, usize>,
    consumed_order: Vec<ResourceId>,
    pending: Vec<PendingCreate>,
    /// Created registers with their ids, in creation order.
    created: Vec<Arc<ResourceRegister>>,
    /// Positions in `created` by id, for the first `indexed` of them (a
    /// duplicate id keeps the first; the flush check fails the later one).
    created_index: DigestMap<ResourceId, usize>,
    indexed: usize,
}

impl Overlay {
    /// An overlay sized for a batch of `ops` operations.
    pub fn with_capacity(ops: usize) -> Self {
        Overlay {
            changed: digest_map(0),
            order: Vec::new(),
            consumed: digest_map(ops),
            consumed_order: Vec::with_capacity(ops),
            pending: Vec::with_capacity(2 * ops),
            created: Vec::with_capacity(2 * ops),
            created_index: digest_map(0),
            indexed: 0,
        }
    }

    pub fn lookup<'a>(&'a self, store: StoreView<'a>, id: &ResourceId) -> Lookup<'a> {
        if let Some(op) = self.consumed.get(id) {
            return Lookup::ConsumedInBatch(*op);
        }
        if let Some(r) = self.changed.get(id) {
            return Lookup::Found(r);
        }
        if let Some(&at) = self.created_index.get(id) {
            return Lookup::Found(&self.created[at]);
        }
        if let Some(r) = store.get(id) {
            return Lookup::Found(r);
        }
        match store.consumed_in(id) {
            Some(batch) => Lookup::ConsumedInStore(batch),
            None => Lookup::Missing,
        }
    }

    /// Whether some created register cannot be found by id yet.
    /// The operation that consumed `id` in this batch, if one did.
    pub fn consumed_by(&self, id: &ResourceId) -> Option<usize> {
        self.consumed.get(id).copied()
    }

    pub fn has_unindexed(&self) -> bool {
        !self.pending.is_empty() || self.indexed < self.created.len()
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

    /// Record `id` as consumed without indexing it: no later lookup in the
    /// batch names it ([`super::ahead::Plan`]), and it was neither changed
    /// nor created in the batch, so [`Overlay::into_changes`] needs only its
    /// place in the consumption order.
    pub fn consume_unseen(&mut self, id: ResourceId) {
        self.consumed_order.push(id);
    }

    pub fn create(&mut self, handle: HashHandle, register: Arc<ResourceRegister>) {
        self.pending.push(PendingCreate { handle, register });
    }

    /// Flush the pool and give every pending creation its id. An id that
    /// already exists in the store is not looked up here: the flush check
    /// fails its creator, and a failure at the flush always runs the batch
    /// again without it, so this pass's view of it is discarded.
    pub fn resolve(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        self.resolve_by(pool, HashPool::flush)
    }

    /// [`Overlay::resolve`], flushing the pool with `flush`.
    fn resolve_by(
        &mut self,
        pool: &mut HashPool,
        flush: fn(&mut HashPool) -> Result<(), HashError>,
    ) -> Result<(), HashError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        flush(pool)?;
        for mut p in self.pending.drain(..) {
            let id = ResourceId::from_digest(pool.get(p.handle).ok_or(HashError::UnknownHandle(p.handle.0))?);
            // Unshared unless a witness kept a copy of the register as created.
            Arc::make_mut(&mut p.register).id = id;
            self.created.push(p.register);
        }
        Ok(())
    }

    /// [`Overlay::resolve`] for a lookup (a few requests stay off a GPU:
    /// [`HashPool::flush_for_lookup`]), then make every created register
    /// findable by id.
    pub fn resolve_and_index(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        self.resolve_by(pool, HashPool::flush_for_lookup)?;
        for (at, r) in self.created.iter().enumerate().skip(self.indexed) {
            self.created_index.entry(r.id).or_insert(at);
        }
        self.indexed = self.created.len();
        Ok(())
    }

    /// Final registers (updated, then created; none consumed) and the
    /// consumed ids in consumption order. Only an indexed created register
    /// can have been loaded, and so updated or consumed, in the batch.
    pub fn into_changes(self) -> (Vec<Arc<ResourceRegister>>, Vec<ResourceId>) {
        let Overlay { changed, order, consumed, consumed_order, created, indexed, .. } = self;
        let mut upserts: Vec<Arc<ResourceRegister>> = Vec::with_capacity(order.len() + created.len());
        upserts.extend(order.iter().filter(|id| !consumed.contains_key(id)).filter_map(|id| changed.get(id).cloned()));
        let mut created = created.into_iter();
        let loadable = created.by_ref().take(indexed);
        upserts.extend(loadable.filter(|r| !consumed.contains_key(&r.id) && !changed.contains_key(&r.id)));
        upserts.extend(created);
        (upserts, consumed_order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content_id::ContentId;
    use crate::resource::NewResource;

    fn new_register(seed: u8) -> (Vec<u8>, Arc<ResourceRegister>) {
        let new = NewResource {
            logic: Default::default(),
            domain: crate::DomainId::new("d"),
            fungibility_domain: "f".into(),
            quantity: seed as u64,
            metadata: Default::default(),
            contents: Vec::new(),
            nullifier_key_commitment: [0; 32],
            controller: "c".into(),
            nonce: [seed; 32],
        };
        (new.id_encoding(), Arc::new(new.into_register(Default::default())))
    }

    /// Created registers reach the delta once, as their last version:
    /// updated after creation, consumed after creation, never looked up.
    #[test]
    fn created_registers_enter_the_changes_as_left_by_the_batch() {
        let mut pool = HashPool::new();
        let mut overlay = Overlay::with_capacity(4);
        let mut ids = Vec::new();
        for seed in 1..=3 {
            let (encoding, register) = new_register(seed);
            overlay.create(pool.hash(&encoding), register);
            ids.push(ContentId::of_encoding(&encoding));
        }
        overlay.resolve(&mut pool).unwrap();
        assert!(overlay.has_unindexed());
        overlay.resolve_and_index(&mut pool).unwrap();
        assert!(!overlay.has_unindexed());
        let (late_encoding, late) = new_register(4);
        overlay.create(pool.hash(&late_encoding), late);
        overlay.resolve(&mut pool).unwrap();

        let mut updated = ResourceRegister::clone(&overlay.created[0]);
        updated.version = 1;
        overlay.put(Arc::new(updated.clone()));
        overlay.consume(ids[1], 0);
        let (upserts, removed) = overlay.into_changes();
        let versions: Vec<(ResourceId, u64)> = upserts.iter().map(|r| (r.id, r.version)).collect();
        assert_eq!(versions[..2], [(ids[0], 1), (ids[2], 0)]);
        assert_eq!(versions.len(), 3, "the late creation, never indexed, is there too");
        assert_eq!(removed, [ids[1]]);
    }
}
