// Exclusive prefix sum of the bucket counts into bucket offsets, in three
// passes: per-chunk sums, one workgroup scanning the chunk sums, and each
// chunk rewritten with its base.

var<workgroup> partial: array<u32, SCAN_GROUP>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn scan_chunk_sums(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    if t >= params.scan_chunks {
        return;
    }
    let lo = t * params.scan_chunk;
    let hi = min(lo + params.scan_chunk, params.total_buckets);
    var sum = 0u;
    for (var i = lo; i < hi; i++) {
        sum += counts[i];
    }
    chunk_sums[t] = sum;
}

@compute @workgroup_size(SCAN_GROUP)
fn scan_chunk_prefix(@builtin(local_invocation_id) lid: vec3<u32>) {
    let per = (params.scan_chunks + SCAN_GROUP - 1u) / SCAN_GROUP;
    let lo = min(lid.x * per, params.scan_chunks);
    let hi = min(lo + per, params.scan_chunks);
    var sum = 0u;
    for (var k = lo; k < hi; k++) {
        sum += chunk_sums[k];
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var step = 1u; step < SCAN_GROUP; step <<= 1u) {
        var left = 0u;
        if lid.x >= step {
            left = partial[lid.x - step];
        }
        workgroupBarrier();
        partial[lid.x] += left;
        workgroupBarrier();
    }
    var run = partial[lid.x] - sum;
    for (var k = lo; k < hi; k++) {
        let c = chunk_sums[k];
        chunk_sums[k] = run;
        run += c;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scan_offsets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    if t >= params.scan_chunks {
        return;
    }
    let lo = t * params.scan_chunk;
    let hi = min(lo + params.scan_chunk, params.total_buckets);
    var run = chunk_sums[t];
    for (var i = lo; i < hi; i++) {
        offsets[i] = run;
        run += counts[i];
    }
}
