// Window sums: sum_j (j + 1) * B_j over the buckets of each window. Thread t
// takes one segment [lo, hi) of one window's buckets, forms the running-sum
// total sum_j (j - lo + 1) * B_j and adds lo * (sum_j B_j) by double-and-add.
// The segment sums (tagged with window + 1) are then summed per window by the
// segmented reduction in msm_accumulate.wgsl.

@group(0) @binding(8) var<storage, read> bucket_acc: array<u32>;
@group(0) @binding(11) var<storage, read_write> seg_out: array<u32>;
@group(0) @binding(12) var<storage, read_write> seg_window: array<u32>;

fn load_bucket(b: u32) -> Xyzz {
    var w: array<u32, 32>;
    for (var k = 0u; k < 32u; k++) {
        w[k] = bucket_acc[b * 32u + k];
    }
    return xyzz_from_words(w);
}

fn scalar_mul_small(p: Xyzz, k: u32) -> Xyzz {
    var r = xyzz_infinity();
    if k == 0u {
        return r;
    }
    let top = 31u - countLeadingZeros(k);
    for (var i = 0u; i <= top; i++) {
        r = xyzz_double(r);
        if ((k >> (top - i)) & 1u) == 1u {
            r = xyzz_add(r, p);
        }
    }
    return r;
}

@compute @workgroup_size(64)
fn window_segments(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    if t >= params.windows * params.segs {
        return;
    }
    let w = t / params.segs;
    let lo = (t % params.segs) * params.seg_len;
    let hi = min(lo + params.seg_len, params.buckets);
    var running = xyzz_infinity();
    var total = xyzz_infinity();
    for (var j = hi; j > lo; j--) {
        running = xyzz_add(running, load_bucket(w * params.buckets + j - 1u));
        total = xyzz_add(total, running);
    }
    total = xyzz_add(total, scalar_mul_small(running, lo));
    var words = xyzz_to_words(total);
    for (var k = 0u; k < 32u; k++) {
        seg_out[t * 32u + k] = words[k];
    }
    seg_window[t] = w + 1u;
}
