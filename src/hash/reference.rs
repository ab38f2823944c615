//! A plain, one-message-at-a-time BLAKE3 with the full chunk tree, used for
//! derive-key context keys (which the blake3 crate does not expose) and as an
//! independent twin in tests.

use super::consts::{BLOCK_LEN, CHUNK_END, CHUNK_LEN, CHUNK_START, IV, MSG_SCHEDULE, PARENT, ROOT};

fn g(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(12);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(8);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(7);
}

/// The compression function, truncated to the new chaining value.
pub fn compress(cv: &[u32; 8], block: &[u8; BLOCK_LEN], counter: u64, block_len: u32, flags: u32) -> [u32; 8] {
    let mut m = [0u32; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let mut v = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        counter as u32,
        (counter >> 32) as u32,
        block_len,
        flags,
    ];
    for s in &MSG_SCHEDULE {
        g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    std::array::from_fn(|i| v[i] ^ v[i + 8])
}

/// The chaining value of one chunk (`chunk.len() <= CHUNK_LEN`).
fn chunk_cv(key: &[u32; 8], flags: u32, chunk: &[u8], index: u64, root: bool) -> [u32; 8] {
    let blocks = chunk.len().div_ceil(BLOCK_LEN).max(1);
    let mut cv = *key;
    for b in 0..blocks {
        let part = &chunk[b * BLOCK_LEN..chunk.len().min((b + 1) * BLOCK_LEN)];
        let mut block = [0u8; BLOCK_LEN];
        block[..part.len()].copy_from_slice(part);
        let mut block_flags = flags;
        if b == 0 {
            block_flags |= CHUNK_START;
        }
        if b + 1 == blocks {
            block_flags |= CHUNK_END;
            if root {
                block_flags |= ROOT;
            }
        }
        cv = compress(&cv, &block, index, part.len() as u32, block_flags);
    }
    cv
}

fn parent_cv(key: &[u32; 8], flags: u32, left: &[u32; 8], right: &[u32; 8], root: bool) -> [u32; 8] {
    let mut block = [0u8; BLOCK_LEN];
    for (bytes, word) in block.chunks_exact_mut(4).zip(left.iter().chain(right)) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    compress(key, &block, 0, BLOCK_LEN as u32, flags | PARENT | if root { ROOT } else { 0 })
}

/// The 32-byte BLAKE3 output of `input` under `key` and mode `flags`, as words.
pub fn hash_words(key: &[u32; 8], flags: u32, input: &[u8]) -> [u32; 8] {
    let chunks: Vec<&[u8]> = if input.is_empty() { vec![input] } else { input.chunks(CHUNK_LEN).collect() };
    let last = chunks.len() - 1;
    if last == 0 {
        return chunk_cv(key, flags, chunks[0], 0, true);
    }
    // Merge completed subtrees as soon as their sibling exists (the CV stack).
    let mut stack: Vec<[u32; 8]> = Vec::new();
    for (i, chunk) in chunks[..last].iter().enumerate() {
        let mut cv = chunk_cv(key, flags, chunk, i as u64, false);
        let mut total = i as u64 + 1;
        while total & 1 == 0 {
            let left = stack.pop().expect("a completed left subtree is on the stack");
            cv = parent_cv(key, flags, &left, &cv, false);
            total >>= 1;
        }
        stack.push(cv);
    }
    let mut cv = chunk_cv(key, flags, chunks[last], last as u64, false);
    while let Some(left) = stack.pop() {
        cv = parent_cv(key, flags, &left, &cv, stack.is_empty());
    }
    cv
}

#[cfg(test)]
mod tests {
    use super::super::consts::{words_to_bytes, DERIVE_KEY_CONTEXT};
    use super::*;

    #[test]
    fn matches_the_blake3_crate_across_chunk_boundaries() {
        for len in [0usize, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 5000, 8193] {
            let input: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(words_to_bytes(&hash_words(&IV, 0, &input)), *blake3::hash(&input).as_bytes(), "len {len}");
        }
    }

    #[test]
    fn context_key_gives_the_crate_derive_key() {
        let context = "causality-vm reference test";
        let key = hash_words(&IV, DERIVE_KEY_CONTEXT, context.as_bytes());
        let material = b"material";
        let ours = hash_words(&key, super::super::consts::DERIVE_KEY_MATERIAL, material);
        assert_eq!(words_to_bytes(&ours), blake3::derive_key(context, material));
    }
}
