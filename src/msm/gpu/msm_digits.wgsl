// Signed-digit windows and bucket assignment (a CSR transpose by bucket).
// count_digits counts the points per bucket; after the offset scan,
// scatter_digits writes every (point, sign) into its bucket's slice of
// `entries`, with `bucket_of` naming the bucket (plus one; 0 = empty slot).
// Digits lie in [-2^(c-1), 2^(c-1)]; a digit of magnitude m goes to bucket m-1
// of its window, its sign into bit 31 of the entry. Order inside a bucket
// depends on atomics, but the bucket sums are exact group elements, so the
// result does not.

fn load_scalar(i: u32) -> array<u32, 8> {
    var s: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        s[k] = scalars[i * 8u + k];
    }
    return s;
}

// `width` bits of the 256-bit scalar starting at bit `start` (zero past the top).
fn scalar_bits(s_in: array<u32, 8>, start: u32, width: u32) -> u32 {
    var s = s_in;
    let word = start / 32u;
    let shift = start % 32u;
    if word >= 8u {
        return 0u;
    }
    var v = s[word] >> shift;
    if shift + width > 32u && word + 1u < 8u {
        v |= s[word + 1u] << (32u - shift);
    }
    return v & ((1u << width) - 1u);
}

// The signed digit of a window as (global bucket + 1, negative), bucket 0 when
// the digit is zero; `carry` moves into the next window.
struct Digit {
    bucket: u32,
    negative: u32,
}

fn window_digit(s: array<u32, 8>, w: u32, carry: ptr<function, u32>) -> Digit {
    let c = params.window_bits;
    let d = scalar_bits(s, w * c, c) + *carry;
    var magnitude = d;
    var negative = 0u;
    *carry = 0u;
    if d > params.buckets {
        magnitude = (1u << c) - d;
        negative = 1u;
        *carry = 1u;
    }
    if magnitude == 0u {
        return Digit(0u, 0u);
    }
    return Digit(w * params.buckets + magnitude, negative);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn count_digits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n {
        return;
    }
    let s = load_scalar(i);
    var carry = 0u;
    for (var w = 0u; w < params.windows; w++) {
        let digit = window_digit(s, w, &carry);
        if digit.bucket != 0u {
            atomicAdd(&counts[digit.bucket - 1u], 1u);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scatter_digits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n {
        return;
    }
    let s = load_scalar(i);
    var carry = 0u;
    for (var w = 0u; w < params.windows; w++) {
        let digit = window_digit(s, w, &carry);
        if digit.bucket != 0u {
            let g = digit.bucket - 1u;
            let pos = offsets[g] + atomicSub(&counts[g], 1u) - 1u;
            entries[pos] = i | (digit.negative << 31u);
            bucket_of[pos] = digit.bucket;
        }
    }
}
