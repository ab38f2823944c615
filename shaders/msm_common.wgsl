// Shared by every MSM stage: the per-dispatch parameters, the flattened thread
// index of a 2D dispatch (inputs larger than 65,535 workgroups spill into y),
// and point (de)serialisation. A stored XYZZ point is 32 words (x, y, zz, zzz),
// a stored affine base 16 words (x, y), all in Montgomery form.

struct MsmParams {
    // points in this batch and the first of them in the bases buffer
    n: u32,
    base_offset: u32,
    window_bits: u32,
    windows: u32,
    // buckets per window (2^(window_bits-1)) and over all windows
    buckets: u32,
    total_buckets: u32,
    // the offset scan: counts per scan chunk and number of scan chunks
    scan_chunk: u32,
    scan_chunks: u32,
    // segmented reduction: input list length and items per thread
    list_len: u32,
    chunk: u32,
    // window sums: buckets per segment and segments per window
    seg_len: u32,
    segs: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

@group(0) @binding(0) var<uniform> params: MsmParams;

const WORKGROUP: u32 = 64u;

fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
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
