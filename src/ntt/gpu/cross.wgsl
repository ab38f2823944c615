// Butterflies between two chunks of one NTT larger than a storage binding
// (src/ntt/gpu/split.rs). The field code and its constants come before
// this file, as for ntt.wgsl.
//
// Point l of `low` pairs point l of `high` (m of each, eight little-endian
// words an element in arkworks' Montgomery form). The pair's twiddle is
// ω^e with e = (base + l)·stride < n/2, read as the product of two tables
// in `twiddles`: ω^(e mod 2^low_bits) at e mod 2^low_bits, then
// ω^(2^low_bits·j) at 2^low_bits + j for j = e >> low_bits. Dispatches
// wider than 65535 workgroups are folded into y.

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

fn load_low(i: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = low[8u * i + k];
    }
    return fe_from_words(w);
}

fn load_high(i: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = high[8u * i + k];
    }
    return fe_from_words(w);
}

fn store_low(i: u32, a: Fe) {
    let w = fe_to_words(a);
    for (var k = 0u; k < 8u; k++) {
        low[8u * i + k] = w[k];
    }
}

fn store_high(i: u32, a: Fe) {
    let w = fe_to_words(a);
    for (var k = 0u; k < 8u; k++) {
        high[8u * i + k] = w[k];
    }
}

fn twiddle_at(i: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = twiddles[8u * i + k];
    }
    return fe_from_words(w);
}

fn twiddle(l: u32) -> Fe {
    let e = (params.base + l) * params.stride;
    let split = 1u << params.low_bits;
    return fe_mul(twiddle_at(e & (split - 1u)), twiddle_at(split + (e >> params.low_bits)));
}

// Gentleman–Sande: (u, v) -> (u + v, (u - v)·w).
@compute @workgroup_size(WORKGROUP_SIZE)
fn dif_cross(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let l = invocation(gid, groups);
    if (l >= params.m) {
        return;
    }
    let u = load_low(l);
    let v = load_high(l);
    store_low(l, fe_add(u, v));
    store_high(l, fe_mul(fe_sub(u, v), twiddle(l)));
}

// Cooley–Tukey: (u, v) -> (u + v·w, u - v·w).
@compute @workgroup_size(WORKGROUP_SIZE)
fn dit_cross(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let l = invocation(gid, groups);
    if (l >= params.m) {
        return;
    }
    let u = load_low(l);
    let v = fe_mul(load_high(l), twiddle(l));
    store_low(l, fe_add(u, v));
    store_high(l, fe_sub(u, v));
}
