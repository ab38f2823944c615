//! Logic-program cost per run: the fungible token's transfer check (three
//! aggregates' worth of loads, string compares and a loop over the others)
//! against a program that only accepts, plus decoding and compiling.

use std::collections::BTreeMap;

use causality_vm::capability::CapabilityToken;
use causality_vm::hash::HashPool;
use causality_vm::resource::{LifecycleState, OperationKind, ResourceRegister};
use causality_vm::vm::{Interpreter, LogicInput, Program, Role};
use causality_vm::{tel, ContentId, DomainId, ExecutionContext};
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

fn bench_logic(c: &mut Criterion) {
    let source = include_str!("../examples/fungible_token.tel");
    let token = tel::compile(source).expect("example compiles");
    let accept = tel::compile("accept;").expect("compiles");
    let subject = register(100, "alice");
    let outputs = [register(60, "bob"), register(40, "carol")];
    let others: Vec<&ResourceRegister> = outputs.iter().collect();
    let ctx = context();
    let input = LogicInput {
        operation: OperationKind::Transfer,
        role: Role::Consumed,
        subject: &subject,
        others: &others,
        readable_others: true,
        ctx: &ctx,
    };
    let interpreter = Interpreter::new(10_000);
    let mut pool = HashPool::new();

    let mut group = c.benchmark_group("vm_logic_run");
    group.throughput(Throughput::Elements(1));
    for (name, program) in [("accept_only", &accept), ("fungible_token_transfer", &token)] {
        interpreter.run(program, &input, &mut pool).expect("accepts");
        group.bench_with_input(BenchmarkId::from_parameter(name), program, |b, program| {
            b.iter(|| interpreter.run(program, &input, &mut pool).expect("accepts"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("vm_program_load");
    let bytes = token.encode();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_fungible_token", |b| b.iter(|| Program::decode(&bytes).expect("decodes")));
    group.bench_function("compile_fungible_token", |b| b.iter(|| tel::compile(source).expect("compiles")));
    group.finish();
}

criterion_group!(benches, bench_logic);
criterion_main!(benches);
