//! The compliance circuit: K operation slots, each proving its operation's
//! rules over Poseidon commitments. See docs/PROVING.md for the statement.

use ark_bn254::Fr;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

use super::encoding::{active_code, RegisterFields};
use super::poseidon::{hash_var, HashDomain};
use super::witness::{
    allowed_update_transitions, consumable_states, public_inputs_of, InputAssignment, SlotAssignment, EMPTY_SLOT_CODE,
    MAX_INPUTS, MAX_OUTPUTS, PUBLIC_PER_SLOT,
};
use crate::resource::{LifecycleState, OperationKind};

/// Bumped whenever the constraints change; part of the key directory name.
pub const CIRCUIT_VERSION: u32 = 1;

/// The statement for one proof: K slots and their public inputs.
#[derive(Clone, Debug)]
pub struct ComplianceCircuit {
    pub slots: Vec<SlotAssignment>,
    /// `PUBLIC_PER_SLOT` values per slot, normally `slot.public_inputs()`.
    pub public: Vec<Fr>,
}

impl ComplianceCircuit {
    /// The honest circuit for `slots` (public inputs computed natively, their
    /// hashes batched in a hash pool).
    pub fn new(slots: Vec<SlotAssignment>) -> Self {
        let public = public_inputs_of(&slots);
        ComplianceCircuit { slots, public }
    }

    /// K padding slots: the shape used for setup and digests.
    pub fn empty(ops_per_proof: usize) -> Self {
        ComplianceCircuit::new(vec![SlotAssignment::default(); ops_per_proof])
    }
}

impl ConstraintSynthesizer<Fr> for ComplianceCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        if self.public.len() != self.slots.len() * PUBLIC_PER_SLOT {
            return Err(SynthesisError::AssignmentMissing);
        }
        for (slot, public) in self.slots.iter().zip(self.public.chunks(PUBLIC_PER_SLOT)) {
            slot_constraints(cs.clone(), slot, public)?;
        }
        Ok(())
    }
}

/// A register's field encoding as circuit variables; quantity and version
/// are built from 64 bits each, which is their range check.
struct RegisterVars {
    id: FpVar<Fr>,
    logic: FpVar<Fr>,
    domain: FpVar<Fr>,
    fungibility_domain: FpVar<Fr>,
    quantity: FpVar<Fr>,
    metadata: FpVar<Fr>,
    contents: FpVar<Fr>,
    state: FpVar<Fr>,
    nk_commitment: FpVar<Fr>,
    controller: FpVar<Fr>,
    version: FpVar<Fr>,
}

impl RegisterVars {
    fn alloc(cs: ConstraintSystemRef<Fr>, f: &RegisterFields) -> Result<Self, SynthesisError> {
        let w = |v: Fr| FpVar::new_witness(cs.clone(), || Ok(v));
        Ok(RegisterVars {
            id: w(f.id)?,
            logic: w(f.logic)?,
            domain: w(f.domain)?,
            fungibility_domain: w(f.fungibility_domain)?,
            quantity: alloc_u64(cs.clone(), f.quantity)?,
            metadata: w(f.metadata)?,
            contents: w(f.contents)?,
            state: w(Fr::from(f.state as u64))?,
            nk_commitment: w(f.nk_commitment)?,
            controller: w(f.controller)?,
            version: alloc_u64(cs.clone(), f.version)?,
        })
    }

    /// Same order as `RegisterFields::to_vec`.
    fn to_vec(&self) -> Vec<FpVar<Fr>> {
        vec![
            self.id.clone(),
            self.logic.clone(),
            self.domain.clone(),
            self.fungibility_domain.clone(),
            self.quantity.clone(),
            self.metadata.clone(),
            self.contents.clone(),
            self.state.clone(),
            self.nk_commitment.clone(),
            self.controller.clone(),
            self.version.clone(),
        ]
    }
}

/// A 64-bit value as the sum of 64 boolean witnesses (its range check).
fn alloc_u64(cs: ConstraintSystemRef<Fr>, value: u64) -> Result<FpVar<Fr>, SynthesisError> {
    let mut sum = FpVar::zero();
    let mut weight = Fr::from(1u64);
    for i in 0..64 {
        let bit = Boolean::new_witness(cs.clone(), || Ok((value >> i) & 1 == 1))?;
        sum += FpVar::from(bit) * weight;
        weight = weight + weight;
    }
    Ok(sum)
}

fn constant(v: u64) -> FpVar<Fr> {
    FpVar::Constant(Fr::from(v))
}

/// `gate * value == 0`: the rule `value == 0` enforced only where `gate` is 1.
fn zero_when(gate: &FpVar<Fr>, value: &FpVar<Fr>) -> Result<(), SynthesisError> {
    value.mul_equals(gate, &FpVar::zero())
}

/// `Π (x - c)` over `codes`: zero exactly when `x` is one of them.
fn one_of(x: &FpVar<Fr>, codes: impl IntoIterator<Item = u64>) -> FpVar<Fr> {
    codes.into_iter().fold(FpVar::one(), |acc, c| acc * (x - constant(c)))
}

fn slot_constraints(cs: ConstraintSystemRef<Fr>, slot: &SlotAssignment, public: &[Fr]) -> Result<(), SynthesisError> {
    let pubs = public.iter().map(|v| FpVar::new_input(cs.clone(), || Ok(*v))).collect::<Result<Vec<_>, _>>()?;

    // One-hot kind selectors; the public kind is their weighted sum.
    let selectors = (0..=EMPTY_SLOT_CODE)
        .map(|c| Boolean::new_witness(cs.clone(), || Ok(slot.kind_code == c)).map(FpVar::from))
        .collect::<Result<Vec<_>, _>>()?;
    selectors.iter().fold(FpVar::zero(), |acc, s| acc + s).enforce_equal(&FpVar::one())?;
    let kind = selectors.iter().enumerate().fold(FpVar::zero(), |acc, (c, s)| acc + s * Fr::from(c as u64));
    kind.enforce_equal(&pubs[0])?;
    let is = |k: OperationKind| selectors[k.code() as usize].clone();
    let (create, update, delete, transfer) =
        (is(OperationKind::Create), is(OperationKind::Update), is(OperationKind::Delete), is(OperationKind::Transfer));

    // Which sub-slots are in use: fixed by the kind, except Transfer's optional ones.
    let transfer_option = |used: bool| -> Result<FpVar<Fr>, SynthesisError> {
        let flag = FpVar::from(Boolean::new_witness(cs.clone(), || Ok(used))?);
        zero_when(&(FpVar::one() - &transfer), &flag)?;
        Ok(flag)
    };
    let is_transfer = slot.kind_code == OperationKind::Transfer.code();
    let in_used = [&update + &delete + &transfer, transfer_option(slot.inputs[1].is_some())?];
    let out_used = [
        &create + &update + transfer_option(is_transfer && slot.outputs[0].is_some())?,
        transfer_option(slot.outputs[1].is_some())?,
    ];

    let mut inputs = Vec::with_capacity(MAX_INPUTS);
    for i in 0..MAX_INPUTS {
        let a: InputAssignment = slot.inputs[i].unwrap_or_default();
        let reg = RegisterVars::alloc(cs.clone(), &a.fields)?;
        let nk = FpVar::new_witness(cs.clone(), || Ok(a.nullifier_key))?;
        let cm = hash_var(cs.clone(), HashDomain::Commitment, &reg.to_vec())?;
        // Consumption (not Update's prior state) needs the key and a consumable state.
        let needs_key = if i == 0 { &in_used[i] - &update } else { in_used[i].clone() };
        let nk_commitment = hash_var(cs.clone(), HashDomain::NullifierKey, std::slice::from_ref(&nk))?;
        zero_when(&needs_key, &(nk_commitment - &reg.nk_commitment))?;
        zero_when(&needs_key, &one_of(&reg.state, consumable_states().into_iter().map(u64::from)))?;
        let nullifier = hash_var(cs.clone(), HashDomain::Nullifier, &[nk, cm.clone()])?;
        let revealed = if i == 0 { &nullifier + &update * (&cm - &nullifier) } else { nullifier };
        in_used[i].mul_equals(&revealed, &pubs[1 + i])?;
        inputs.push(reg);
    }

    let mut outputs = Vec::with_capacity(MAX_OUTPUTS);
    for j in 0..MAX_OUTPUTS {
        let f = slot.outputs[j].unwrap_or_default();
        let reg = RegisterVars::alloc(cs.clone(), &f)?;
        let cm = hash_var(cs.clone(), HashDomain::Commitment, &reg.to_vec())?;
        out_used[j].mul_equals(&cm, &pubs[1 + MAX_INPUTS + j])?;
        // Newly created resources start Active at version 0.
        let created = if j == 0 { &out_used[j] - &update } else { out_used[j].clone() };
        zero_when(&created, &(&reg.state - constant(active_code() as u64)))?;
        zero_when(&created, &reg.version)?;
        outputs.push(reg);
    }

    update_rules(&update, &inputs[0], &outputs[0])?;
    conservation(&transfer, &inputs, &outputs, &in_used, &out_used)
}

/// Update keeps identity, logic, domain, fungibility, quantity and key; bumps
/// the version by one; and takes an allowed lifecycle step (or none).
fn update_rules(update: &FpVar<Fr>, before: &RegisterVars, after: &RegisterVars) -> Result<(), SynthesisError> {
    let kept = [
        (&before.id, &after.id),
        (&before.logic, &after.logic),
        (&before.domain, &after.domain),
        (&before.fungibility_domain, &after.fungibility_domain),
        (&before.quantity, &after.quantity),
        (&before.nk_commitment, &after.nk_commitment),
    ];
    for (a, b) in kept {
        zero_when(update, &(a - b))?;
    }
    zero_when(update, &(&after.version - &before.version - FpVar::one()))?;
    // Both states must be lifecycle codes, so the step below decodes uniquely.
    let codes = || LifecycleState::ALL.iter().map(|s| s.code() as u64);
    zero_when(update, &one_of(&before.state, codes()))?;
    zero_when(update, &one_of(&after.state, codes()))?;
    let step = &before.state * Fr::from(8u64) + &after.state;
    let allowed = allowed_update_transitions().into_iter().map(|(from, to)| from as u64 * 8 + to as u64);
    zero_when(update, &one_of(&step, allowed))
}

/// Transfer: for every fungibility domain present, used inputs and used
/// outputs of that domain carry equal total quantity.
fn conservation(
    transfer: &FpVar<Fr>,
    inputs: &[RegisterVars],
    outputs: &[RegisterVars],
    in_used: &[FpVar<Fr>],
    out_used: &[FpVar<Fr>],
) -> Result<(), SynthesisError> {
    let mut domains = Vec::new();
    let mut used = Vec::new();
    let mut signed = Vec::new();
    for (reg, u) in inputs.iter().zip(in_used) {
        domains.push(&reg.fungibility_domain);
        used.push(u.clone());
        signed.push(u * &reg.quantity);
    }
    for (reg, u) in outputs.iter().zip(out_used) {
        domains.push(&reg.fungibility_domain);
        used.push(u.clone());
        signed.push(FpVar::zero() - u * &reg.quantity);
    }
    let n = domains.len();
    let mut same = vec![vec![None; n]; n];
    for a in 0..n {
        for b in a + 1..n {
            let eq = FpVar::from(domains[a].is_eq(domains[b])?);
            same[a][b] = Some(eq.clone());
            same[b][a] = Some(eq);
        }
    }
    for a in 0..n {
        let mut net = signed[a].clone();
        for b in (0..n).filter(|&b| b != a) {
            if let Some(eq) = &same[a][b] {
                net += eq * &signed[b];
            }
        }
        zero_when(&(transfer * &used[a]), &net)?;
    }
    Ok(())
}
