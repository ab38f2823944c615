// Test kernel: one Fq2 operation elementwise, so host tests can compare
// every WGSL Fq2 operation against ark-ff. Sixteen words per element: c0's
// eight, then c1's.

// `OpParams` and the bindings are declared by the host (contract.rs).

fn load_fe2(from_lhs: bool, base: u32) -> Fe2 {
    var w0: array<u32, 8>;
    var w1: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        if from_lhs {
            w0[k] = lhs[base + k];
            w1[k] = lhs[base + 8u + k];
        } else {
            w0[k] = rhs[base + k];
            w1[k] = rhs[base + 8u + k];
        }
    }
    return Fe2(fe_from_words(w0), fe_from_words(w1));
}

// Ops: 0 add, 1 sub, 2 mul, 3 square, 4 negate, 5 double, 6 inverse.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fq2_op(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.count {
        return;
    }
    let a = load_fe2(true, i * 16u);
    let b = load_fe2(false, i * 16u);
    var r = fe2_zero();
    switch params.op {
        case 0u: { r = fe2_add(a, b); }
        case 1u: { r = fe2_sub(a, b); }
        case 2u: { r = fe2_mul(a, b); }
        case 3u: { r = fe2_sqr(a); }
        case 4u: { r = fe2_neg(a); }
        case 5u: { r = fe2_dbl(a); }
        case 6u: { r = fe2_inv(a); }
        default: { r = fe2_zero(); }
    }
    let w0 = fe_to_words(r.c0);
    let w1 = fe_to_words(r.c1);
    for (var k = 0u; k < 8u; k++) {
        out[i * 16u + k] = w0[k];
        out[i * 16u + 8u + k] = w1[k];
    }
}
