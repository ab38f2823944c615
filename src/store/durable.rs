//! The redb side: one write transaction per batch (delta + batch record +
//! head), checkpoints of the index into tables, and loading on open.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::content_id::ContentId;
use crate::resource::ResourceId;

use super::codec::{Decoder, Encoder};
use super::index::{Entry, Index};
use super::{BatchDelta, BatchRecord, StoreError};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REGISTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registers");
const NULLIFIERS: TableDefinition<&[u8], u64> = TableDefinition::new("nullifiers");
const CONSUMED: TableDefinition<&[u8], u64> = TableDefinition::new("consumed");
const CONTENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("content");
const DELTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("deltas");
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");

const HEAD: &str = "head";
const ROOT: &str = "root";
const CHECKPOINT: &str = "checkpoint";

/// When the delta log is folded into the tables.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Checkpoint once this many delta bytes accumulated since the last one.
    pub checkpoint_bytes: u64,
    /// Checkpoint at least every this many batches.
    pub checkpoint_batches: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { checkpoint_bytes: 256 << 20, checkpoint_batches: 4096 }
    }
}

pub(super) struct Durable {
    db: Database,
    options: StoreOptions,
    bytes_since_checkpoint: u64,
    batches_since_checkpoint: u64,
}

pub(super) struct Loaded {
    pub index: Index,
    pub replay: Vec<(u64, BatchDelta)>,
    pub head: u64,
    pub root: Option<[u8; 32]>,
}

fn meta_u64(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    let mut d = Decoder::new(bytes, what);
    let v = d.u64()?;
    d.finish()?;
    Ok(v)
}

impl Durable {
    pub fn open(path: &Path, options: StoreOptions) -> Result<(Durable, Loaded), StoreError> {
        let db = Database::create(path)?;
        // Make sure every table exists so read transactions can open them.
        let tx = db.begin_write()?;
        tx.open_table(META)?;
        tx.open_table(REGISTERS)?;
        tx.open_table(NULLIFIERS)?;
        tx.open_table(CONSUMED)?;
        tx.open_table(CONTENT)?;
        tx.open_table(DELTAS)?;
        tx.open_table(BATCHES)?;
        tx.commit()?;

        let rx = db.begin_read()?;
        let meta = rx.open_table(META)?;
        let head = match meta.get(HEAD)? {
            Some(v) => meta_u64(v.value(), "head")?,
            None => 0,
        };
        let checkpoint = match meta.get(CHECKPOINT)? {
            Some(v) => meta_u64(v.value(), "checkpoint")?,
            None => 0,
        };
        let root = match meta.get(ROOT)? {
            Some(v) => {
                let mut d = Decoder::new(v.value(), "state root");
                let r = d.array32()?;
                d.finish()?;
                Some(r)
            }
            None => None,
        };

        let mut index = Index::default();
        for row in rx.open_table(REGISTERS)?.iter()? {
            let (_, v) = row?;
            let mut d = Decoder::new(v.value(), "register");
            let register = d.register()?;
            d.finish()?;
            index.registers.insert(register.id, Entry { register, commitment: [0; 32] });
        }
        for row in rx.open_table(NULLIFIERS)?.iter()? {
            let (k, v) = row?;
            index.nullifiers.insert(key32(k.value(), "nullifier")?, v.value());
        }
        for row in rx.open_table(CONSUMED)?.iter()? {
            let (k, v) = row?;
            index.consumed.insert(ResourceId::from_digest(key32(k.value(), "consumed id")?), v.value());
        }
        let mut replay = Vec::new();
        let mut bytes = 0u64;
        for row in rx.open_table(DELTAS)?.range(checkpoint + 1..)? {
            let (k, v) = row?;
            bytes += v.value().len() as u64;
            replay.push((k.value(), BatchDelta::decode(v.value())?));
        }
        let durable =
            Durable { db, options, bytes_since_checkpoint: bytes, batches_since_checkpoint: replay.len() as u64 };
        Ok((durable, Loaded { index, replay, head, root }))
    }

    /// The durable commit of one batch: delta, record and head in one transaction.
    pub fn append(&mut self, number: u64, delta: &BatchDelta, record: &BatchRecord) -> Result<(), StoreError> {
        let delta_bytes = delta.encode();
        let tx = self.db.begin_write()?;
        {
            tx.open_table(DELTAS)?.insert(number, delta_bytes.as_slice())?;
            tx.open_table(BATCHES)?.insert(number, record.encode().as_slice())?;
            let mut meta = tx.open_table(META)?;
            meta.insert(HEAD, number.to_le_bytes().as_slice())?;
            meta.insert(ROOT, record.state_root_after.as_slice())?;
        }
        tx.commit()?;
        self.bytes_since_checkpoint += delta_bytes.len() as u64;
        self.batches_since_checkpoint += 1;
        Ok(())
    }

    pub fn wants_checkpoint(&self) -> bool {
        self.bytes_since_checkpoint >= self.options.checkpoint_bytes
            || self.batches_since_checkpoint >= self.options.checkpoint_batches
    }

    /// Fold the index's changes since the last checkpoint into the tables.
    pub fn checkpoint(&mut self, head: u64, index: &mut Index) -> Result<(), StoreError> {
        if index.dirty.is_empty() && index.fresh_nullifiers.is_empty() && self.batches_since_checkpoint == 0 {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut registers = tx.open_table(REGISTERS)?;
            let mut consumed = tx.open_table(CONSUMED)?;
            for id in &index.dirty {
                match index.registers.get(id) {
                    Some(entry) => {
                        let mut e = Encoder::with_capacity(256);
                        e.register(&entry.register);
                        registers.insert(id.as_bytes().as_slice(), e.buf.as_slice())?;
                    }
                    None => {
                        registers.remove(id.as_bytes().as_slice())?;
                    }
                }
                if let Some(batch) = index.consumed.get(id) {
                    consumed.insert(id.as_bytes().as_slice(), *batch)?;
                }
            }
            let mut nullifiers = tx.open_table(NULLIFIERS)?;
            for (n, batch) in &index.fresh_nullifiers {
                nullifiers.insert(n.as_slice(), *batch)?;
            }
            let mut deltas = tx.open_table(DELTAS)?;
            deltas.retain(|k, _| k > head)?;
            tx.open_table(META)?.insert(CHECKPOINT, head.to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        index.dirty.clear();
        index.fresh_nullifiers.clear();
        self.bytes_since_checkpoint = 0;
        self.batches_since_checkpoint = 0;
        Ok(())
    }

    pub fn put_content(&mut self, id: &ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(CONTENT)?.insert(id.as_bytes().as_slice(), bytes)?;
        tx.commit()?;
        Ok(())
    }

    pub fn content(&self, id: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        let rx = self.db.begin_read()?;
        let table = rx.open_table(CONTENT)?;
        Ok(table.get(id.as_bytes().as_slice())?.map(|v| v.value().to_vec()))
    }

    pub fn batch(&self, number: u64) -> Result<Option<BatchRecord>, StoreError> {
        let rx = self.db.begin_read()?;
        let table = rx.open_table(BATCHES)?;
        table.get(number)?.map(|v| BatchRecord::decode(v.value())).transpose()
    }

    pub fn history(&self, limit: usize) -> Result<Vec<BatchRecord>, StoreError> {
        let rx = self.db.begin_read()?;
        let table = rx.open_table(BATCHES)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(BatchRecord::decode(v.value())?);
        }
        Ok(out)
    }
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], StoreError> {
    let mut d = Decoder::new(bytes, what);
    let k = d.array32()?;
    d.finish()?;
    Ok(k)
}
