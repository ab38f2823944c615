// Shared by every MSM stage: the per-dispatch parameters, the flattened thread
// index of a 2D dispatch (inputs larger than 65,535 workgroups spill into y),
// and point (de)serialisation. A coordinate is FE_WORDS words (8 for G1's Fq,
// 16 for G2's Fq2, set by the host), a stored XYZZ point four coordinates
// (x, y, zz, zzz), a stored affine base two (x, y), all in Montgomery form.
// G2's modules are this code renamed over Fq2 (shaders::over_fq2).

// `MsmParams` and every binding are declared by the host (contract.rs).

const AFFINE_WORDS: u32 = 2u * FE_WORDS;
const XYZZ_WORDS: u32 = 4u * FE_WORDS;

fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

fn xyzz_from_words(w_in: array<u32, XYZZ_WORDS>) -> Xyzz {
    var w = w_in;
    var x: array<u32, FE_WORDS>;
    var y: array<u32, FE_WORDS>;
    var zz: array<u32, FE_WORDS>;
    var zzz: array<u32, FE_WORDS>;
    for (var k = 0u; k < FE_WORDS; k++) {
        x[k] = w[k];
        y[k] = w[FE_WORDS + k];
        zz[k] = w[2u * FE_WORDS + k];
        zzz[k] = w[3u * FE_WORDS + k];
    }
    return Xyzz(fe_from_words(x), fe_from_words(y), fe_from_words(zz), fe_from_words(zzz));
}

fn xyzz_to_words(p: Xyzz) -> array<u32, XYZZ_WORDS> {
    var x = fe_to_words(p.x);
    var y = fe_to_words(p.y);
    var zz = fe_to_words(p.zz);
    var zzz = fe_to_words(p.zzz);
    var w: array<u32, XYZZ_WORDS>;
    for (var k = 0u; k < FE_WORDS; k++) {
        w[k] = x[k];
        w[FE_WORDS + k] = y[k];
        w[2u * FE_WORDS + k] = zz[k];
        w[3u * FE_WORDS + k] = zzz[k];
    }
    return w;
}
