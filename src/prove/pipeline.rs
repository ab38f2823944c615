//! [`ProvingSystem`] as the batch executor's [`ProofSystem`],
//! and the format of the proof record it leaves in the batch log.
//!
//! Record format (`ProofRecord`, system [`SYSTEM_NAME`]):
//! - `proof`: [`KEYED`] and the key set's id (BLAKE3 of its compressed
//!   verifying key, 32 bytes; records of earlier versions lack both), then
//!   `u32le(count)`, then per proof `u64le(len) || BatchProof::to_bytes()`;
//! - `public_inputs`: every proof's public inputs in order, 32 little-endian
//!   bytes each (the same values the proofs carry; checked on decode).

use super::encoding::field_to_bytes;
use super::proof_system::{ProofSystem, ProveStages};
use super::system::{BatchProof, ProvingSystem};
use super::witness::{OpWitness, MAX_INPUTS, MAX_OUTPUTS};
use super::ProveError;
use crate::resource::Operation;
use crate::store::ProofRecord;

pub const SYSTEM_NAME: &str = "groth16-bn254";

/// Marks a record that names the key set which made it (as a proof count,
/// an impossible one: records before it start with their count).
pub const KEYED: u32 = u32::MAX;

/// The batch-log record of `proofs`, made with the key set `key_id`.
pub fn encode_record(proofs: &[BatchProof], key_id: &[u8; 32]) -> ProofRecord {
    let mut proof = Vec::new();
    proof.extend_from_slice(&KEYED.to_le_bytes());
    proof.extend_from_slice(key_id);
    proof.extend_from_slice(&(proofs.len() as u32).to_le_bytes());
    let mut public_inputs = Vec::new();
    for p in proofs {
        let bytes = p.to_bytes();
        proof.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        proof.extend_from_slice(&bytes);
        for x in &p.public_inputs {
            public_inputs.extend_from_slice(&field_to_bytes(x));
        }
    }
    ProofRecord { system: SYSTEM_NAME.into(), proof, public_inputs }
}

/// The proofs of a batch-log record, decoded and validated (points, counts,
/// and the public inputs agreeing with the ones the proofs carry).
pub fn decode_record(record: &ProofRecord) -> Result<Vec<BatchProof>, ProveError> {
    let bad = |reason: String| ProveError::Malformed { what: "batch proof record".into(), reason };
    if record.system != SYSTEM_NAME {
        return Err(bad(format!("made by proof system {:?}, not {SYSTEM_NAME:?}", record.system)));
    }
    let mut rest = record.proof.as_slice();
    let mut take = |n: usize, what: &str| -> Result<&[u8], ProveError> {
        if rest.len() < n {
            return Err(bad(format!("truncated {what}: {} bytes left, {n} needed", rest.len())));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut count = u32::from_le_bytes(take(4, "proof count")?.try_into().unwrap_or_default());
    if count == KEYED {
        take(32, "key set id")?;
        count = u32::from_le_bytes(take(4, "proof count")?.try_into().unwrap_or_default());
    }
    let count = count as usize;
    if count == 0 {
        return Err(bad("no proofs".into()));
    }
    let mut proofs = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let len = u64::from_le_bytes(take(8, "proof length")?.try_into().unwrap_or_default());
        let len = usize::try_from(len).map_err(|_| bad(format!("proof {i}: length {len} too large")))?;
        let proof =
            BatchProof::from_bytes(take(len, "proof")?).map_err(|e| bad(format!("proof {i} of {count}: {e}")))?;
        proofs.push(proof);
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes after {count} proofs", rest.len())));
    }
    let carried: Vec<u8> = proofs.iter().flat_map(|p| p.public_inputs.iter().flat_map(field_to_bytes)).collect();
    if carried != record.public_inputs {
        return Err(bad("the record's public inputs differ from the ones its proofs carry".into()));
    }
    Ok(proofs)
}

/// The id of the key set that made a record (None: an earlier version's
/// record, which does not say).
pub fn record_key_id(record: &ProofRecord) -> Option<[u8; 32]> {
    let bytes = record.proof.as_slice();
    (bytes.get(..4)? == KEYED.to_le_bytes()).then(|| bytes.get(4..36)?.try_into().ok()).flatten()
}

/// The id a key set is known by: BLAKE3 of its compressed verifying key.
pub fn key_id(vk: &ark_groth16::VerifyingKey<ark_bn254::Bn254>) -> [u8; 32] {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ark_serialize::CanonicalSerialize::serialize_compressed(vk, &mut bytes);
    *blake3::hash(&bytes).as_bytes()
}

impl ProvingSystem {
    /// Proves a batch's witnesses (chunks of K) into one batch-log record.
    pub fn prove_record(&self, witnesses: &[OpWitness]) -> Result<(ProofRecord, ProveStages), ProveError> {
        let (proofs, timings) = if witnesses.is_empty() {
            // A batch of failed operations still gets one proof (of empty
            // slots) so every committed batch carries one.
            let mut timings = ProveStages::default();
            let slots = vec![Default::default(); self.ops_per_proof()];
            (vec![self.prove_slots(slots, 0, &mut timings)?], timings)
        } else {
            self.prove_batch_timed(witnesses)?
        };
        let stages = ProveStages { proofs: proofs.len() as u64, ..timings };
        Ok((encode_record(&proofs, &key_id(self.verifying_key())), stages))
    }

    /// Checks every proof of a batch-log record against the verifying key.
    pub fn verify_record(&self, record: &ProofRecord) -> Result<usize, ProveError> {
        let proofs = decode_record(record)?;
        for (i, p) in proofs.iter().enumerate() {
            self.verify(p).map_err(|e| ProveError::Rejected(format!("proof {i} of {}: {e}", proofs.len())))?;
        }
        Ok(proofs.len())
    }
}

impl ProofSystem for ProvingSystem {
    fn name(&self) -> String {
        SYSTEM_NAME.into()
    }

    fn backend(&self) -> Option<crate::backend::ResolvedBackend> {
        Some(ProvingSystem::backend(self))
    }

    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        self.prove_record(witnesses).map(|(record, _)| record)
    }

    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        self.verify_record(record).map(|_| ())
    }

    fn prove_timed(&self, witnesses: &[OpWitness]) -> Result<(ProofRecord, Option<ProveStages>), ProveError> {
        self.prove_record(witnesses).map(|(record, stages)| (record, Some(stages)))
    }

    /// A slot holds at most MAX_INPUTS consumed and MAX_OUTPUTS created
    /// resources: a wider Transfer cannot be proven and fails on its own.
    fn admits(&self, op: &Operation) -> Result<(), ProveError> {
        match op {
            Operation::Transfer { inputs, outputs } if inputs.len() > MAX_INPUTS || outputs.len() > MAX_OUTPUTS => {
                Err(ProveError::Inadmissible(format!(
                    "a Transfer with {} inputs and {} outputs does not fit one {SYSTEM_NAME} proof slot \
                     (at most {MAX_INPUTS} inputs and {MAX_OUTPUTS} outputs): split it into several transfers, \
                     or run without proofs (--no-prove)",
                    inputs.len(),
                    outputs.len()
                )))
            }
            _ => Ok(()),
        }
    }
}
