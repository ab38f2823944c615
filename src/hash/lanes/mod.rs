//! Lane-batched BLAKE3 compression: one message per SIMD lane, many messages
//! per instruction.
//!
//! Every kernel runs the same generic code ([`hash_group`]) over a vector type
//! implementing [`Lanes`]: 16 lanes of u32 with AVX-512, 8 with AVX2, 4 with
//! SSE4.1 and 1 in the portable fallback. The message words are moved into
//! lane order with an in-register transpose, so the caller never reorders
//! bytes in memory. All lanes of a group share one length (the pool groups by
//! length), so block boundaries and block flags are the same in every lane;
//! keys and mode flags may differ per lane.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(target_arch = "x86_64")]
mod sse41;

use super::consts::{BLOCK_LEN, CHUNK_END, CHUNK_LEN, CHUNK_START, IV, MSG_SCHEDULE, ROOT};

/// The widest kernel any ISA here has.
pub const MAX_LANES: usize = 16;

/// A vector of `W` u32 lanes and the operations BLAKE3 needs on it.
///
/// # Safety
/// Implementations use instructions of one ISA; callers must only run them
/// inside a function compiled for that ISA, on a processor that has it.
pub(crate) unsafe trait Lanes: Copy {
    const W: usize;
    unsafe fn splat(x: u32) -> Self;
    /// Lane `i` = `src[i]` for `i < W`.
    unsafe fn load(src: *const u32) -> Self;
    unsafe fn store(self, dst: *mut u32);
    unsafe fn add(self, other: Self) -> Self;
    unsafe fn xor(self, other: Self) -> Self;
    unsafe fn ror16(self) -> Self;
    unsafe fn ror12(self) -> Self;
    unsafe fn ror8(self) -> Self;
    unsafe fn ror7(self) -> Self;
    /// `m[w]` = word `w` of the 64-byte block at `blocks[lane]`, for every lane.
    unsafe fn load_block(blocks: &[*const u8; MAX_LANES]) -> [Self; 16];

    /// Write lane `l`'s eight chaining words to `out[l]` as 32 bytes, for `l < n`.
    #[inline(always)]
    unsafe fn store_digests(cv: &[Self; 8], out: *mut [u8; 32], n: usize) {
        let mut words = [0u32; 8 * MAX_LANES];
        for (i, v) in cv.iter().enumerate() {
            v.store(words.as_mut_ptr().add(i * Self::W));
        }
        for lane in 0..n {
            let mut digest = [0u8; 32];
            for i in 0..8 {
                digest[4 * i..4 * i + 4].copy_from_slice(&words[i * Self::W + lane].to_le_bytes());
            }
            out.add(lane).write(digest);
        }
    }
}

/// One group of `n <= W` single-chunk messages of a common length.
pub(crate) struct Group<'a> {
    /// Start of each lane's message; lanes at and past `n` repeat lane 0.
    pub msgs: [*const u8; MAX_LANES],
    /// Each lane's key (the IV for plain hashing).
    pub keys: [&'a [u32; 8]; MAX_LANES],
    /// Each lane's mode flag (0, KEYED_HASH or DERIVE_KEY_MATERIAL).
    pub flags: [u32; MAX_LANES],
    /// Whether every lane has lane 0's key and flags (then they are broadcast).
    pub uniform: bool,
    /// The common message length, at most [`CHUNK_LEN`].
    pub len: usize,
    /// How many lanes carry real messages.
    pub n: usize,
}

#[inline(always)]
unsafe fn g<V: Lanes>(v: &mut [V; 16], a: usize, b: usize, c: usize, d: usize, x: V, y: V) {
    v[a] = v[a].add(v[b]).add(x);
    v[d] = v[d].xor(v[a]).ror16();
    v[c] = v[c].add(v[d]);
    v[b] = v[b].xor(v[c]).ror12();
    v[a] = v[a].add(v[b]).add(y);
    v[d] = v[d].xor(v[a]).ror8();
    v[c] = v[c].add(v[d]);
    v[b] = v[b].xor(v[c]).ror7();
}

#[inline(always)]
unsafe fn round<V: Lanes>(v: &mut [V; 16], m: &[V; 16], r: usize) {
    let s = &MSG_SCHEDULE[r];
    g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
}

/// The BLAKE3 compression function over all lanes at once; returns the new
/// chaining value (the first eight output words).
#[inline(always)]
unsafe fn compress<V: Lanes>(cv: &[V; 8], m: &[V; 16], block_len: u32, flags: V) -> [V; 8] {
    let zero = V::splat(0);
    let mut v = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        V::splat(IV[0]),
        V::splat(IV[1]),
        V::splat(IV[2]),
        V::splat(IV[3]),
        zero,
        zero,
        V::splat(block_len),
        flags,
    ];
    // Written out so every schedule index is a constant after inlining.
    round(&mut v, m, 0);
    round(&mut v, m, 1);
    round(&mut v, m, 2);
    round(&mut v, m, 3);
    round(&mut v, m, 4);
    round(&mut v, m, 5);
    round(&mut v, m, 6);
    [
        v[0].xor(v[8]),
        v[1].xor(v[9]),
        v[2].xor(v[10]),
        v[3].xor(v[11]),
        v[4].xor(v[12]),
        v[5].xor(v[13]),
        v[6].xor(v[14]),
        v[7].xor(v[15]),
    ]
}

/// Hash every lane of `group` as a whole single-chunk message and write the
/// `group.n` digests to `out`.
///
/// # Safety
/// `V`'s ISA must be available; each `group.msgs[l]` must point at `group.len`
/// readable bytes; `out` must have room for `group.n` digests.
#[inline(always)]
unsafe fn hash_group<V: Lanes>(group: &Group<'_>, out: *mut [u8; 32]) {
    debug_assert!(group.len <= CHUNK_LEN && group.n <= V::W);
    let mut cv = [V::splat(0); 8];
    let mode;
    if group.uniform {
        for (i, word) in cv.iter_mut().enumerate() {
            *word = V::splat(group.keys[0][i]);
        }
        mode = V::splat(group.flags[0]);
    } else {
        let mut column = [0u32; MAX_LANES];
        for (i, word) in cv.iter_mut().enumerate() {
            for (lane, slot) in column.iter_mut().enumerate().take(V::W) {
                *slot = group.keys[lane][i];
            }
            *word = V::load(column.as_ptr());
        }
        mode = V::load(group.flags.as_ptr());
    }
    let blocks = group.len.div_ceil(BLOCK_LEN).max(1);
    for block in 0..blocks {
        let last = block + 1 == blocks;
        let start = block * BLOCK_LEN;
        let block_len = if last { group.len - start } else { BLOCK_LEN };
        let mut ptrs = [std::ptr::null::<u8>(); MAX_LANES];
        let m = if block_len < BLOCK_LEN {
            // The final partial block is read zero-padded from a copy.
            let mut tails = [[0u8; BLOCK_LEN]; MAX_LANES];
            for ((ptr, tail), msg) in ptrs.iter_mut().zip(tails.iter_mut()).zip(&group.msgs).take(V::W) {
                std::ptr::copy_nonoverlapping(msg.add(start), tail.as_mut_ptr(), block_len);
                *ptr = tail.as_ptr();
            }
            V::load_block(&ptrs)
        } else {
            for (ptr, msg) in ptrs.iter_mut().zip(&group.msgs).take(V::W) {
                *ptr = msg.add(start);
            }
            V::load_block(&ptrs)
        };
        let mut block_flags = 0;
        if block == 0 {
            block_flags |= CHUNK_START;
        }
        if last {
            block_flags |= CHUNK_END | ROOT;
        }
        cv = compress(&cv, &m, block_len as u32, mode.xor(V::splat(block_flags)));
    }
    V::store_digests(&cv, out, group.n);
}

/// The SIMD instruction set a CPU kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Plain Rust, one message at a time.
    Portable,
    /// 4 lanes of u32 (SSE4.1).
    Sse41,
    /// 8 lanes of u32 (AVX2).
    Avx2,
    /// 16 lanes of u32 (AVX-512F).
    Avx512,
}

impl Kernel {
    /// How many messages one compression call handles.
    pub fn lanes(self) -> usize {
        match self {
            Kernel::Portable => 1,
            Kernel::Sse41 => 4,
            Kernel::Avx2 => 8,
            Kernel::Avx512 => 16,
        }
    }

    /// Whether this processor can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse41 => is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every kernel this processor can run, widest first.
    pub fn supported() -> Vec<Kernel> {
        [Kernel::Avx512, Kernel::Avx2, Kernel::Sse41, Kernel::Portable]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// Hash one group with this kernel.
    ///
    /// # Safety
    /// The kernel must be supported (checked by the pool when it picks one);
    /// `group` and `out` as in [`hash_group`].
    pub(crate) unsafe fn hash_group(self, group: &Group<'_>, out: *mut [u8; 32]) {
        match self {
            Kernel::Portable => portable::hash_group(group, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse41 => sse41::hash_group(group, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::hash_group(group, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::hash_group(group, out),
            #[cfg(not(target_arch = "x86_64"))]
            _ => portable::hash_group(group, out),
        }
    }
}

impl std::str::FromStr for Kernel {
    type Err = String;

    /// A kernel by its name: portable, sse4.1, avx2 or avx512.
    fn from_str(name: &str) -> Result<Kernel, String> {
        let name = name.trim().to_ascii_lowercase();
        [Kernel::Avx512, Kernel::Avx2, Kernel::Sse41, Kernel::Portable]
            .into_iter()
            .find(|k| k.to_string() == name)
            .ok_or_else(|| format!("no hash kernel is called {name:?} (portable, sse4.1, avx2 or avx512)"))
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernel::Portable => "portable",
            Kernel::Sse41 => "sse4.1",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        })
    }
}
