//! Fixtures shared by the VM and TEL integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use causality_vm::capability::CapabilityToken;
use causality_vm::hash::HashPool;
use causality_vm::resource::{LifecycleState, OperationKind, ResourceRegister};
use causality_vm::vm::{Filings, Interpreter, LogicInput, LogicOutcome, Program, Role, TracedRun};
use causality_vm::{ContentId, DomainId, ExecutionContext, ExecutionError};

pub fn resource(quantity: u64, controller: &str) -> ResourceRegister {
    let tag = format!("{controller}/{quantity}");
    ResourceRegister {
        id: ContentId::of_encoding(tag.as_bytes()),
        logic: ContentId::of_encoding(b"the logic under test"),
        domain: DomainId::new("bank"),
        fungibility_domain: "gold".into(),
        quantity,
        metadata: BTreeMap::new(),
        contents: vec![1, 2, 3],
        state: LifecycleState::Active,
        nullifier_key_commitment: [7; 32],
        controller: controller.into(),
        version: 3,
    }
}

pub fn context(timestamp: u64) -> ExecutionContext {
    ExecutionContext {
        domain_id: DomainId::new("bank"),
        trace_id: "trace-1".into(),
        capability_token: CapabilityToken {
            domain: DomainId::new("bank"),
            identifier: [0; 16],
            caveats: Vec::new(),
            tag: [0; 32],
        },
        timestamp,
        environment: BTreeMap::new(),
        cross_domain_grants: Vec::new(),
    }
}

/// One logic run's inputs, with defaults that tests override field by field.
#[derive(Clone, Debug)]
pub struct Case {
    pub operation: OperationKind,
    pub role: Role,
    pub subject: ResourceRegister,
    pub others: Vec<ResourceRegister>,
    pub readable_others: bool,
    pub ctx: ExecutionContext,
    pub budget: u64,
}

impl Case {
    pub fn new() -> Self {
        Case {
            operation: OperationKind::Transfer,
            role: Role::Consumed,
            subject: resource(100, "alice"),
            others: Vec::new(),
            readable_others: true,
            ctx: context(1_700_000_000),
            budget: 10_000,
        }
    }

    /// `f` given this case as the VM's input.
    fn with_input<R>(&self, f: impl FnOnce(&LogicInput) -> R) -> R {
        let others: Vec<&ResourceRegister> = self.others.iter().collect();
        f(&LogicInput {
            operation: self.operation,
            role: self.role,
            subject: &self.subject,
            others: &others,
            readable_others: self.readable_others,
            ctx: &self.ctx,
        })
    }

    pub fn run_in(
        &self,
        program: &Program,
        interpreter: Interpreter,
        pool: &mut HashPool,
    ) -> Result<LogicOutcome, ExecutionError> {
        self.with_input(|input| interpreter.run(program, input, pool))
    }

    pub fn run(&self, program: &Program) -> Result<LogicOutcome, ExecutionError> {
        self.run_in(program, Interpreter::new(self.budget), &mut HashPool::new())
    }

    /// The run's result and what it filed, under `interpreter`.
    pub fn run_metered(
        &self,
        program: &Program,
        interpreter: Interpreter,
        pool: &mut HashPool,
    ) -> (Result<LogicOutcome, ExecutionError>, Filings) {
        self.with_input(|input| interpreter.run_metered(program, input, pool))
    }

    /// The run with its trace, kept whatever the verdict.
    pub fn run_traced(&self, program: &Program) -> TracedRun {
        self.with_input(|input| Interpreter::new(self.budget).run_traced(program, input, &mut HashPool::new()))
    }
}

/// A data section holding length-prefixed strings, and their offsets.
pub fn strings(items: &[&[u8]]) -> (Vec<u8>, Vec<u32>) {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for item in items {
        offsets.push(data.len() as u32);
        data.extend_from_slice(&(item.len() as u32).to_le_bytes());
        data.extend_from_slice(item);
    }
    (data, offsets)
}
