//! The two groups the MSM kernels run over: G1 (coordinates in Fq) and G2
//! (coordinates in Fq2, twice the words). The dispatch graph is the same;
//! only the point sizes and the curve code differ.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    G1,
    G2,
}

impl Group {
    /// 32-bit words of one coordinate (the kernels' `FE_WORDS`).
    pub const fn fe_words(self) -> u32 {
        match self {
            Group::G1 => 8,
            Group::G2 => 16,
        }
    }

    /// Bytes of one stored affine base (x, y).
    pub const fn base_bytes(self) -> u64 {
        2 * 4 * self.fe_words() as u64
    }

    /// Bytes of one stored XYZZ point (x, y, zz, zzz).
    pub const fn point_bytes(self) -> u64 {
        4 * 4 * self.fe_words() as u64
    }

    pub const fn name(self) -> &'static str {
        match self {
            Group::G1 => "G1",
            Group::G2 => "G2",
        }
    }
}
