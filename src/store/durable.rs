//! Durability: each batch is one fsynced append to the batch log
//! (`store.log`, see [`super::log`]); redb holds the checkpoints of the index,
//! the content store and the batch-record index. A checkpoint writes the
//! index's changes, the pending batch records, head and root in one redb
//! transaction, then empties the log (a crash between the two leaves frames
//! the checkpoint already covers: opening skips them).
//!
//! The `deltas` table is where earlier versions appended deltas; it is still
//! replayed on open and emptied by the next checkpoint.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::content_id::ContentId;
use crate::resource::ResourceId;

use super::codec::{Decoder, Encoder};
use super::index::Index;
use super::log::BatchLog;
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
    pub log: BatchLog,
    /// Records of the batches in the log (not in the redb index yet), oldest first.
    pending: Vec<BatchRecord>,
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
            index.registers.insert(Arc::new(register), [0; 32]);
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
        drop(rx);
        let (log, frames) = BatchLog::open(&path.with_extension("log"))?;
        let (mut head, mut root) = (head, root);
        let mut pending = Vec::new();
        for frame in frames {
            let number = frame.record.number;
            if number <= head {
                continue; // already in the checkpoint
            }
            if number != head + 1 {
                return Err(StoreError::Corrupt {
                    what: "batch log".into(),
                    offset: 0,
                    reason: format!("batch {number} follows batch {head}: the log has a gap"),
                });
            }
            head = number;
            root = Some(frame.record.state_root_after);
            bytes += frame.bytes;
            replay.push((number, frame.delta));
            pending.push(frame.record);
        }
        let durable = Durable {
            db,
            log,
            pending,
            options,
            bytes_since_checkpoint: bytes,
            batches_since_checkpoint: replay.len() as u64,
        };
        Ok((durable, Loaded { index, replay, head, root }))
    }

    /// The durable commit of one batch: one fsynced append to the log.
    pub fn append(&mut self, encoded_delta: &[u8], record: &BatchRecord) -> Result<(), StoreError> {
        let bytes = self.log.append_encoded(record, encoded_delta)?;
        self.pending.push(record.clone());
        self.bytes_since_checkpoint += bytes;
        self.batches_since_checkpoint += 1;
        Ok(())
    }

    pub fn wants_checkpoint(&self) -> bool {
        self.bytes_since_checkpoint >= self.options.checkpoint_bytes
            || self.batches_since_checkpoint >= self.options.checkpoint_batches
    }

    /// Fold the index's changes since the last checkpoint into the tables.
    pub fn checkpoint(&mut self, head: u64, root: [u8; 32], index: &mut Index) -> Result<(), StoreError> {
        if index.dirty.is_empty() && index.fresh_nullifiers.is_empty() && self.batches_since_checkpoint == 0 {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut registers = tx.open_table(REGISTERS)?;
            let mut consumed = tx.open_table(CONSUMED)?;
            index.dirty.sort_unstable();
            index.dirty.dedup();
            for id in &index.dirty {
                match index.registers.get(id) {
                    Some(register) => {
                        let mut e = Encoder::with_capacity(256);
                        e.register(register);
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
            let mut batches = tx.open_table(BATCHES)?;
            for record in &self.pending {
                batches.insert(record.number, record.encode().as_slice())?;
            }
            let mut deltas = tx.open_table(DELTAS)?;
            deltas.retain(|k, _| k > head)?;
            let mut meta = tx.open_table(META)?;
            meta.insert(HEAD, head.to_le_bytes().as_slice())?;
            meta.insert(ROOT, root.as_slice())?;
            meta.insert(CHECKPOINT, head.to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        self.log.clear()?;
        self.pending.clear();
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
        if let Some(record) = self.pending.iter().find(|r| r.number == number) {
            return Ok(Some(record.clone()));
        }
        let rx = self.db.begin_read()?;
        let table = rx.open_table(BATCHES)?;
        table.get(number)?.map(|v| BatchRecord::decode(v.value())).transpose()
    }

    pub fn history(&self, limit: usize) -> Result<Vec<BatchRecord>, StoreError> {
        let rx = self.db.begin_read()?;
        let table = rx.open_table(BATCHES)?;
        let mut out: Vec<BatchRecord> = self.pending.iter().rev().take(limit).cloned().collect();
        for row in table.iter()?.rev().take(limit - out.len()) {
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
