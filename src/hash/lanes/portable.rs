//! The one-lane fallback: the generic kernel over plain u32.

use super::{Group, Lanes, MAX_LANES};

#[derive(Clone, Copy)]
pub(crate) struct Scalar(u32);

// SAFETY: plain integer arithmetic, valid on every processor.
unsafe impl Lanes for Scalar {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(src: *const u32) -> Self {
        Scalar(src.read())
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u32) {
        dst.write(self.0)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Scalar(self.0.wrapping_add(other.0))
    }
    #[inline(always)]
    unsafe fn xor(self, other: Self) -> Self {
        Scalar(self.0 ^ other.0)
    }
    #[inline(always)]
    unsafe fn ror16(self) -> Self {
        Scalar(self.0.rotate_right(16))
    }
    #[inline(always)]
    unsafe fn ror12(self) -> Self {
        Scalar(self.0.rotate_right(12))
    }
    #[inline(always)]
    unsafe fn ror8(self) -> Self {
        Scalar(self.0.rotate_right(8))
    }
    #[inline(always)]
    unsafe fn ror7(self) -> Self {
        Scalar(self.0.rotate_right(7))
    }
    #[inline(always)]
    unsafe fn load_block(blocks: &[*const u8; MAX_LANES]) -> [Self; 16] {
        let block = std::slice::from_raw_parts(blocks[0], 64);
        let mut m = [Scalar(0); 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = Scalar(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        }
        m
    }
}

/// # Safety
/// As [`super::hash_group`].
pub(crate) unsafe fn hash_group(group: &Group<'_>, out: *mut [u8; 32]) {
    super::hash_group::<Scalar>(group, out)
}
