// Test kernels: apply one field or curve operation elementwise to arrays, so
// host tests can compare every WGSL operation against ark-ff / ark-ec.

// `OpParams` and the bindings are declared by the host (contract.rs).

fn lhs_fe(base: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = lhs[base + k];
    }
    return fe_from_words(w);
}

fn rhs_fe(base: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = rhs[base + k];
    }
    return fe_from_words(w);
}

fn store_fe(base: u32, a: Fe) {
    var w = fe_to_words(a);
    for (var k = 0u; k < 8u; k++) {
        out[base + k] = w[k];
    }
}

// Field ops: 0 add, 1 sub, 2 mul, 3 square, 4 to Montgomery, 5 from Montgomery,
// 6 negate, 7 inverse, 8 double. Eight words per element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn field_op(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.count {
        return;
    }
    let a = lhs_fe(i * 8u);
    let b = rhs_fe(i * 8u);
    var r = fe_zero();
    switch params.op {
        case 0u: { r = fe_add(a, b); }
        case 1u: { r = fe_sub(a, b); }
        case 2u: { r = fe_mul(a, b); }
        case 3u: { r = fe_sqr(a); }
        case 4u: { r = fe_to_mont(a); }
        case 5u: { r = fe_from_mont(a); }
        case 6u: { r = fe_neg(a); }
        case 7u: { r = fe_inv(a); }
        case 8u: { r = fe_dbl(a); }
        default: { r = fe_zero(); }
    }
    store_fe(i * 8u, r);
}

// Curve ops on 32-word slots (XYZZ: x, y, zz, zzz; affine: x, y then unused):
// 0 xyzz + xyzz, 1 xyzz + affine, 2 double xyzz, 3 double affine.
@compute @workgroup_size(WORKGROUP_SIZE)
fn curve_op(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.count {
        return;
    }
    let base = i * 32u;
    let p = Xyzz(lhs_fe(base), lhs_fe(base + 8u), lhs_fe(base + 16u), lhs_fe(base + 24u));
    let q = Xyzz(rhs_fe(base), rhs_fe(base + 8u), rhs_fe(base + 16u), rhs_fe(base + 24u));
    let qa = Affine(q.x, q.y);
    var r = xyzz_infinity();
    switch params.op {
        case 0u: { r = xyzz_add(p, q); }
        case 1u: { r = xyzz_add_affine(p, qa); }
        case 2u: { r = xyzz_double(p); }
        case 3u: { r = xyzz_double_affine(qa); }
        default: { r = xyzz_infinity(); }
    }
    store_fe(base, r.x);
    store_fe(base + 8u, r.y);
    store_fe(base + 16u, r.zz);
    store_fe(base + 24u, r.zzz);
}
