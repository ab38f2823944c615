// Bucket accumulation as a balanced segmented reduction. The input list is
// sorted by bucket (`bucket_of`, bucket + 1, 0 = no bucket); thread t sums the
// fixed slice [t*chunk, (t+1)*chunk), so a bucket holding most points (skewed
// scalars) is spread over many threads. A segment that starts its bucket is
// added into the bucket's accumulator; the first segment of a slice whose
// bucket began in an earlier slice becomes a continuation (cont_out[t]), and
// the host runs the next level over the continuations until none are left.
// Each bucket head is written by exactly one thread per level, so no atomics.
//
// accumulate_bases reads (point index | sign << 31) entries and affine bases;
// accumulate_points reads XYZZ continuations (or window segment sums).

fn load_base(entry: u32) -> Affine {
    let base = (params.base_offset + (entry & 0x7fffffffu)) * AFFINE_WORDS;
    var x: array<u32, FE_WORDS>;
    var y: array<u32, FE_WORDS>;
    for (var k = 0u; k < FE_WORDS; k++) {
        x[k] = bases[base + k];
        y[k] = bases[base + FE_WORDS + k];
    }
    let q = Affine(fe_from_words(x), fe_from_words(y));
    if (entry >> 31u) == 1u {
        return affine_neg(q);
    }
    return q;
}

fn load_bucket(b: u32) -> Xyzz {
    var w: array<u32, XYZZ_WORDS>;
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        w[k] = bucket_acc[b * XYZZ_WORDS + k];
    }
    return xyzz_from_words(w);
}

fn store_bucket(b: u32, p: Xyzz) {
    var w = xyzz_to_words(p);
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        bucket_acc[b * XYZZ_WORDS + k] = w[k];
    }
}

fn load_cont(i: u32) -> Xyzz {
    var w: array<u32, XYZZ_WORDS>;
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        w[k] = cont_in[i * XYZZ_WORDS + k];
    }
    return xyzz_from_words(w);
}

fn store_cont(t: u32, p: Xyzz) {
    var w = xyzz_to_words(p);
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        cont_out[t * XYZZ_WORDS + k] = w[k];
    }
}

// Never a bucket tag (tags are at most windows * buckets).
const END_OF_SLICE: u32 = 0xffffffffu;

fn flush(t: u32, bucket: u32, acc: Xyzz, is_cont: bool) {
    if bucket == 0u {
        return;
    }
    if is_cont {
        store_cont(t, acc);
        cont_bucket_out[t] = bucket;
    } else if !xyzz_is_infinity(acc) {
        store_bucket(bucket - 1u, xyzz_add(load_bucket(bucket - 1u), acc));
    }
}

// One loop that flushes at every bucket change and once past the end, so each
// curve routine is inlined once (CPU drivers inline every call site).
@compute @workgroup_size(WORKGROUP_SIZE)
fn accumulate_bases(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    let start = t * params.chunk;
    if start >= params.list_len {
        return;
    }
    cont_bucket_out[t] = 0u;
    let end = min(start + params.chunk, params.list_len);
    var bucket = bucket_of[start];
    var is_cont = start > 0u && bucket_of[start - 1u] == bucket;
    var acc = xyzz_infinity();
    for (var i = start; i <= end; i++) {
        var b = END_OF_SLICE;
        if i < end {
            b = bucket_of[i];
        }
        if b != bucket {
            flush(t, bucket, acc, is_cont);
            bucket = b;
            is_cont = false;
            acc = xyzz_infinity();
        }
        if b != 0u && b != END_OF_SLICE {
            acc = xyzz_add_affine(acc, load_base(entries[i]));
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn accumulate_points(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    let start = t * params.chunk;
    if start >= params.list_len {
        return;
    }
    cont_bucket_out[t] = 0u;
    let end = min(start + params.chunk, params.list_len);
    var bucket = cont_bucket_in[start];
    var is_cont = start > 0u && cont_bucket_in[start - 1u] == bucket;
    var acc = xyzz_infinity();
    for (var i = start; i <= end; i++) {
        var b = END_OF_SLICE;
        if i < end {
            b = cont_bucket_in[i];
        }
        if b != bucket {
            flush(t, bucket, acc, is_cont);
            bucket = b;
            is_cont = false;
            acc = xyzz_infinity();
        }
        if b != 0u && b != END_OF_SLICE {
            acc = xyzz_add(acc, load_cont(i));
        }
    }
}
