//! Fixed-width unsigned/two's-complement integer helpers on little-endian
//! `u64` limbs, used by the GLV split (exact integer arithmetic, no heap).

pub type U256 = [u64; 4];

/// Full 256x256 -> 512-bit product.
pub fn mul_wide(a: &U256, b: &U256) -> [u64; 8] {
    let mut out = [0u64; 8];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &bj) in b.iter().enumerate() {
            let t = (ai as u128) * (bj as u128) + out[i + j] as u128 + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        out[i + 4] = carry as u64;
    }
    out
}

/// Product modulo 2^256 (two's-complement wrapping).
pub fn mul_low(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    for i in 0..4 {
        let mut carry = 0u128;
        for j in 0..4 - i {
            let t = (a[i] as u128) * (b[j] as u128) + out[i + j] as u128 + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
    }
    out
}

pub fn add(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = 0u128;
    for i in 0..4 {
        let t = a[i] as u128 + b[i] as u128 + carry;
        out[i] = t as u64;
        carry = t >> 64;
    }
    out
}

pub fn neg(a: &U256) -> U256 {
    let inverted = [!a[0], !a[1], !a[2], !a[3]];
    add(&inverted, &[1, 0, 0, 0])
}

pub fn sub(a: &U256, b: &U256) -> U256 {
    add(a, &neg(b))
}

pub fn is_negative(a: &U256) -> bool {
    a[3] >> 63 == 1
}

/// `round(value / 2^256)` for a 512-bit value.
pub fn round_high(value: &[u64; 8]) -> U256 {
    let round_bit = value[3] >> 63;
    add(&[value[4], value[5], value[6], value[7]], &[round_bit, 0, 0, 0])
}

pub fn ge(a: &U256, b: &U256) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

/// `round(n * 2^256 / modulus)` by binary long division; needs `modulus < 2^254`
/// so the running remainder (< 2 * modulus) never overflows four limbs.
pub fn scaled_quotient(n: &U256, modulus: &U256) -> U256 {
    let mut numerator = [0u64; 8];
    numerator[4..].copy_from_slice(n);
    let mut quotient = [0u64; 4];
    let mut rem: U256 = [0; 4];
    for bit in (0..512).rev() {
        let incoming = (numerator[bit / 64] >> (bit % 64)) & 1;
        rem = add(&rem, &rem);
        rem[0] |= incoming;
        if ge(&rem, modulus) {
            rem = sub(&rem, modulus);
            // The quotient is far below 2^256 for the small lattice entries used here.
            if bit < 256 {
                quotient[bit / 64] |= 1 << (bit % 64);
            }
        }
    }
    if ge(&add(&rem, &rem), modulus) {
        quotient = add(&quotient, &[1, 0, 0, 0]);
    }
    quotient
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_arithmetic_matches_u128() {
        let a: U256 = [u64::MAX, 7, 0, 0];
        let b: U256 = [3, 0, 0, 0];
        let p = mul_wide(&a, &b);
        let expect = (u64::MAX as u128) * 3;
        assert_eq!(p[0], expect as u64);
        assert_eq!(p[1], (expect >> 64) as u64 + 21);
        assert_eq!(sub(&[0; 4], &[1, 0, 0, 0]), [u64::MAX; 4]);
        assert!(is_negative(&neg(&[5, 0, 0, 0])));
        assert_eq!(mul_low(&neg(&[5, 0, 0, 0]), &[3, 0, 0, 0]), neg(&[15, 0, 0, 0]));
    }

    #[test]
    fn scaled_quotient_rounds() {
        // 2^256 * 1 / 3 = 0x5555...5 remainder 1 -> rounds down.
        let q = scaled_quotient(&[1, 0, 0, 0], &[3, 0, 0, 0]);
        assert_eq!(q, [0x5555_5555_5555_5555; 4]);
        // 2^256 * 2 / 3 = 0xAAAA...A remainder 2 -> rounds up.
        let q = scaled_quotient(&[2, 0, 0, 0], &[3, 0, 0, 0]);
        assert_eq!(q, [0xAAAA_AAAA_AAAA_AAAB, 0xAAAA_AAAA_AAAA_AAAA, 0xAAAA_AAAA_AAAA_AAAA, 0xAAAA_AAAA_AAAA_AAAA]);
    }
}
