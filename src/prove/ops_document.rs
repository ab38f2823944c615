//! The documents of proving operations executed elsewhere (`cvm prove-ops`,
//! the service's `ProveOps` jobs): the witnesses in, the compliance proofs
//! out in snarkjs's JSON shapes, with the verifying key to check them.
//!
//! In:
//! ```json
//! {"ops": [
//!   {"kind": "Create", "created": [REGISTER]},
//!   {"kind": "Transfer", "consumed": [{"register": REGISTER, "nullifier_key": "<64 hex>"}], "created": [REGISTER]},
//!   {"kind": "Update", "before": REGISTER, "after": REGISTER},
//!   {"kind": "Delete", "consumed": [{"register": REGISTER, "nullifier_key": "<64 hex>"}]},
//!   {"kind": "Read"}
//! ]}
//! ```
//! where REGISTER is a register as `cvm state register ID --json` prints it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::snarkjs::{proof_to_json, public_to_json, vk_to_json};
use super::{OpWitness, ProveError, ProveStages, ProvingSystem};
use crate::resource::{OperationKind, ResourceRegister};

/// The most operations one document may carry.
pub const MAX_DOCUMENT_OPS: usize = 1 << 16;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpsDocument {
    #[serde(deserialize_with = "bounded_ops")]
    pub ops: Vec<OpEntry>,
}

/// The `ops` list, refused as soon as it passes [`MAX_DOCUMENT_OPS`]: a
/// hostile document never holds more than that in memory.
fn bounded_ops<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<OpEntry>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<OpEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_DOCUMENT_OPS} operations")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut ops = Vec::new();
            while let Some(op) = seq.next_element()? {
                if ops.len() == MAX_DOCUMENT_OPS {
                    return Err(serde::de::Error::custom(format!("more than {MAX_DOCUMENT_OPS} operations")));
                }
                ops.push(op);
            }
            Ok(ops)
        }
    }
    d.deserialize_seq(Bounded)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpEntry {
    pub kind: OperationKind,
    #[serde(default)]
    pub consumed: Vec<ConsumedEntry>,
    #[serde(default)]
    pub created: Vec<ResourceRegister>,
    #[serde(default)]
    pub before: Option<ResourceRegister>,
    #[serde(default)]
    pub after: Option<ResourceRegister>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumedEntry {
    pub register: ResourceRegister,
    #[serde(with = "crate::resource::serde_hex32")]
    pub nullifier_key: [u8; 32],
}

impl OpsDocument {
    /// Parse a document; errors name the field (`ops[2].consumed[0].nullifier_key`).
    pub fn parse(text: &[u8]) -> Result<OpsDocument, ProveError> {
        let malformed = |reason: String| ProveError::Malformed { what: "operations document".into(), reason };
        let mut de = serde_json::Deserializer::from_slice(text);
        let doc: OpsDocument =
            serde_path_to_error::deserialize(&mut de).map_err(|e| malformed(format!("{}: {}", e.path(), e.inner())))?;
        de.end().map_err(|e| malformed(e.to_string()))?;
        if doc.ops.is_empty() {
            return Err(malformed("ops: empty; nothing to prove".into()));
        }
        for (i, op) in doc.ops.iter().enumerate() {
            if op.before.is_some() != op.after.is_some() {
                return Err(malformed(format!("ops[{i}]: before and after go together")));
            }
        }
        Ok(doc)
    }

    /// The document of executed operations' witnesses (what
    /// [`OpsDocument::witnesses`] reads back).
    pub fn of(witnesses: &[OpWitness]) -> OpsDocument {
        let ops = witnesses
            .iter()
            .map(|w| OpEntry {
                kind: w.kind,
                consumed: w
                    .consumed
                    .iter()
                    .map(|(register, nullifier_key)| ConsumedEntry {
                        register: register.clone(),
                        nullifier_key: *nullifier_key,
                    })
                    .collect(),
                created: w.created.clone(),
                before: w.updated.as_ref().map(|(before, _)| before.clone()),
                after: w.updated.as_ref().map(|(_, after)| after.clone()),
            })
            .collect();
        OpsDocument { ops }
    }

    /// The witnesses, each checked as the prover will check it (a key that
    /// does not open its commitment, a wrong shape), so a bad document is
    /// refused before any proving work.
    pub fn witnesses(&self) -> Result<Vec<OpWitness>, ProveError> {
        let witnesses: Vec<OpWitness> = self
            .ops
            .iter()
            .map(|op| OpWitness {
                kind: op.kind,
                consumed: op.consumed.iter().map(|c| (c.register.clone(), c.nullifier_key)).collect(),
                created: op.created.clone(),
                updated: op.before.clone().zip(op.after.clone()),
            })
            .collect();
        super::witness::to_slots(&witnesses, 0)?;
        Ok(witnesses)
    }
}

/// One proof with its operations' public inputs, in snarkjs's shapes.
#[derive(Debug, Serialize)]
pub struct ProofEntry {
    /// Operations this proof covers (the first `ops` slots; the rest are padding).
    pub ops: usize,
    /// The index in the document of its first operation.
    pub first_op: usize,
    pub proof: Value,
    pub public: Value,
}

#[derive(Debug, Serialize)]
pub struct ProofsDocument {
    pub system: String,
    pub ops_per_proof: usize,
    pub proofs: Vec<ProofEntry>,
    /// The verifying key (snarkjs `verification_key.json`).
    pub verification_key: Value,
    pub stages: ProveStages,
    /// Where each stage ran: `gpu` only when all of its work did.
    pub backends: DocumentBackends,
}

/// The backends of a document's proofs, from their stages' counts.
#[derive(Clone, Debug, Serialize)]
pub struct DocumentBackends {
    pub quotient: Option<crate::ResolvedBackend>,
    pub msm_g1: Option<crate::ResolvedBackend>,
    pub msm_g2: Option<crate::ResolvedBackend>,
}

/// Prove every operation of `witnesses`, `ops_per_proof` to a proof; each
/// proof is verified before it is returned.
pub fn prove_document(system: &ProvingSystem, witnesses: &[OpWitness]) -> Result<ProofsDocument, ProveError> {
    let proven = prove_document_until(system, witnesses, |_, _| true)?;
    Ok(proven.expect("never asked to stop"))
}

/// [`prove_document`], asking `go_on(done, total)` after each proof
/// whether to make the next: None when it said no.
pub fn prove_document_until(
    system: &ProvingSystem,
    witnesses: &[OpWitness],
    go_on: impl FnMut(usize, usize) -> bool,
) -> Result<Option<ProofsDocument>, ProveError> {
    let Some((proofs, stages)) = system.prove_batch_until(witnesses, go_on)? else { return Ok(None) };
    let k = system.ops_per_proof();
    let proofs = proofs
        .iter()
        .enumerate()
        .map(|(i, p)| ProofEntry {
            ops: p.ops,
            first_op: i * k,
            proof: proof_to_json(&p.proof),
            public: public_to_json(&p.public_inputs),
        })
        .collect();
    Ok(Some(ProofsDocument {
        system: super::pipeline::SYSTEM_NAME.to_string(),
        ops_per_proof: k,
        proofs,
        verification_key: vk_to_json(system.verifying_key()),
        backends: DocumentBackends {
            quotient: stages.quotient_backend(),
            msm_g1: stages.msm_g1_backend(),
            msm_g2: stages.msm_g2_backend(),
        },
        stages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_past_the_limit_is_refused_while_it_is_read() {
        let entry = r#"{"kind":"Read"}"#;
        let at_limit = format!(r#"{{"ops":[{}]}}"#, vec![entry; MAX_DOCUMENT_OPS].join(","));
        assert_eq!(OpsDocument::parse(at_limit.as_bytes()).unwrap().ops.len(), MAX_DOCUMENT_OPS);
        let over = format!(r#"{{"ops":[{}]}}"#, vec![entry; MAX_DOCUMENT_OPS + 1].join(","));
        let err = OpsDocument::parse(over.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(&format!("ops: more than {MAX_DOCUMENT_OPS} operations")), "{err}");
        let err = OpsDocument::parse(br#"{"ops":[{"kind":"Read","x":1}]}"#).unwrap_err().to_string();
        assert!(err.contains("ops[0]"), "{err}");
    }
}
