// Poseidon over BN254's scalar field (width 3, x^5, 8 full and 57 partial
// rounds, the partial rounds in the sparse form of crypto::poseidon's
// permutation), one sponge per invocation. The field code (msm/gpu's field
// path with Fr's prelude) comes before this file.
//
// `table` holds permutation::flat_schedule() (offsets below); job i hashes
// inputs[jobs[i].offset ..][.. jobs[i].len] with capacity element tags[i],
// over as many passes as its longest job needs; `out` gets state[1] after
// the squeeze. Elements are eight little-endian
// words in arkworks' Montgomery form.

const FULL_AT: u32 = 0u;
const MDS_AT: u32 = 24u;
const PRE_AT: u32 = 33u;
const FIRST_AT: u32 = 42u;
const SPARSE_AT: u32 = 45u;
const CARRIED_AT: u32 = 330u;
const HALF_FULL: u32 = 4u;
const PARTIAL: u32 = 57u;

fn read_fe(i: u32, which: u32) -> Fe {
    var w: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        switch which {
            case 0u: { w[k] = table[8u * i + k]; }
            case 1u: { w[k] = inputs[8u * i + k]; }
            default: { w[k] = tags[8u * i + k]; }
        }
    }
    return fe_from_words(w);
}

fn constant(i: u32) -> Fe {
    return read_fe(i, 0u);
}

fn pow5(x: Fe) -> Fe {
    let s = fe_sqr(x);
    return fe_mul(x, fe_sqr(s));
}

// The 3x3 matrix at `at` (row-major) times s.
fn mat(at: u32, s: array<Fe, 3>) -> array<Fe, 3> {
    var r: array<Fe, 3>;
    for (var i = 0u; i < 3u; i++) {
        var acc = fe_zero();
        for (var j = 0u; j < 3u; j++) {
            acc = fe_add(acc, fe_mul(constant(at + 3u * i + j), s[j]));
        }
        r[i] = acc;
    }
    return r;
}

fn full_round(round: u32, s_in: array<Fe, 3>) -> array<Fe, 3> {
    var s = s_in;
    for (var i = 0u; i < 3u; i++) {
        s[i] = pow5(fe_add(s[i], constant(FULL_AT + 3u * round + i)));
    }
    return mat(MDS_AT, s);
}

fn permute(s_in: array<Fe, 3>) -> array<Fe, 3> {
    var s = s_in;
    for (var r = 0u; r < HALF_FULL; r++) {
        s = full_round(r, s);
    }
    for (var i = 0u; i < 3u; i++) {
        s[i] = fe_add(s[i], constant(FIRST_AT + i));
    }
    s = mat(PRE_AT, s);
    for (var k = 0u; k < PARTIAL; k++) {
        if (k > 0u) {
            for (var i = 0u; i < 3u; i++) {
                s[i] = fe_add(s[i], constant(CARRIED_AT + 3u * (k - 1u) + i));
            }
        }
        let x0 = pow5(s[0]);
        let m = SPARSE_AT + 5u * k;
        var first = fe_mul(constant(m), x0);
        first = fe_add(first, fe_mul(constant(m + 1u), s[1]));
        first = fe_add(first, fe_mul(constant(m + 2u), s[2]));
        s[1] = fe_add(s[1], fe_mul(constant(m + 3u), x0));
        s[2] = fe_add(s[2], fe_mul(constant(m + 4u), x0));
        s[0] = first;
    }
    for (var r = HALF_FULL; r < 2u * HALF_FULL; r++) {
        s = full_round(r, s);
    }
    return s;
}

fn load_state(i: u32) -> array<Fe, 3> {
    var s: array<Fe, 3>;
    for (var e = 0u; e < 3u; e++) {
        var w: array<u32, 8>;
        for (var k = 0u; k < 8u; k++) {
            w[k] = state[24u * i + 8u * e + k];
        }
        s[e] = fe_from_words(w);
    }
    return s;
}

fn store_state(i: u32, s: array<Fe, 3>) {
    for (var e = 0u; e < 3u; e++) {
        let w = fe_to_words(s[e]);
        for (var k = 0u; k < 8u; k++) {
            state[24u * i + 8u * e + k] = w[k];
        }
    }
}

// One pass: every job absorbs (and permutes) its chunks params.first_chunk
// .. + params.chunks, carrying its sponge in `state` from the pass before.
// Passes bound each invocation's work: llvmpipe silently leaves every loop
// of an invocation after 65,535 iterations in all.
@compute @workgroup_size(WORKGROUP_SIZE)
fn poseidon(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
    if (i >= params.count) {
        return;
    }
    let job = jobs[i];
    // Rate 2: one permutation per chunk of two inputs (the last chunk's is
    // the squeeze), and one with no input at all.
    let total = max(1u, (job.len + 1u) / 2u);
    if (params.first_chunk >= total) {
        return;
    }
    var s: array<Fe, 3>;
    if (params.first_chunk == 0u) {
        s[0] = read_fe(i, 2u);
        s[1] = fe_zero();
        s[2] = fe_zero();
    } else {
        s = load_state(i);
    }
    let end = min(total, params.first_chunk + params.chunks);
    // A single call site: a driver that inlines the permutation compiles it once.
    for (var c = params.first_chunk; c < end; c++) {
        let j = 2u * c;
        if (j < job.len) {
            s[1] = fe_add(s[1], read_fe(job.offset + j, 1u));
        }
        if (j + 1u < job.len) {
            s[2] = fe_add(s[2], read_fe(job.offset + j + 1u, 1u));
        }
        s = permute(s);
    }
    if (end < total) {
        store_state(i, s);
        return;
    }
    let w = fe_to_words(s[1]);
    for (var k = 0u; k < 8u; k++) {
        out[8u * i + k] = w[k];
    }
}
