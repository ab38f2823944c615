//! The redb tables of a checkpoint and the content store.

use redb::TableDefinition;

use super::codec::{Decoder, Encoder};
use super::StoreError;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Live registers at the checkpoint: row → register encoding (which starts
/// with the id). Rows are numbered in the order registers first reach a
/// checkpoint ([`super::rows`]), so new rows append at the B-tree's end.
pub(super) const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("register_rows");
/// Where earlier versions kept live registers, keyed by id: opening moves
/// them into [`ROWS`] once.
pub(super) const REGISTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registers");
/// Per batch, what it spent: its nullifiers and consumed ids ([`spent_row`]).
/// Keyed by batch, a checkpoint appends at the B-tree's end; keyed by hash
/// (the two tables below), it rewrote pages all over the table each time.
/// Nothing looks these up by key: opening loads them into memory.
pub(super) const SPENT: TableDefinition<u64, &[u8]> = TableDefinition::new("spent");
/// Written by earlier versions (nullifier or consumed id → batch); still loaded.
pub(super) const NULLIFIERS: TableDefinition<&[u8], u64> = TableDefinition::new("nullifiers");
pub(super) const CONSUMED: TableDefinition<&[u8], u64> = TableDefinition::new("consumed");
pub(super) const CONTENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("content");
/// Where earlier versions appended deltas: opening folds what it still
/// holds into the tables and empties it.
pub(super) const DELTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("deltas");
pub(super) const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");

/// Meta keys: the newest batch in the tables, its state root, and the batch
/// the last checkpoint covers (the same as head since the log took over
/// from the `deltas` table).
pub(super) const HEAD: &str = "head";
pub(super) const ROOT: &str = "root";
pub(super) const CHECKPOINT: &str = "checkpoint";

/// A [`SPENT`] row: nullifier count ‖ nullifiers ‖ id count ‖ consumed ids,
/// from the nullifiers and the consumed ids side by side (32 bytes each).
pub(super) fn spent_row(nullifiers: &[u8], consumed: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(16 + nullifiers.len() + consumed.len());
    for list in [nullifiers, consumed] {
        e.u64((list.len() / 32) as u64);
        e.fixed(list);
    }
    e.buf
}

/// The nullifiers and consumed ids of a [`SPENT`] row.
pub(super) fn read_spent_row(row: &[u8]) -> Result<[Vec<[u8; 32]>; 2], StoreError> {
    let mut d = Decoder::new(row, "spent row");
    let mut list = || -> Result<Vec<[u8; 32]>, StoreError> {
        let n = d.len()?;
        (0..n).map(|_| d.array32()).collect()
    };
    let lists = [list()?, list()?];
    d.finish()?;
    Ok(lists)
}
