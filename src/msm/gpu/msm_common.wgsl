// Shared by every MSM stage: the per-dispatch parameters, the flattened thread
// index of a 2D dispatch (inputs larger than 65,535 workgroups spill into y),
// and point (de)serialisation. A stored XYZZ point is 32 words (x, y, zz, zzz),
// a stored affine base 16 words (x, y), all in Montgomery form.

// `MsmParams` and every binding are declared by the host (contract.rs).

fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

fn xyzz_from_words(w_in: array<u32, 32>) -> Xyzz {
    var w = w_in;
    var x: array<u32, 8>;
    var y: array<u32, 8>;
    var zz: array<u32, 8>;
    var zzz: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        x[k] = w[k];
        y[k] = w[8u + k];
        zz[k] = w[16u + k];
        zzz[k] = w[24u + k];
    }
    return Xyzz(fe_from_words(x), fe_from_words(y), fe_from_words(zz), fe_from_words(zzz));
}

fn xyzz_to_words(p: Xyzz) -> array<u32, 32> {
    var x = fe_to_words(p.x);
    var y = fe_to_words(p.y);
    var zz = fe_to_words(p.zz);
    var zzz = fe_to_words(p.zzz);
    var w: array<u32, 32>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = x[k];
        w[8u + k] = y[k];
        w[16u + k] = zz[k];
        w[24u + k] = zzz[k];
    }
    return w;
}
