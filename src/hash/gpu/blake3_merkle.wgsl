// One Merkle level: parent i = BLAKE3(node 2i || node 2i+1), an odd last node
// is copied up. All levels live in one node buffer and run as successive
// dispatches of one submission.

// `Level`, `nodes` and `level` are declared by the host (src/hash/gpu.rs,
// MERKLE_BINDINGS).

@compute @workgroup_size(WORKGROUP_SIZE)
fn merkle_level(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= (level.count + 1u) / 2u) {
        return;
    }
    let left = (level.src + 2u * i) * 8u;
    let out = (level.dst + i) * 8u;
    if (2u * i + 1u == level.count) {
        for (var k = 0u; k < 8u; k++) {
            nodes[out + k] = nodes[left + k];
        }
        return;
    }
    var m: array<u32, 16>;
    for (var k = 0u; k < 16u; k++) {
        m[k] = nodes[left + k];
    }
    let cv = compress(IV, m, 64u, CHUNK_START | CHUNK_END | ROOT);
    for (var k = 0u; k < 8u; k++) {
        nodes[out + k] = cv[k];
    }
}
