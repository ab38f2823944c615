//! `ProveOps` jobs: compliance proofs for operations executed elsewhere, on
//! the resident key set; the server's store is not touched.

use super::keys::KeySets;
use super::{BadPayload, Progress, WorkError};
use crate::prove::ops_document::{prove_document_until, OpsDocument};
use crate::prove::OpWitness;
use crate::service::proto::{ProveOpsJob, ProveOpsResult};
use crate::ResolvedBackend;

/// A checked job: its witnesses and key set size.
pub struct Parsed {
    witnesses: Vec<OpWitness>,
    ops_per_proof: usize,
}

pub fn parse(job: &ProveOpsJob) -> Result<Parsed, BadPayload> {
    let ops_per_proof = super::batch::ops_per_proof(job.ops_per_proof);
    crate::prove::check_ops_per_proof(ops_per_proof)
        .map_err(|e| BadPayload::new("prove_ops.ops_per_proof", e.to_string()))?;
    let field = |e: crate::prove::ProveError| BadPayload::new("prove_ops.witnesses_json", e.to_string());
    let witnesses = OpsDocument::parse(&job.witnesses_json).and_then(|doc| doc.witnesses()).map_err(field)?;
    Ok(Parsed { witnesses, ops_per_proof })
}

/// The proofs document and where the proofs' MSMs ran.
pub fn run(
    parsed: Parsed,
    keys: &KeySets,
    progress: &dyn Progress,
) -> Result<Option<(ProveOpsResult, ResolvedBackend, ResolvedBackend, u64)>, WorkError> {
    if !progress.stage("load keys") {
        return Ok(None);
    }
    let system = keys.get(parsed.ops_per_proof)?;
    if !progress.stage("prove") {
        return Ok(None);
    }
    // Between proofs: the progress, and where a cancel stops the job.
    let go_on = |done: usize, total: usize| progress.progress(done as f64 / total as f64);
    let proven = prove_document_until(&system, &parsed.witnesses, go_on).map_err(|e| match e {
        crate::prove::ProveError::InvalidWitness { .. } | crate::prove::ProveError::Unsatisfied { .. } => {
            WorkError::Bad(BadPayload::new("prove_ops.witnesses_json", e.to_string()))
        }
        other => WorkError::Internal(format!("proving: {other}")),
    })?;
    let Some(document) = proven else { return Ok(None) };
    let proofs = document.proofs.len() as u64;
    let json = serde_json::to_string_pretty(&document).map_err(|e| WorkError::Internal(e.to_string()))?;
    // Where the MSMs ran (the GPU only when all of them did), and the quotients.
    let ran = document.stages.msm_backend().unwrap_or_else(|| system.backend());
    let quotient = document.stages.quotient_backend().unwrap_or_else(|| system.quotient_backend());
    Ok(Some((ProveOpsResult { proofs_json: json }, ran, quotient, proofs)))
}
