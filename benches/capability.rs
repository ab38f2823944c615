//! Capability checks per access: `authorize` (verifies the MAC chains every
//! call) against `Authorizer::check` (verified once per context), by the
//! number of caveats on the token; and the MAC chain verification alone.

use std::collections::BTreeMap;
use std::hint::black_box;

use causality_vm::capability::{CapabilityToken, Caveat, KeyRing, Right, RootKey};
use causality_vm::context::{authorize, AccessRequest, Authorizer};
use causality_vm::resource::OperationKind;
use causality_vm::{ContentId, DomainId, ExecutionContext};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn token_with(root: &RootKey, caveats: usize) -> CapabilityToken {
    let mut token = CapabilityToken::mint(root, DomainId::new("alpha"), [1; 16]);
    for i in 0..caveats {
        token = token.attenuate(Caveat::MaxQuantity(1_000_000 - i as u64)).expect("narrows");
    }
    token
}

fn bench_capability(c: &mut Criterion) {
    let root = RootKey([7; 32]);
    let mut keys = KeyRing::new();
    keys.insert(DomainId::new("alpha"), root.clone());
    let domain = DomainId::new("alpha");
    let id = ContentId::of_encoding(b"resource");
    let request = AccessRequest {
        operation: OperationKind::Transfer,
        right: Right::Transfer,
        resource: Some(&id),
        domain: &domain,
        quantity: Some(10),
    };

    let mut group = c.benchmark_group("capability_check_per_access");
    for caveats in [0usize, 4, 16] {
        let ctx = ExecutionContext {
            domain_id: domain.clone(),
            trace_id: "bench".into(),
            capability_token: token_with(&root, caveats),
            timestamp: 0,
            environment: BTreeMap::new(),
            cross_domain_grants: Vec::new(),
        };
        group.bench_with_input(BenchmarkId::new("authorize", caveats), &ctx, |b, ctx| {
            b.iter(|| authorize(black_box(ctx), &keys, black_box(&request)))
        });
        let authorizer = Authorizer::new(&ctx, &keys);
        group.bench_with_input(BenchmarkId::new("authorizer_check", caveats), &ctx, |b, _| {
            b.iter(|| authorizer.check(black_box(&request)))
        });
        group.bench_with_input(BenchmarkId::new("verify_chain", caveats), &ctx, |b, ctx| {
            b.iter(|| black_box(&ctx.capability_token).verify_chain(&root))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_capability);
criterion_main!(benches);
