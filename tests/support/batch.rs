//! Shared fixtures for the batch and store integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ark_bn254::Fr;
use causality_vm::batch::{execute_batch, BatchExecutionResult, OpWitness, ProofSystem, TransactionContext};
use causality_vm::capability::{CapabilityToken, KeyRing, RootKey};
use causality_vm::crypto::field::field_to_bytes;
use causality_vm::crypto::poseidon::{self, HashDomain};
use causality_vm::prove::ProveError;
use causality_vm::resource::{
    nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceId, ResourceUpdate,
};
use causality_vm::store::{ProofRecord, RegisterStore};
use causality_vm::vm::memory::{field, DATA_BASE, SCRATCH_BASE};
use causality_vm::vm::{BinOp, Compare, Instruction, Program, Reg};
use causality_vm::{ContentId, DomainId, ExecutionContext, ExecutionMode};

pub const DOMAIN: &str = "test.domain";

pub fn root_key() -> RootKey {
    RootKey([0x42; 32])
}

pub fn nullifier_key(seed: u64) -> [u8; 32] {
    *blake3::hash(&seed.to_le_bytes()).as_bytes()
}

/// The register's nullifier-key commitment (Poseidon, the one the circuit proves).
pub fn key_commitment(nk: &[u8; 32]) -> [u8; 32] {
    nullifier_key_commitment(nk)
}

pub fn accept_program() -> Program {
    Program::new(vec![Instruction::Accept], Vec::new()).expect("valid program")
}

/// HASH "abc", then POSEIDON of the subject's quantity mod 8; reject unless
/// the run's handles are 0 and 1 (the program sees its run's request
/// numbers, wherever its operation sits and whichever thread runs it), then
/// assert the BLAKE3 digest is `expected` and the Poseidon value is entry
/// `quantity mod 8` of a table (both checked at the flush). The table holds
/// Poseidon(i + `rotate`) at entry i, so `rotate` = 1 makes every Poseidon
/// assertion fail. The value differs from operation to operation, so a
/// Poseidon handle moved wrongly when operations run ahead merge would find
/// another operation's request.
pub fn hashing_logic(expected: [u8; 32], rotate: u64) -> Program {
    let mut data = Vec::new();
    data.extend_from_slice(&32u32.to_le_bytes());
    data.extend_from_slice(&expected);
    data.extend_from_slice(&6u32.to_le_bytes());
    data.extend_from_slice(b"handle");
    let table = DATA_BASE + data.len() as u32;
    for i in 0..8u64 {
        data.extend_from_slice(&field_to_bytes(&poseidon::hash(HashDomain::Logic, &[Fr::from((i + rotate) % 8)])));
    }
    let scratch = SCRATCH_BASE;
    let reject = 8 * 25;
    let bin = |op, rd, ra, rb| Instruction::Bin { op, rd: reg(rd), ra: reg(ra), rb: reg(rb) };
    Program::new(
        vec![
            Instruction::LoadImm { rd: reg(1), imm: u32::from_le_bytes(*b"abc\0") },
            Instruction::Store { src: reg(1), addr: scratch },
            Instruction::LoadImm { rd: reg(2), imm: 3 },
            Instruction::LoadHigh { rd: reg(2), imm: scratch },
            Instruction::Hash { rd: reg(3), ra: reg(2) },
            Instruction::Jnz { cond: reg(3), target: reject },
            Instruction::Load { rd: reg(6), addr: field::QUANTITY },
            Instruction::LoadImm { rd: reg(11), imm: 8 },
            bin(BinOp::Mod, 6, 6, 11),
            Instruction::Store { src: reg(6), addr: scratch + 32 },
            Instruction::LoadImm { rd: reg(9), imm: 32 },
            Instruction::LoadHigh { rd: reg(9), imm: scratch + 32 },
            Instruction::Poseidon { rd: reg(7), ra: reg(9) },
            Instruction::JumpCmpImm { cmp: Compare::Ne, ra: reg(7), imm: 1, target: reject },
            Instruction::Str { rd: reg(4), offset: 0 },
            Instruction::AssertDigest { handle: reg(3), expected: reg(4) },
            // The slice of table entry quantity mod 8: (table + 32 i) << 32 | 32.
            Instruction::LoadImm { rd: reg(12), imm: 32 },
            bin(BinOp::Mul, 6, 6, 12),
            Instruction::AddImm { rd: reg(6), ra: reg(6), imm: table },
            Instruction::LoadImm { rd: reg(13), imm: 0 },
            Instruction::LoadHigh { rd: reg(13), imm: 1 },
            bin(BinOp::Mul, 6, 6, 13),
            bin(BinOp::Or, 6, 6, 12),
            Instruction::AssertDigest { handle: reg(7), expected: reg(6) },
            Instruction::Accept,
            Instruction::Str { rd: reg(5), offset: 36 },
            Instruction::Reject { reason: reg(5), code: 3 },
        ],
        data,
    )
    .expect("valid program")
}

fn reg(n: u8) -> Reg {
    Reg::new(n).expect("register")
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: RegisterStore,
    pub keys: KeyRing,
    pub ctx: ExecutionContext,
    pub accept: ContentId,
    pub nonce: u64,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegisterStore::open(dir.path()).expect("open store");
        let accept = store.put_content(&accept_program().encode()).expect("store program");
        let mut keys = KeyRing::new();
        keys.insert(DomainId::new(DOMAIN), root_key());
        let token = CapabilityToken::mint(&root_key(), DomainId::new(DOMAIN), [1; 16]);
        let ctx = ExecutionContext {
            domain_id: DomainId::new(DOMAIN),
            trace_id: "test".into(),
            capability_token: token,
            timestamp: 1_000,
            environment: BTreeMap::new(),
            cross_domain_grants: Vec::new(),
        };
        Fixture { dir, store, keys, ctx, accept, nonce: 0 }
    }

    pub fn reopen(&mut self) {
        let dir = self.dir.path().to_path_buf();
        // Drop the old handle first: redb allows one open handle per file.
        let placeholder_dir = tempfile::tempdir().expect("temp dir");
        let old = std::mem::replace(&mut self.store, RegisterStore::open(placeholder_dir.path()).expect("open"));
        drop(old);
        self.store = RegisterStore::open(&dir).expect("reopen store");
    }

    /// A new resource with a fresh nonce, owned by nullifier key `seed`.
    pub fn resource(&mut self, fungibility: &str, quantity: u64, seed: u64) -> NewResource {
        self.resource_with_logic(self.accept, fungibility, quantity, seed)
    }

    pub fn resource_with_logic(
        &mut self,
        logic: ContentId,
        fungibility: &str,
        quantity: u64,
        seed: u64,
    ) -> NewResource {
        self.nonce += 1;
        NewResource {
            logic,
            domain: DomainId::new(DOMAIN),
            fungibility_domain: fungibility.into(),
            quantity,
            metadata: BTreeMap::new(),
            contents: Vec::new(),
            nullifier_key_commitment: key_commitment(&nullifier_key(seed)),
            controller: format!("owner-{seed}").into(),
            nonce: *blake3::hash(&self.nonce.to_le_bytes()).as_bytes(),
        }
    }

    pub fn run(&mut self, ops: &[Operation], tx: &TransactionContext) -> BatchExecutionResult {
        execute_batch(&mut self.store, &self.keys, ops, &self.ctx, tx).expect("batch runs")
    }

    pub fn standard(&mut self, ops: &[Operation]) -> BatchExecutionResult {
        self.run(ops, &TransactionContext::new(ExecutionMode::Standard))
    }

    /// Create `resources` in one committed batch and return their ids.
    pub fn create_all(&mut self, resources: &[NewResource]) -> Vec<ResourceId> {
        let ops: Vec<Operation> = resources.iter().map(|r| Operation::Create { resource: r.clone() }).collect();
        let result = self.standard(&ops);
        assert_eq!(result.success_count, ops.len(), "{:#?}", result.results);
        resources.iter().map(id_of).collect()
    }
}

pub fn id_of(r: &NewResource) -> ResourceId {
    ContentId::of_encoding(&r.id_encoding())
}

pub fn input(id: ResourceId, seed: u64) -> ConsumedInput {
    ConsumedInput { id, nullifier_key: nullifier_key(seed) }
}

pub fn transfer(inputs: Vec<ConsumedInput>, outputs: Vec<NewResource>) -> Operation {
    Operation::Transfer { inputs, outputs }
}

pub fn update(id: ResourceId, changes: ResourceUpdate) -> Operation {
    Operation::Update { id, changes }
}

/// A test proof system for the pipeline's plumbing (Groth16 has its own
/// tests): the "proof" is a keyed BLAKE3 over the witnesses.
pub struct MacProofs;

impl ProofSystem for MacProofs {
    fn name(&self) -> String {
        "test-mac".into()
    }
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        let inputs = serde_json::to_vec(witnesses).map_err(|e| ProveError::Synthesis(e.to_string()))?;
        let proof = blake3::keyed_hash(&[3; 32], &inputs).as_bytes().to_vec();
        Ok(ProofRecord { system: self.name(), proof, public_inputs: inputs })
    }
    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        let expected = blake3::keyed_hash(&[3; 32], &record.public_inputs);
        (record.proof == expected.as_bytes()).then_some(()).ok_or_else(|| ProveError::Rejected("MAC mismatch".into()))
    }
}
