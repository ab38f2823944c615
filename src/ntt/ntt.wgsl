// NTT stages over BN254's scalar field Fr (the field code and its constants
// come before this file: msm/gpu's field paths with Fr's prelude).
//
// `values` holds `count` transforms of n elements each, every element eight
// little-endian words in arkworks' Montgomery form; `table` the stage's
// twiddles (roots[k] = ω^k, k < n/2) or a scaling table, shared by all of
// them. One invocation per butterfly (count·n/2) or per element (count·n);
// dispatches wider than 65535 workgroups are folded into y.

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

fn load(i: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = values[8u * i + k];
    }
    return fe_from_words(w);
}

fn store(i: u32, a: Fe) {
    let w = fe_to_words(a);
    for (var k = 0u; k < 8u; k++) {
        values[8u * i + k] = w[k];
    }
}

fn table_at(i: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = table[8u * i + k];
    }
    return fe_from_words(w);
}

// The butterfly t (over all transforms) of a stage of half-size `half`: its
// two points. Each transform has n/2 butterflies, so t's transform is
// t >> (log_n - 1) and its place within it the low bits.
fn pair(t: u32) -> vec2<u32> {
    let local = t & (params.n / 2u - 1u);
    let base = (t >> (params.log_n - 1u)) << params.log_n;
    let j = local & (params.half - 1u);
    let i0 = base + (local - j) * 2u + j;
    return vec2<u32>(i0, i0 + params.half);
}

fn total() -> u32 {
    return params.count * params.n;
}

// Gentleman–Sande: (u, v) -> (u + v, (u - v)·w).
@compute @workgroup_size(WORKGROUP_SIZE)
fn dif_stage(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = invocation(gid, groups);
    if (t >= total() / 2u) {
        return;
    }
    let p = pair(t);
    let u = load(p.x);
    let v = load(p.y);
    let w = table_at((t & (params.half - 1u)) * params.stride);
    store(p.x, fe_add(u, v));
    store(p.y, fe_mul(fe_sub(u, v), w));
}

// Cooley–Tukey: (u, v) -> (u + v·w, u - v·w).
@compute @workgroup_size(WORKGROUP_SIZE)
fn dit_stage(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = invocation(gid, groups);
    if (t >= total() / 2u) {
        return;
    }
    let p = pair(t);
    let u = load(p.x);
    let v = fe_mul(load(p.y), table_at((t & (params.half - 1u)) * params.stride));
    store(p.x, fe_add(u, v));
    store(p.y, fe_sub(u, v));
}

fn reversed(i: u32) -> u32 {
    // log_n >= 1 here: the host never dispatches a one-point transform.
    return reverseBits(i) >> (32u - params.log_n);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn bit_reverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    if (i >= total()) {
        return;
    }
    let local = i & (params.n - 1u);
    let base = i - local;
    let r = reversed(local);
    // Each pair is swapped once, by its smaller index.
    if (local < r) {
        let a = load(i);
        store(i, load(base + r));
        store(base + r, a);
    }
}

// values[i] *= table[i mod n], or table[bit-reverse(i)] when params.reversed is 1,
// or table[0] when params.constant is 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    if (i >= total()) {
        return;
    }
    var k = i & (params.n - 1u);
    if (params.reversed == 1u) {
        k = reversed(k);
    }
    if (params.constant == 1u) {
        k = 0u;
    }
    store(i, fe_mul(load(i), table_at(k)));
}
