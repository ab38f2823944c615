//! From the executor's view of an operation ([`OpWitness`]) to the values of
//! one circuit slot ([`SlotAssignment`]), checking every rule natively first
//! so a bad witness gets a clear error instead of an unsatisfied circuit.

use ark_bn254::Fr;

use super::encoding::{check_nullifier_key, field_to_bytes, fungibility_field, nullifier_key_field, RegisterFields};
use super::poseidon::{hash, HashDomain};
use super::ProveError;
use crate::hash::{HashPool, PoseidonHandle};
use crate::resource::{LifecycleState, OperationKind, ResourceRegister};

/// Inputs and outputs one slot can hold (Transfer: up to 2 in, 2 out).
pub const MAX_INPUTS: usize = 2;
pub const MAX_OUTPUTS: usize = 2;
/// Public field elements per slot: kind, 2 inputs, 2 outputs.
pub const PUBLIC_PER_SLOT: usize = 1 + MAX_INPUTS + MAX_OUTPUTS;
/// The kind code of a padding slot (operation codes are 0..=5).
pub const EMPTY_SLOT_CODE: u8 = 6;

/// What the batch executor knows about one executed operation: the one
/// witness type that crosses from the executor to the prover.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpWitness {
    pub kind: OperationKind,
    /// Consumed resources with the nullifier key that opens each (Delete, Transfer).
    pub consumed: Vec<(ResourceRegister, [u8; 32])>,
    /// Created resources (Create, Transfer).
    pub created: Vec<ResourceRegister>,
    /// The register before and after (Update).
    pub updated: Option<(ResourceRegister, ResourceRegister)>,
}

/// One input sub-slot: a consumed resource (with its key) or an updated
/// resource's prior state (no key: Update is authorized by capabilities).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputAssignment {
    pub fields: RegisterFields,
    pub nullifier_key: Fr,
}

/// The private and public values of one slot. `Default` is a padding slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotAssignment {
    pub kind_code: u8,
    pub inputs: [Option<InputAssignment>; MAX_INPUTS],
    pub outputs: [Option<RegisterFields>; MAX_OUTPUTS],
}

impl Default for SlotAssignment {
    fn default() -> Self {
        SlotAssignment { kind_code: EMPTY_SLOT_CODE, inputs: [None; MAX_INPUTS], outputs: [None; MAX_OUTPUTS] }
    }
}

impl SlotAssignment {
    pub fn is_update(&self) -> bool {
        self.kind_code == OperationKind::Update.code()
    }

    /// The slot's public inputs: kind, then per input the nullifier (or, for
    /// Update, the prior commitment), then the new commitments; 0 where unused.
    pub fn public_inputs(&self) -> [Fr; PUBLIC_PER_SLOT] {
        let mut out = [Fr::from(0u64); PUBLIC_PER_SLOT];
        out[0] = Fr::from(self.kind_code as u64);
        for (i, input) in self.inputs.iter().enumerate() {
            if let Some(input) = input {
                let cm = input.fields.commitment();
                out[1 + i] = if self.is_update() && i == 0 {
                    cm
                } else {
                    hash(HashDomain::Nullifier, &[input.nullifier_key, cm])
                };
            }
        }
        for (j, output) in self.outputs.iter().enumerate() {
            if let Some(output) = output {
                out[1 + MAX_INPUTS + j] = output.commitment();
            }
        }
        out
    }
}

/// The public inputs a proof of `chunk` (operations `first..` of a batch,
/// `k` slots a proof, the rest padding) must carry: what binds a proof made
/// elsewhere (a cluster's worker) to the operations it was asked to prove.
pub fn chunk_public_inputs(chunk: &[OpWitness], first: usize, k: usize) -> Result<Vec<Fr>, ProveError> {
    let mut slots = to_slots(chunk, first)?;
    slots.resize(k, SlotAssignment::default());
    Ok(public_inputs_of(&slots))
}

/// Every slot's [`SlotAssignment::public_inputs`], one slot after another,
/// with their Poseidon hashes filed in one hash pool and resolved in two
/// flushes: the commitments, then the nullifiers over them.
pub fn public_inputs_of(slots: &[SlotAssignment]) -> Vec<Fr> {
    let mut pool = HashPool::new();
    let mut file = |domain, inputs: &[Fr]| pool.poseidon(domain, inputs).expect("a proof's hashes fit a pool");
    let commitments: Vec<_> = slots
        .iter()
        .map(|slot| {
            let inputs = slot.inputs.map(|i| i.map(|i| file(HashDomain::Commitment, &i.fields.to_vec())));
            let outputs = slot.outputs.map(|o| o.map(|o| file(HashDomain::Commitment, &o.to_vec())));
            (inputs, outputs)
        })
        .collect();
    pool.flush().expect("a CPU flush always succeeds");
    let value = |pool: &HashPool, h: PoseidonHandle| pool.poseidon_value(h).expect("flushed");
    let nullifiers: Vec<[Option<PoseidonHandle>; MAX_INPUTS]> = slots
        .iter()
        .zip(&commitments)
        .map(|(slot, (inputs, _))| {
            std::array::from_fn(|i| match (slot.inputs[i], inputs[i]) {
                (Some(input), Some(cm)) if !(slot.is_update() && i == 0) => {
                    let cm = value(&pool, cm);
                    Some(pool.poseidon(HashDomain::Nullifier, &[input.nullifier_key, cm]).expect("fits"))
                }
                _ => None,
            })
        })
        .collect();
    pool.flush().expect("a CPU flush always succeeds");
    let mut out = Vec::with_capacity(slots.len() * PUBLIC_PER_SLOT);
    for ((slot, (inputs, outputs)), nullifiers) in slots.iter().zip(&commitments).zip(&nullifiers) {
        out.push(Fr::from(slot.kind_code as u64));
        for (cm, nullifier) in inputs.iter().zip(nullifiers) {
            out.push(nullifier.or(*cm).map_or(Fr::from(0u64), |h| value(&pool, h)));
        }
        out.extend(outputs.iter().map(|cm| cm.map_or(Fr::from(0u64), |h| value(&pool, h))));
    }
    out
}

/// Lifecycle pairs an Update may take: the transition table plus "unchanged".
pub fn allowed_update_transitions() -> Vec<(u8, u8)> {
    let mut pairs = Vec::new();
    for from in LifecycleState::ALL {
        for to in LifecycleState::ALL {
            if from == to || from.can_transition_to(to) {
                pairs.push((from.code(), to.code()));
            }
        }
    }
    pairs
}

/// States a consumed resource may be in (those that can become Consumed).
pub fn consumable_states() -> Vec<u8> {
    LifecycleState::ALL.iter().filter(|s| s.can_transition_to(LifecycleState::Consumed)).map(|s| s.code()).collect()
}

/// A consumed input's key as a field element, and its opening Poseidon(nk)
/// as canonical bytes.
type OpenedKey = (Fr, [u8; 32]);

/// The slots of `witnesses` (operation numbers from `first`), or the first
/// one's clear error. Every consumed input's key opening, Poseidon(nk), is
/// filed in one hash pool and resolved in one flush (on the CPU lanes),
/// then compared with the register's commitment. Only the first
/// `MAX_INPUTS` of a witness's inputs are opened: one with more is refused
/// for its count before any key is looked at.
pub fn to_slots(witnesses: &[OpWitness], first: usize) -> Result<Vec<SlotAssignment>, ProveError> {
    let pool_error = |e| ProveError::Synthesis(format!("the witnesses' key openings: {e}"));
    let mut pool = HashPool::new();
    let filed: Vec<Vec<(Fr, PoseidonHandle)>> = witnesses
        .iter()
        .map(|w| {
            let mut open = |(_, nk): &(ResourceRegister, [u8; 32])| {
                let key = nullifier_key_field(nk);
                pool.poseidon(HashDomain::NullifierKey, &[key]).map(|handle| (key, handle))
            };
            w.consumed.iter().take(MAX_INPUTS).map(&mut open).collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()
        .map_err(pool_error)?;
    pool.flush().map_err(pool_error)?;
    witnesses
        .iter()
        .zip(&filed)
        .enumerate()
        .map(|(i, (w, keys))| {
            let opened: Vec<OpenedKey> =
                keys.iter().map(|&(key, h)| (key, field_to_bytes(&pool.poseidon_value(h).expect("flushed")))).collect();
            w.slot_with_openings(first + i, &opened)
        })
        .collect()
}

impl OpWitness {
    /// The slot for operation number `index` of the batch, or a clear error
    /// ([`to_slots`] of this one witness).
    pub fn to_slot(&self, index: usize) -> Result<SlotAssignment, ProveError> {
        Ok(to_slots(std::slice::from_ref(self), index)?.remove(0))
    }

    /// [`Self::to_slot`], given each consumed input's key field and opening.
    fn slot_with_openings(&self, index: usize, opened: &[OpenedKey]) -> Result<SlotAssignment, ProveError> {
        let bad = |reason: String| ProveError::InvalidWitness {
            what: format!("operation {index} ({:?})", self.kind),
            reason,
        };
        let (want_consumed, want_created, want_update) = match self.kind {
            OperationKind::Create => (0..=0, 1..=1, false),
            OperationKind::Delete => (1..=1, 0..=0, false),
            OperationKind::Transfer => (1..=MAX_INPUTS, 0..=MAX_OUTPUTS, false),
            OperationKind::Update => (0..=0, 0..=0, true),
            OperationKind::Read | OperationKind::Verify => (0..=0, 0..=0, false),
        };
        if !want_consumed.contains(&self.consumed.len()) {
            return Err(bad(format!("{} consumed resources, expected {want_consumed:?}", self.consumed.len())));
        }
        if !want_created.contains(&self.created.len()) {
            return Err(bad(format!("{} created resources, expected {want_created:?}", self.created.len())));
        }
        if want_update != self.updated.is_some() {
            return Err(bad(format!(
                "before/after registers {}",
                if want_update { "missing" } else { "not expected" }
            )));
        }

        let mut slot = SlotAssignment { kind_code: self.kind.code(), ..SlotAssignment::default() };
        let consumable = consumable_states();
        for (i, ((register, _), (key, opened))) in self.consumed.iter().zip(opened).enumerate() {
            check_nullifier_key(opened, register).map_err(|e| bad(e.to_string()))?;
            if !consumable.contains(&register.state.code()) {
                return Err(bad(format!("consumed resource {} is {:?}", register.id, register.state)));
            }
            slot.inputs[i] = Some(InputAssignment { fields: RegisterFields::of(register), nullifier_key: *key });
        }
        for (j, register) in self.created.iter().enumerate() {
            if register.state != LifecycleState::Active || register.version != 0 {
                return Err(bad(format!(
                    "created resource {} must be Active at version 0, is {:?} at version {}",
                    register.id, register.state, register.version
                )));
            }
            slot.outputs[j] = Some(RegisterFields::of(register));
        }
        if let Some((before, after)) = &self.updated {
            check_update(before, after).map_err(bad)?;
            slot.inputs[0] =
                Some(InputAssignment { fields: RegisterFields::of(before), nullifier_key: Fr::from(0u64) });
            slot.outputs[0] = Some(RegisterFields::of(after));
        }
        if self.kind == OperationKind::Transfer {
            check_conservation(&self.consumed, &self.created).map_err(bad)?;
        }
        Ok(slot)
    }
}

fn check_update(before: &ResourceRegister, after: &ResourceRegister) -> Result<(), String> {
    let kept = [
        ("id", before.id == after.id),
        ("logic", before.logic == after.logic),
        ("domain", before.domain == after.domain),
        ("fungibility_domain", before.fungibility_domain == after.fungibility_domain),
        ("quantity", before.quantity == after.quantity),
        ("nullifier_key_commitment", before.nullifier_key_commitment == after.nullifier_key_commitment),
    ];
    if let Some((name, _)) = kept.iter().find(|(_, same)| !same) {
        return Err(format!("update changed {name}, which must stay the same"));
    }
    if before.version.checked_add(1) != Some(after.version) {
        return Err(format!("update must bump the version by 1 ({} -> {})", before.version, after.version));
    }
    if !allowed_update_transitions().contains(&(before.state.code(), after.state.code())) {
        return Err(format!("lifecycle {:?} -> {:?} is not allowed", before.state, after.state));
    }
    Ok(())
}

fn check_conservation(consumed: &[(ResourceRegister, [u8; 32])], created: &[ResourceRegister]) -> Result<(), String> {
    let domains: Vec<&str> = consumed
        .iter()
        .map(|(r, _)| r.fungibility_domain.as_str())
        .chain(created.iter().map(|r| r.fungibility_domain.as_str()))
        .collect();
    for domain in domains {
        // Distinct strings could share a field encoding only through a BLAKE3 collision.
        let f = fungibility_field(domain);
        let sum_in: u128 = consumed
            .iter()
            .filter(|(r, _)| fungibility_field(&r.fungibility_domain) == f)
            .map(|(r, _)| r.quantity as u128)
            .sum();
        let sum_out: u128 =
            created.iter().filter(|r| fungibility_field(&r.fungibility_domain) == f).map(|r| r.quantity as u128).sum();
        if sum_in != sum_out {
            return Err(format!("quantity not conserved in fungibility domain {domain:?}: {sum_in} in, {sum_out} out"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prove::encoding::RegisterFields;

    fn fields(seed: u64) -> RegisterFields {
        let f = |k: u64| Fr::from(seed * 131 + k);
        RegisterFields {
            id: f(1),
            logic: f(2),
            domain: f(3),
            fungibility_domain: f(4),
            quantity: seed,
            metadata: f(5),
            contents: f(6),
            state: (seed % 4) as u8,
            nk_commitment: f(7),
            controller: f(8),
            version: seed / 3,
        }
    }

    #[test]
    fn batched_public_inputs_equal_the_per_slot_ones() {
        let input = |seed| Some(InputAssignment { fields: fields(seed), nullifier_key: Fr::from(seed + 1000) });
        let slots = vec![
            SlotAssignment::default(),
            // A transfer: two inputs (nullifiers), two outputs.
            SlotAssignment {
                kind_code: OperationKind::Transfer.code(),
                inputs: [input(1), input(2)],
                outputs: [Some(fields(3)), Some(fields(4))],
            },
            // An update: its first input is public as its commitment, not a nullifier.
            SlotAssignment {
                kind_code: OperationKind::Update.code(),
                inputs: [input(5), None],
                outputs: [Some(fields(6)), None],
            },
            SlotAssignment {
                kind_code: OperationKind::Create.code(),
                inputs: [None, None],
                outputs: [None, Some(fields(7))],
            },
            SlotAssignment { kind_code: OperationKind::Delete.code(), inputs: [None, input(8)], outputs: [None, None] },
        ];
        let expected: Vec<Fr> = slots.iter().flat_map(|s| s.public_inputs()).collect();
        assert_eq!(public_inputs_of(&slots), expected);
        assert!(public_inputs_of(&[]).is_empty());
    }
}
