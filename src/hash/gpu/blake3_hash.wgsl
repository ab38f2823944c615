// One invocation per single-chunk message (0..=1024 bytes), any mode.

// `Job`, `words`, `jobs`, `keys` and `digests` are declared by the host
// (src/hash/gpu.rs, HASH_BINDINGS).

@compute @workgroup_size(WORKGROUP_SIZE)
fn hash_many(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let index = flat_index(wg, groups, local);
    if (index >= arrayLength(&jobs)) {
        return;
    }
    let job = jobs[index];
    var cv: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        cv[i] = keys[job.key * 8u + i];
    }
    let blocks = max(1u, (job.len + 63u) / 64u);
    for (var b = 0u; b < blocks; b++) {
        let start = b * 64u;
        var m: array<u32, 16>;
        for (var i = 0u; i < 16u; i++) {
            let pos = start + 4u * i;
            var w = 0u;
            if (pos < job.len) {
                w = words[job.offset + pos / 4u];
                let remaining = job.len - pos;
                if (remaining < 4u) {
                    // Bytes past the end of the message read as zero.
                    w = w & ((1u << (remaining * 8u)) - 1u);
                }
            }
            m[i] = w;
        }
        var flags = job.flags;
        var block_len = 64u;
        if (b == 0u) {
            flags |= CHUNK_START;
        }
        if (b + 1u == blocks) {
            flags |= CHUNK_END | ROOT;
            block_len = job.len - start;
        }
        cv = compress(cv, m, block_len, flags);
    }
    for (var i = 0u; i < 8u; i++) {
        digests[index * 8u + i] = cv[i];
    }
}
