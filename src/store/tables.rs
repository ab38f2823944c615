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
/// Table names in row checksums.
pub(super) const SPENT_NAME: &str = "spent";
pub(super) const BATCHES_NAME: &str = "batches";

/// Meta keys: the newest batch in the tables, its state root, and the batch
/// the last checkpoint covers (the same as head since the log took over
/// from the `deltas` table).
pub(super) const HEAD: &str = "head";
pub(super) const ROOT: &str = "root";
pub(super) const CHECKPOINT: &str = "checkpoint";
/// The key the log's frame seals are checked with: random, made with the
/// store, stored as `key ‖ BLAKE3(key)[..8]` so damage to it is seen.
pub(super) const FRAME_KEY: &str = "frame_key";
/// [`SEALED`] once every row of [`ROWS`], [`SPENT`] and [`BATCHES`] ends in
/// its checksum (absent: written by an earlier version, not checked).
pub(super) const ROW_FORMAT: &str = "row_format";
pub(super) const SEALED: u64 = 2;
/// A row's checksum: xxh3-128 of the value, seeded with its table and key
/// (damage detection, not a defense against someone who can write the file).
const ROW_CHECK: usize = 16;

/// Whether rows end in their checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowFormat {
    /// Written by an earlier version: no checksum.
    Plain,
    Sealed,
}

fn row_check(table: &str, key: u64, value: &[u8]) -> [u8; ROW_CHECK] {
    let seed = xxhash_rust::xxh3::xxh3_64(table.as_bytes()) ^ key.rotate_left(32);
    xxhash_rust::xxh3::xxh3_128_with_seed(value, seed).to_le_bytes()
}

/// `value` with its checksum, as every row of a sealed table is written.
pub(super) fn seal_row(table: &str, key: u64, value: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(value.len() + ROW_CHECK);
    row.extend_from_slice(value);
    row.extend_from_slice(&row_check(table, key, value));
    row
}

impl RowFormat {
    /// The value of row `key` of `table`, its checksum checked.
    pub fn open<'a>(self, table: &str, key: u64, row: &'a [u8]) -> Result<&'a [u8], StoreError> {
        if self == RowFormat::Plain {
            return Ok(row);
        }
        let corrupt = |reason: &str| StoreError::Corrupt {
            what: format!("{table} table, row {key}"),
            offset: None,
            reason: reason.to_string(),
        };
        let split = row.len().checked_sub(ROW_CHECK).ok_or_else(|| corrupt("shorter than its checksum"))?;
        let (value, check) = row.split_at(split);
        if check != row_check(table, key, value) {
            return Err(corrupt("the row fails its checksum: the database file is damaged"));
        }
        Ok(value)
    }
}

/// The format of the store's rows, from its meta table.
pub(super) fn row_format(
    meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<RowFormat, StoreError> {
    match meta.get(ROW_FORMAT)? {
        None => Ok(RowFormat::Plain),
        Some(v) if v.value() == SEALED.to_le_bytes() => Ok(RowFormat::Sealed),
        Some(_) => Err(StoreError::Corrupt {
            what: "meta table".into(),
            offset: None,
            reason: "the row format is not one this version knows".into(),
        }),
    }
}

/// The frame key's stored form, and back (damage to it is an error).
pub(super) fn frame_key_row(key: &[u8; 32]) -> Vec<u8> {
    [&key[..], &blake3::hash(key).as_bytes()[..8]].concat()
}

pub(super) fn read_frame_key(row: &[u8]) -> Result<[u8; 32], StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "meta table".into(),
        offset: None,
        reason: "the log's frame key is damaged".into(),
    };
    let key: [u8; 32] = row.get(..32).and_then(|k| k.try_into().ok()).ok_or_else(corrupt)?;
    if row.len() != 40 || row[32..] != blake3::hash(&key).as_bytes()[..8] {
        return Err(corrupt());
    }
    Ok(key)
}

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
