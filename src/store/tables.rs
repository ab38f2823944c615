//! The redb tables of a checkpoint and the content store.

use redb::TableDefinition;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Live registers at the checkpoint: id → register encoding.
pub(super) const REGISTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registers");
/// Spent nullifiers → the batch that spent them.
pub(super) const NULLIFIERS: TableDefinition<&[u8], u64> = TableDefinition::new("nullifiers");
/// Consumed ids → the batch that consumed them.
pub(super) const CONSUMED: TableDefinition<&[u8], u64> = TableDefinition::new("consumed");
pub(super) const CONTENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("content");
/// Where earlier versions appended deltas: still replayed on open and
/// emptied by the next checkpoint.
pub(super) const DELTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("deltas");
pub(super) const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");

/// Meta keys: the newest batch in the tables, its state root, and the batch
/// the last checkpoint covers (the same as head since the log took over
/// from the `deltas` table).
pub(super) const HEAD: &str = "head";
pub(super) const ROOT: &str = "root";
pub(super) const CHECKPOINT: &str = "checkpoint";
