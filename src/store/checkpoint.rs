//! A checkpoint: rotated log segments folded into the redb tables in one
//! write transaction, then deleted.
//!
//! It works from the segments' bytes alone, never from the in-memory index,
//! so it runs on its own thread while batches go on committing (the index
//! changes under it; the segments do not). Each id's last change across the
//! segments is what reaches the tables, and register rows are copied from
//! the log as encoded. A register created and consumed within the folded
//! segments never had a row, so none is removed: a register first seen with
//! version 0 was created there (updates always bump the version, and an id
//! can be created only once).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable};

use crate::digest_map::DigestMap;
use crate::resource::ResourceId;

use super::codec::Decoder;
use super::delta::DeltaSpans;
use super::log::segment_frames;
use super::tables::{spent_row, BATCHES, CHECKPOINT, DELTAS, HEAD, META, REGISTERS, ROOT, SPENT};
use super::{BatchRecord, StoreError};

/// Where a changed id ends up.
enum Fate<'a> {
    /// Live, with this encoding.
    Live(&'a [u8]),
    /// Consumed (the [`SPENT`] rows say in which batch).
    Consumed,
}

struct Change<'a> {
    fate: Fate<'a>,
    /// Whether the tables may hold a row for it from an earlier checkpoint.
    had_row: bool,
}

/// The net effect of a run of batches on the tables.
#[derive(Default)]
struct Fold<'a> {
    changes: DigestMap<ResourceId, Change<'a>>,
    /// Per batch: (number, its [`SPENT`] row).
    spent: Vec<(u64, Vec<u8>)>,
    /// (number, record encoding)
    records: Vec<(u64, &'a [u8])>,
}

impl<'a> Fold<'a> {
    /// Fold one batch in: removals first, then upserts (an upsert of an id
    /// the same delta removes wins, as in the index).
    fn add(&mut self, number: u64, record: Option<&'a [u8]>, delta: DeltaSpans<'a>) {
        let changes = &mut self.changes;
        changes.reserve(delta.removed.len() + delta.upserts.len());
        for id in &delta.removed {
            changes
                .entry(*id)
                .and_modify(|c| c.fate = Fate::Consumed)
                .or_insert(Change { fate: Fate::Consumed, had_row: true });
        }
        for (id, version, bytes) in delta.upserts {
            changes
                .entry(id)
                .and_modify(|c| c.fate = Fate::Live(bytes))
                .or_insert(Change { fate: Fate::Live(bytes), had_row: version != 0 });
        }
        let removed: Vec<[u8; 32]> = delta.removed.iter().map(|id| *id.as_bytes()).collect();
        self.spent.push((number, spent_row(&delta.nullifiers, &removed)));
        self.records.extend(record.map(|r| (number, r)));
    }

    /// Write the fold into the tables, keys ascending (B-tree inserts in
    /// order touch each page once).
    fn write(self, tx: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut changes: Vec<(ResourceId, Change)> = self.changes.into_iter().collect();
        changes.sort_unstable_by_key(|c| c.0);
        let mut registers = tx.open_table(REGISTERS)?;
        for (id, change) in &changes {
            let key = id.as_bytes().as_slice();
            match change.fate {
                Fate::Live(bytes) => {
                    registers.insert(key, bytes)?;
                }
                Fate::Consumed if change.had_row => {
                    registers.remove(key)?;
                }
                Fate::Consumed => {}
            }
        }
        let mut spent = tx.open_table(SPENT)?;
        for (number, row) in &self.spent {
            spent.insert(*number, row.as_slice())?;
        }
        let mut batches = tx.open_table(BATCHES)?;
        for (number, record) in self.records {
            batches.insert(number, record)?;
        }
        Ok(())
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

/// Fold `segments` (oldest first, each batch once, in order) into the
/// tables, then delete them. Batches the tables already hold are skipped: a
/// crash after a checkpoint committed may have left its segments behind.
/// Returns the batch the tables now hold everything up to.
pub(super) fn fold_segments(db: &Database, segments: &[PathBuf]) -> Result<u64, StoreError> {
    let data: Vec<Vec<u8>> = segments
        .iter()
        .map(|path| {
            std::fs::read(path).map_err(|e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() })
        })
        .collect::<Result<_, _>>()?;
    let tx = db.begin_write()?;
    let covered = checkpointed(&tx.open_table(META)?)?;
    let mut head = covered;
    let mut root = None;
    let mut fold = Fold::default();
    for (path, bytes) in segments.iter().zip(&data) {
        for frame in segment_frames(path, bytes)? {
            let record = BatchRecord::decode(frame.record)?;
            if record.number <= covered {
                continue;
            }
            if record.number != head + 1 {
                return Err(gap(path, head, record.number));
            }
            head = record.number;
            root = Some(record.state_root_after);
            fold.add(head, Some(frame.record), DeltaSpans::scan(frame.delta)?);
        }
    }
    if let Some(root) = root {
        fold.write(&tx)?;
        let mut meta = tx.open_table(META)?;
        meta.insert(HEAD, head.to_le_bytes().as_slice())?;
        meta.insert(ROOT, root.as_slice())?;
        meta.insert(CHECKPOINT, head.to_le_bytes().as_slice())?;
        drop(meta);
        tx.commit()?;
    }
    for path in segments {
        // A segment left behind is skipped by the next checkpoint and on open.
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(segment = %path.display(), "checkpointed log segment not removed: {e}");
        }
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
    let mut fold = Fold::default();
    for (number, delta) in &rows {
        fold.add(*number, None, DeltaSpans::scan(delta)?);
    }
    fold.write(&tx)?;
    deltas.retain(|_, _| false)?;
    drop(deltas);
    tx.open_table(META)?.insert(CHECKPOINT, last.to_le_bytes().as_slice())?;
    tx.commit()?;
    Ok(())
}

fn gap(path: &Path, head: u64, number: u64) -> StoreError {
    StoreError::Corrupt {
        what: format!("batch log segment {}", path.display()),
        offset: 0,
        reason: format!("batch {number} follows batch {head}: the log has a gap"),
    }
}
