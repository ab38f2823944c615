// BN254 base field Fq, 32-bit-only path (runs on every adapter).
//
// An element is 16 limbs of 16 bits, little-endian, each held in a u32, in
// Montgomery form with R = 2^256 (the same form arkworks uses, so host words
// cross the bus unchanged). Values are kept fully reduced in [0, p). 16-bit
// limbs make every limb product plus accumulator plus carry fit in one u32, so
// CIOS needs no 64-bit arithmetic. The constants P16, N0_16, R2_16 and
// ONE_MONT_16 come from the Rust prelude, generated from ark-bn254.

alias Fe = array<u32, 16>;

fn fe_zero() -> Fe {
    return Fe();
}

fn fe_one() -> Fe {
    return ONE_MONT_16;
}

// Storage holds eight little-endian 32-bit words per element.
fn fe_from_words(words: array<u32, 8>) -> Fe {
    var w = words;
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        r[2u * i] = w[i] & 0xffffu;
        r[2u * i + 1u] = w[i] >> 16u;
    }
    return r;
}

fn fe_to_words(a_in: Fe) -> array<u32, 8> {
    var a = a_in;
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = a[2u * i] | (a[2u * i + 1u] << 16u);
    }
    return w;
}

fn fe_is_zero(a_in: Fe) -> bool {
    var a = a_in;
    var acc = 0u;
    for (var i = 0u; i < 16u; i++) {
        acc |= a[i];
    }
    return acc == 0u;
}

fn fe_eq(a_in: Fe, b_in: Fe) -> bool {
    var a = a_in;
    var b = b_in;
    var diff = 0u;
    for (var i = 0u; i < 16u; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0u;
}

// a - p when a >= p, else a; valid for a < 2p.
fn fe_reduce_once(a_in: Fe) -> Fe {
    var a = a_in;
    var p = P16;
    var r: Fe;
    var borrow = 0u;
    for (var i = 0u; i < 16u; i++) {
        let d = a[i] - p[i] - borrow;
        r[i] = d & 0xffffu;
        borrow = d >> 31u;
    }
    if borrow != 0u {
        return a;
    }
    return r;
}

fn fe_add(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var r: Fe;
    var carry = 0u;
    for (var i = 0u; i < 16u; i++) {
        let s = a[i] + b[i] + carry;
        r[i] = s & 0xffffu;
        carry = s >> 16u;
    }
    // a + b < 2p < 2^255: no carry leaves the top limb.
    return fe_reduce_once(r);
}

fn fe_dbl(a: Fe) -> Fe {
    return fe_add(a, a);
}

fn fe_sub(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var p = P16;
    var r: Fe;
    var borrow = 0u;
    for (var i = 0u; i < 16u; i++) {
        let d = a[i] - b[i] - borrow;
        r[i] = d & 0xffffu;
        borrow = d >> 31u;
    }
    if borrow != 0u {
        var carry = 0u;
        for (var i = 0u; i < 16u; i++) {
            let s = r[i] + p[i] + carry;
            r[i] = s & 0xffffu;
            carry = s >> 16u;
        }
    }
    return r;
}

fn fe_neg(a: Fe) -> Fe {
    return fe_sub(fe_zero(), a);
}

// Montgomery product a * b / R mod p (CIOS). Every step is at most
// (2^16-1) + (2^16-1)^2 + (2^16-1) = 2^32 - 1, so u32 never overflows.
fn fe_mul(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var p = P16;
    var t: array<u32, 18>;
    for (var i = 0u; i < 16u; i++) {
        let bi = b[i];
        var c = 0u;
        for (var j = 0u; j < 16u; j++) {
            let x = t[j] + a[j] * bi + c;
            t[j] = x & 0xffffu;
            c = x >> 16u;
        }
        let top = t[16] + c;
        t[16] = top & 0xffffu;
        t[17] = top >> 16u;

        let m = (t[0] * N0_16) & 0xffffu;
        c = (t[0] + m * p[0]) >> 16u;
        for (var j = 1u; j < 16u; j++) {
            let x = t[j] + m * p[j] + c;
            t[j - 1u] = x & 0xffffu;
            c = x >> 16u;
        }
        let hi = t[16] + c;
        t[15] = hi & 0xffffu;
        t[16] = t[17] + (hi >> 16u);
        t[17] = 0u;
    }
    // p < R/4 keeps the CIOS result below 2p, so t[16] is zero here.
    var r: Fe;
    for (var i = 0u; i < 16u; i++) {
        r[i] = t[i];
    }
    return fe_reduce_once(r);
}

fn fe_sqr(a: Fe) -> Fe {
    return fe_mul(a, a);
}

fn fe_to_mont(a: Fe) -> Fe {
    return fe_mul(a, R2_16);
}

fn fe_from_mont(a: Fe) -> Fe {
    var one: Fe;
    one[0] = 1u;
    return fe_mul(a, one);
}
