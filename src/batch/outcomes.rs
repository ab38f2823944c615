//! Each operation's result, built from its effects once the batch is known
//! to stand.
//!
//! Building the results (a few small vectors and a box per operation) is a
//! tenth of a batch's time, and nothing else needs them, so a committing
//! batch builds them while its log frame is being written and synced.

use std::sync::Arc;

use crate::resource::{Operation, ResourceId};

use super::env::{Consumption, OpEffects};
use super::result::{OpOutcome, OpStatus, OperationResult};
use super::Record;

/// The operations' records with their consumed inputs and the digests they
/// claimed, flat in the pass's order (the records' spans index them).
#[derive(Default)]
pub(super) struct Outcomes<'a> {
    pub ops: &'a [Operation],
    pub records: Vec<Record>,
    /// The pass's consumed inputs (operations hold spans of them).
    pub consumes: Vec<Consumption>,
    /// The nullifiers of the successful operations' consumed inputs.
    pub nullifiers: Vec<[u8; 32]>,
    /// The ids of the successful operations' created resources.
    pub created: Vec<ResourceId>,
}

impl Outcomes<'_> {
    /// Operations that succeeded.
    pub fn success_count(&self) -> usize {
        self.records.iter().filter(|r| matches!(r, Record::Executed(_))).count()
    }

    pub fn build(self) -> Vec<OperationResult> {
        let Outcomes { ops, records, consumes, nullifiers, created } = self;
        let mut results = Vec::with_capacity(records.len());
        for (index, (record, op)) in records.into_iter().zip(ops).enumerate() {
            let (status, instructions, traces) = match record {
                Record::Skipped => (OpStatus::Skipped, 0, Vec::new()),
                Record::Failed(e, mut fx) => (OpStatus::Failed(*e), fx.instructions, fx.take_extras().traces),
                Record::Executed(fx) => {
                    let (spent, ids) = (fx.consumes.clone(), fx.creates.clone());
                    let (instructions, outcome, traces) =
                        outcome(fx, &consumes[spent.clone()], &nullifiers[spent], &created[ids]);
                    (OpStatus::Succeeded(Box::new(outcome)), instructions, traces)
                }
            };
            results.push(OperationResult { index, kind: op.kind(), status, instructions, traces });
        }
        results
    }
}

fn outcome(
    mut fx: OpEffects,
    consumed: &[Consumption],
    nullifiers: &[[u8; 32]],
    created: &[ResourceId],
) -> (u64, OpOutcome, Vec<super::LogicTrace>) {
    let extras = fx.take_extras();
    let outcome = OpOutcome {
        created: created.to_vec(),
        consumed: consumed.iter().map(|c| c.register.id).collect(),
        nullifiers: nullifiers.to_vec(),
        updated: fx.updates.iter().map(|(_, a)| (a.id, a.version)).collect(),
        read: extras.read.map(Arc::unwrap_or_clone),
        verified: extras.verified,
    };
    (fx.instructions, outcome, extras.traces)
}
