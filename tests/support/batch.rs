//! Shared fixtures for the batch and store integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use causality_vm::batch::{execute_batch, BatchExecutionResult, OpWitness, ProofSystem, TransactionContext};
use causality_vm::capability::{CapabilityToken, KeyRing, RootKey};
use causality_vm::prove::ProveError;
use causality_vm::resource::{
    nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceId, ResourceUpdate,
};
use causality_vm::store::{ProofRecord, RegisterStore};
use causality_vm::vm::{Instruction, Program};
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
