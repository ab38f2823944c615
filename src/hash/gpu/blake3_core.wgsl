// BLAKE3 compression, shared by the hash and Merkle entry points.
// Every message here is a single chunk or a parent block, so the 64-bit
// chunk counter is always zero.

const IV = array<u32, 8>(
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
);
const CHUNK_START: u32 = 1u;
const CHUNK_END: u32 = 2u;
const ROOT: u32 = 8u;

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

// The quarter-round G on (a, b, c, d) with message words x and y.
fn g(a0: u32, b0: u32, c0: u32, d0: u32, x: u32, y: u32) -> vec4<u32> {
    var a = a0 + b0 + x;
    var d = rotr(d0 ^ a, 16u);
    var c = c0 + d;
    var b = rotr(b0 ^ c, 12u);
    a = a + b + y;
    d = rotr(d ^ a, 8u);
    c = c + d;
    b = rotr(b ^ c, 7u);
    return vec4<u32>(a, b, c, d);
}

fn mix_round(v: ptr<function, array<u32, 16>>, m: ptr<function, array<u32, 16>>) {
    // Columns.
    var t = g((*v)[0], (*v)[4], (*v)[8], (*v)[12], (*m)[0], (*m)[1]);
    (*v)[0] = t.x; (*v)[4] = t.y; (*v)[8] = t.z; (*v)[12] = t.w;
    t = g((*v)[1], (*v)[5], (*v)[9], (*v)[13], (*m)[2], (*m)[3]);
    (*v)[1] = t.x; (*v)[5] = t.y; (*v)[9] = t.z; (*v)[13] = t.w;
    t = g((*v)[2], (*v)[6], (*v)[10], (*v)[14], (*m)[4], (*m)[5]);
    (*v)[2] = t.x; (*v)[6] = t.y; (*v)[10] = t.z; (*v)[14] = t.w;
    t = g((*v)[3], (*v)[7], (*v)[11], (*v)[15], (*m)[6], (*m)[7]);
    (*v)[3] = t.x; (*v)[7] = t.y; (*v)[11] = t.z; (*v)[15] = t.w;
    // Diagonals.
    t = g((*v)[0], (*v)[5], (*v)[10], (*v)[15], (*m)[8], (*m)[9]);
    (*v)[0] = t.x; (*v)[5] = t.y; (*v)[10] = t.z; (*v)[15] = t.w;
    t = g((*v)[1], (*v)[6], (*v)[11], (*v)[12], (*m)[10], (*m)[11]);
    (*v)[1] = t.x; (*v)[6] = t.y; (*v)[11] = t.z; (*v)[12] = t.w;
    t = g((*v)[2], (*v)[7], (*v)[8], (*v)[13], (*m)[12], (*m)[13]);
    (*v)[2] = t.x; (*v)[7] = t.y; (*v)[8] = t.z; (*v)[13] = t.w;
    t = g((*v)[3], (*v)[4], (*v)[9], (*v)[14], (*m)[14], (*m)[15]);
    (*v)[3] = t.x; (*v)[4] = t.y; (*v)[9] = t.z; (*v)[14] = t.w;
}

// The message word order of the next round.
fn permute(m: ptr<function, array<u32, 16>>) {
    let o = *m;
    *m = array<u32, 16>(o[2], o[6], o[3], o[10], o[7], o[0], o[4], o[13],
                        o[1], o[11], o[12], o[5], o[9], o[14], o[15], o[8]);
}

// Compress one block into the chaining value `cv` (counter 0).
fn compress(cv: array<u32, 8>, block: array<u32, 16>, block_len: u32, flags: u32) -> array<u32, 8> {
    var v = array<u32, 16>(cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                           IV[0], IV[1], IV[2], IV[3], 0u, 0u, block_len, flags);
    var m = block;
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m); permute(&m);
    mix_round(&v, &m);
    return array<u32, 8>(v[0] ^ v[8], v[1] ^ v[9], v[2] ^ v[10], v[3] ^ v[11],
                         v[4] ^ v[12], v[5] ^ v[13], v[6] ^ v[14], v[7] ^ v[15]);
}

// A flat invocation index over a 2-D grid (65,535 workgroups per dimension).
fn flat_index(wg: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (wg.y * groups.x + wg.x) * WORKGROUP_SIZE + local;
}
