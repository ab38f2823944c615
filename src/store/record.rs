//! The batch log: one record per committed batch.

use serde::Serialize;

use super::codec::{Decoder, Encoder};
use super::StoreError;

/// Wall-clock time spent per pipeline stage, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageTimings {
    pub execute_us: u64,
    pub hash_us: u64,
    pub prove_us: u64,
    /// The durable append and the apply. A stored record gets it once the
    /// batch is applied (its checkpointed copy); in the log's copy, written
    /// before the append finished, and so after a crash, it is 0: unknown.
    pub commit_us: u64,
}

/// Proofs of a batch, kept opaque here: the proving system owns their format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProofRecord {
    /// Which proving system produced `proof` (e.g. "groth16-bn254").
    pub system: String,
    #[serde(with = "crate::resource::serde_hex")]
    pub proof: Vec<u8>,
    #[serde(with = "crate::resource::serde_hex")]
    pub public_inputs: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchRecord {
    pub number: u64,
    pub trace_id: String,
    pub domain: String,
    pub mode: String,
    /// The context's timestamp.
    pub timestamp: u64,
    pub ops_count: u64,
    pub success_count: u64,
    pub created: u64,
    pub updated: u64,
    pub consumed: u64,
    #[serde(with = "crate::resource::serde_hex32")]
    pub state_root_before: [u8; 32],
    #[serde(with = "crate::resource::serde_hex32")]
    pub state_root_after: [u8; 32],
    pub timings: StageTimings,
    pub proof: Option<ProofRecord>,
    /// The request id of the service job that committed the batch (written
    /// after the proof, only when set: records without it keep the encoding
    /// of earlier versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

const RECORD_TAG: u8 = 0xB1;

impl BatchRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(256);
        e.u8(RECORD_TAG);
        e.u64(self.number);
        e.str(&self.trace_id);
        e.str(&self.domain);
        e.str(&self.mode);
        for v in [self.timestamp, self.ops_count, self.success_count, self.created, self.updated, self.consumed] {
            e.u64(v);
        }
        e.fixed(&self.state_root_before);
        e.fixed(&self.state_root_after);
        let t = &self.timings;
        for v in [t.execute_us, t.hash_us, t.prove_us, t.commit_us] {
            e.u64(v);
        }
        match &self.proof {
            None => e.u8(0),
            Some(p) => {
                e.u8(1);
                e.str(&p.system);
                e.bytes(&p.proof);
                e.bytes(&p.public_inputs);
            }
        }
        if let Some(request) = &self.request_id {
            e.str(request);
        }
        e.buf
    }

    pub fn decode(data: &[u8]) -> Result<Self, StoreError> {
        let mut d = Decoder::new(data, "batch record");
        let tag = d.u8()?;
        if tag != RECORD_TAG {
            return Err(StoreError::Corrupt {
                what: "batch record".into(),
                offset: None,
                reason: format!("unknown record tag {tag:#x}"),
            });
        }
        let number = d.u64()?;
        let trace_id = d.string()?;
        let domain = d.string()?;
        let mode = d.string()?;
        let mut counts = [0u64; 6];
        for c in &mut counts {
            *c = d.u64()?;
        }
        let state_root_before = d.array32()?;
        let state_root_after = d.array32()?;
        let mut t = [0u64; 4];
        for v in &mut t {
            *v = d.u64()?;
        }
        let proof = match d.u8()? {
            0 => None,
            _ => Some(ProofRecord { system: d.string()?, proof: d.bytes()?, public_inputs: d.bytes()? }),
        };
        let request_id = if d.at_end() { None } else { Some(d.string()?) };
        d.finish()?;
        let [timestamp, ops_count, success_count, created, updated, consumed] = counts;
        Ok(BatchRecord {
            number,
            trace_id,
            domain,
            mode,
            timestamp,
            ops_count,
            success_count,
            created,
            updated,
            consumed,
            state_root_before,
            state_root_after,
            timings: StageTimings { execute_us: t[0], hash_us: t[1], prove_us: t[2], commit_us: t[3] },
            proof,
            request_id,
        })
    }
}
