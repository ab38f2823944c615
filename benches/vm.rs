//! Logic-program cost per run: each example program on a typical input,
//! compiled by TEL 1 and by TEL 2 side by side, against a program that only
//! accepts; plus decoding and compiling.

use std::collections::BTreeMap;

use causality_vm::capability::CapabilityToken;
use causality_vm::hash::HashPool;
use causality_vm::resource::{LifecycleState, OperationKind, ResourceRegister};
use causality_vm::tel::{self, TelVersion};
use causality_vm::vm::{Interpreter, LogicInput, Program, Role};
use causality_vm::{ContentId, DomainId, ExecutionContext};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn register(quantity: u64, controller: &str) -> ResourceRegister {
    ResourceRegister {
        id: ContentId::of_encoding(controller.as_bytes()),
        logic: ContentId::of_encoding(b"logic"),
        domain: DomainId::new("bank"),
        fungibility_domain: "gold".into(),
        quantity,
        metadata: BTreeMap::new(),
        contents: Vec::new(),
        state: LifecycleState::Active,
        nullifier_key_commitment: [7; 32],
        controller: controller.into(),
        version: 0,
    }
}

fn context() -> ExecutionContext {
    ExecutionContext {
        domain_id: DomainId::new("bank"),
        trace_id: "bench".into(),
        capability_token: CapabilityToken {
            domain: DomainId::new("bank"),
            identifier: [0; 16],
            caveats: Vec::new(),
            tag: [0; 32],
        },
        timestamp: 1_700_000_000,
        environment: BTreeMap::new(),
        cross_domain_grants: Vec::new(),
    }
}

/// One logic run of an example on a typical input.
struct Example {
    name: &'static str,
    source: &'static str,
    operation: OperationKind,
    role: Role,
    subject: ResourceRegister,
    others: Vec<ResourceRegister>,
    timestamp: u64,
}

fn examples() -> Vec<Example> {
    let mut record = register(1, "registry");
    record.version = 7;
    vec![
        Example {
            name: "fungible_token_transfer",
            source: include_str!("../examples/fungible_token.tel"),
            operation: OperationKind::Transfer,
            role: Role::Consumed,
            subject: register(100, "alice"),
            others: vec![register(60, "bob"), register(40, "carol")],
            timestamp: 1_700_000_000,
        },
        Example {
            name: "time_locked_claim",
            source: include_str!("../examples/time_locked.tel"),
            operation: OperationKind::Transfer,
            role: Role::Consumed,
            subject: register(5, "alice"),
            others: vec![register(5, "bob")],
            timestamp: 1_767_300_000,
        },
        Example {
            name: "controller_only_update",
            source: include_str!("../examples/controller_only.tel"),
            operation: OperationKind::Update,
            role: Role::UpdatedBefore,
            subject: record,
            others: Vec::new(),
            timestamp: 1_700_000_000,
        },
    ]
}

/// Each example under TEL 1 and TEL 2 (`tel 2;`), side by side: time per run
/// here, instructions per run printed once (they do not vary).
fn bench_logic(c: &mut Criterion) {
    let accept = tel::compile("accept;").expect("compiles");
    let interpreter = Interpreter::new(10_000);
    let mut pool = HashPool::new();
    let mut group = c.benchmark_group("vm_logic_run");
    group.throughput(Throughput::Elements(1));
    let ctx = context();
    let lone = register(1, "alice");
    let input = LogicInput {
        operation: OperationKind::Read,
        role: Role::Read,
        subject: &lone,
        others: &[],
        readable_others: true,
        ctx: &ctx,
    };
    group.bench_function("accept_only", |b| b.iter(|| interpreter.run(&accept, &input, &mut pool).expect("accepts")));
    for example in examples() {
        let mut ctx = context();
        ctx.timestamp = example.timestamp;
        let others: Vec<&ResourceRegister> = example.others.iter().collect();
        let input = LogicInput {
            operation: example.operation,
            role: example.role,
            subject: &example.subject,
            others: &others,
            readable_others: true,
            ctx: &ctx,
        };
        for version in [TelVersion::V1, TelVersion::V2] {
            let program = tel::compile_as(example.source, version).expect("example compiles");
            let outcome = interpreter.run(&program, &input, &mut pool).expect("accepts");
            let label = format!("{}_tel{}", example.name, version.number());
            eprintln!("{label}: {} instructions per run", outcome.instructions);
            group.bench_with_input(BenchmarkId::from_parameter(&label), &program, |b, program| {
                b.iter(|| interpreter.run(program, &input, &mut pool).expect("accepts"))
            });
        }
    }
    group.finish();

    let source = include_str!("../examples/fungible_token.tel");
    let token = tel::compile(source).expect("example compiles");
    let mut group = c.benchmark_group("vm_program_load");
    let bytes = token.encode();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_fungible_token", |b| b.iter(|| Program::decode(&bytes).expect("decodes")));
    group.bench_function("compile_fungible_token", |b| b.iter(|| tel::compile(source).expect("compiles")));
    group.bench_function("compile_fungible_token_tel2", |b| {
        b.iter(|| tel::compile_as(source, TelVersion::V2).expect("compiles"))
    });
    group.finish();
}

criterion_group!(benches, bench_logic);
criterion_main!(benches);
