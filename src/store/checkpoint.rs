//! A checkpoint: the batches of rotated log segments folded into the redb
//! tables in one write transaction; the segments are then deleted.
//!
//! It works from the batches' log encodings alone (kept in memory since
//! their commit or the replay on open, so it reads no file), never from the
//! in-memory index, so it runs on its own thread while batches go on
//! committing (the index changes under it; the encodings do not). Each id's
//! last change across the batches is what reaches the tables, and register
//! rows are copied from the log encoding as they are. Which row holds an id
//! is the checkpoint's own map ([`RowKeys`]), updated once the transaction
//! has committed; a register created and consumed within the folded
//! segments never gets a row.

use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata};

use crate::digest_map::DigestMap;
use crate::resource::ResourceId;

use super::codec::Decoder;
use super::delta::EncodedDelta;
use super::rows::ROWS_NAME;
use super::rows::{append_rows, rewrite_row, Fate, RowChange, RowKeys};
use super::tables::{
    seal_row, spent_row, BATCHES, BATCHES_NAME, CHECKPOINT, DELTAS, HEAD, META, REGISTERS, ROOT, ROWS, ROW_FORMAT,
    SEALED, SPENT, SPENT_NAME,
};
use super::{BatchRecord, StoreError};

/// The net effect of a run of batches on the tables.
#[derive(Default)]
struct Fold<'a> {
    /// Each changed id's last change, and when it first changed (new
    /// registers get rows in that order: those created together tend to be
    /// consumed together, and then share rows).
    changes: DigestMap<ResourceId, (u32, Fate<'a>)>,
    /// Per batch: (number, its [`SPENT`] row).
    spent: Vec<(u64, Vec<u8>)>,
    /// (number, record encoding)
    records: Vec<(u64, Vec<u8>)>,
}

impl<'a> Fold<'a> {
    /// Fold one batch in: removals first, then upserts (an upsert of an id
    /// the same delta removes wins, as in the index).
    fn add(&mut self, number: u64, record: Option<Vec<u8>>, delta: &'a EncodedDelta) {
        let changes = &mut self.changes;
        changes.reserve(delta.removed_count() + delta.upsert_count());
        let mut change = |id: ResourceId, fate: Fate<'a>| {
            let first = changes.len() as u32;
            changes.entry(id).and_modify(|c| c.1 = fate).or_insert((first, fate));
        };
        for id in delta.removed() {
            change(id, None);
        }
        for (id, bytes) in delta.upserts() {
            change(id, Some(bytes));
        }
        self.spent.push((number, spent_row(delta.nullifier_bytes(), delta.removed_bytes())));
        self.records.extend(record.map(|r| (number, r)));
    }

    /// Write the fold into the tables: rows holding changed registers are
    /// rewritten in key order, new registers appended in rows after the last
    /// (B-tree writes in key order touch each page once). Returns what the
    /// row map must learn once the transaction commits.
    fn write(self, tx: &redb::WriteTransaction, rows: &RowKeys) -> Result<Vec<RowChange>, StoreError> {
        let mut table = tx.open_table(ROWS)?;
        let mut existing: Vec<(u64, ResourceId, Fate)> = Vec::new();
        let mut appended: Vec<(u32, ResourceId, &[u8])> = Vec::new();
        for (id, (first, fate)) in self.changes {
            match (rows.get(&id), fate) {
                (Some(row), _) => existing.push((row, id, fate)),
                (None, Some(bytes)) => appended.push((first, id, bytes)),
                (None, None) => {} // created and consumed within the fold
            }
        }
        appended.sort_unstable_by_key(|(first, ..)| *first);
        let mut learned = Vec::new();
        existing.sort_unstable_by_key(|(row, ..)| *row);
        for changes in existing.chunk_by(|a, b| a.0 == b.0) {
            let of_row: Vec<(ResourceId, Fate)> = changes.iter().map(|&(_, id, fate)| (id, fate)).collect();
            rewrite_row(&mut table, changes[0].0, &of_row, &mut learned)?;
        }
        append_rows(&mut table, appended.into_iter().map(|(_, id, bytes)| (id, bytes)), &mut learned)?;
        let mut spent = tx.open_table(SPENT)?;
        for (number, row) in &self.spent {
            spent.insert(*number, seal_row(SPENT_NAME, *number, row).as_slice())?;
        }
        let mut batches = tx.open_table(BATCHES)?;
        for (number, record) in &self.records {
            batches.insert(*number, seal_row(BATCHES_NAME, *number, record).as_slice())?;
        }
        Ok(learned)
    }
}

/// The batch the tables hold everything up to.
fn checkpointed(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, StoreError> {
    match meta.get(CHECKPOINT)? {
        Some(v) => meta_u64(v.value(), "checkpoint"),
        None => Ok(0),
    }
}

pub(super) fn meta_u64(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    let mut d = Decoder::new(bytes, what);
    let v = d.u64()?;
    d.finish()?;
    Ok(v)
}

/// A committed batch waiting for a checkpoint: its record and log encoding.
pub(super) type Unfolded = (BatchRecord, Arc<EncodedDelta>);

/// Fold `batches` (oldest first, numbers consecutive) into the tables.
/// Batches the tables already hold are skipped. Returns the batch the tables
/// now hold everything up to. `rows` changes only if the transaction commits.
pub(super) fn fold_batches(db: &Database, batches: &[Unfolded], rows: &mut RowKeys) -> Result<u64, StoreError> {
    let tx = db.begin_write()?;
    let covered = checkpointed(&tx.open_table(META)?)?;
    let mut head = covered;
    let mut root = None;
    let mut fold = Fold::default();
    for (record, delta) in batches.iter().filter(|(record, _)| record.number > covered) {
        if record.number != head + 1 {
            return Err(StoreError::Corrupt {
                what: "checkpoint".into(),
                offset: None,
                reason: format!("batch {} follows batch {head}: the batches to fold have a gap", record.number),
            });
        }
        head = record.number;
        root = Some(record.state_root_after);
        fold.add(head, Some(record.encode()), delta);
    }
    if let Some(root) = root {
        let learned = fold.write(&tx, rows)?;
        let mut meta = tx.open_table(META)?;
        meta.insert(HEAD, head.to_le_bytes().as_slice())?;
        meta.insert(ROOT, root.as_slice())?;
        meta.insert(CHECKPOINT, head.to_le_bytes().as_slice())?;
        drop(meta);
        tx.commit()?;
        rows.apply(learned);
    }
    Ok(head)
}

/// Stores from before the batch log appended each batch's delta to the
/// `deltas` table (records and head already in the tables): fold the ones
/// past the checkpoint into the tables and empty it.
pub(super) fn fold_legacy_deltas(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    let covered = checkpointed(&tx.open_table(META)?)?;
    let mut deltas = tx.open_table(DELTAS)?;
    let rows: Vec<(u64, Vec<u8>)> = deltas
        .range(covered + 1..)?
        .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
        .collect::<Result<_, _>>()?;
    let Some(&(last, _)) = rows.last() else { return Ok(()) };
    let encoded: Vec<(u64, EncodedDelta)> = rows
        .into_iter()
        .map(|(number, delta)| EncodedDelta::read(delta).map(|d| (number, d)))
        .collect::<Result<_, _>>()?;
    let mut fold = Fold::default();
    for (number, delta) in &encoded {
        fold.add(*number, None, delta);
    }
    fold.write(&tx, &RowKeys::load(db)?)?;
    deltas.retain(|_, _| false)?;
    drop(deltas);
    tx.open_table(META)?.insert(CHECKPOINT, last.to_le_bytes().as_slice())?;
    tx.commit()?;
    Ok(())
}

/// Stores from before row checksums: seal every row of [`ROWS`], [`SPENT`]
/// and [`BATCHES`], once (a writer's first open).
pub(super) fn seal_rows(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    let mut meta = tx.open_table(META)?;
    if meta.get(ROW_FORMAT)?.is_some() {
        return Ok(());
    }
    for (definition, name) in [(ROWS, ROWS_NAME), (SPENT, SPENT_NAME), (BATCHES, BATCHES_NAME)] {
        let mut table = tx.open_table(definition)?;
        let rows: Vec<(u64, Vec<u8>)> =
            table.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec()))).collect::<Result<_, _>>()?;
        for (key, value) in rows {
            table.insert(key, seal_row(name, key, &value).as_slice())?;
        }
    }
    meta.insert(ROW_FORMAT, SEALED.to_le_bytes().as_slice())?;
    drop(meta);
    tx.commit()?;
    Ok(())
}

/// Stores from before [`ROWS`] kept registers keyed by id: move them into
/// rows (in id order) and empty the old table, once.
pub(super) fn move_registers_into_rows(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    let mut old = tx.open_table(REGISTERS)?;
    if old.is_empty()? {
        return Ok(());
    }
    let registers: Vec<Vec<u8>> =
        old.iter()?.map(|row| row.map(|(_, v)| v.value().to_vec())).collect::<Result<_, _>>()?;
    let mut spans = Vec::with_capacity(registers.len());
    for value in &registers {
        let mut d = Decoder::new(value, "register");
        let (id, bytes) = d.register_span()?;
        d.finish()?;
        spans.push((id, bytes));
    }
    append_rows(&mut tx.open_table(ROWS)?, spans, &mut Vec::new())?;
    old.retain(|_, _| false)?;
    drop(old);
    tx.commit()?;
    Ok(())
}
