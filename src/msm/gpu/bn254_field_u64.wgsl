// BN254 base field Fq, 64-bit path for adapters with SHADER_INT64.
//
// An element is 8 limbs of 32 bits, little-endian, in Montgomery form with
// R = 2^256 (the storage layout itself, so loads and stores are copies). Limb
// products and carries use u64: (2^32-1) + (2^32-1)^2 + (2^32-1) = 2^64 - 1, so
// one CIOS step never overflows. Values are kept fully reduced in [0, p). The
// constants P32, N0_32, R2_32 and ONE_MONT_32 come from the Rust prelude.

alias Fe = array<u32, 8>;

fn fe_zero() -> Fe {
    return Fe();
}

fn fe_one() -> Fe {
    return ONE_MONT_32;
}

fn fe_from_words(words: array<u32, 8>) -> Fe {
    return words;
}

fn fe_to_words(a: Fe) -> array<u32, 8> {
    return a;
}

fn fe_is_zero(a_in: Fe) -> bool {
    var a = a_in;
    var acc = 0u;
    for (var i = 0u; i < 8u; i++) {
        acc |= a[i];
    }
    return acc == 0u;
}

fn fe_eq(a_in: Fe, b_in: Fe) -> bool {
    var a = a_in;
    var b = b_in;
    var diff = 0u;
    for (var i = 0u; i < 8u; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0u;
}

// a - p when a >= p, else a; valid for a < 2p.
fn fe_reduce_once(a_in: Fe) -> Fe {
    var a = a_in;
    var p = P32;
    var r: Fe;
    var borrow = 0lu;
    for (var i = 0u; i < 8u; i++) {
        let d = u64(a[i]) - u64(p[i]) - borrow;
        r[i] = u32(d & 0xfffffffflu);
        borrow = d >> 63u;
    }
    if borrow != 0lu {
        return a;
    }
    return r;
}

fn fe_add(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var r: Fe;
    var carry = 0lu;
    for (var i = 0u; i < 8u; i++) {
        let s = u64(a[i]) + u64(b[i]) + carry;
        r[i] = u32(s & 0xfffffffflu);
        carry = s >> 32u;
    }
    return fe_reduce_once(r);
}

fn fe_dbl(a: Fe) -> Fe {
    return fe_add(a, a);
}

fn fe_sub(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var p = P32;
    var r: Fe;
    var borrow = 0lu;
    for (var i = 0u; i < 8u; i++) {
        let d = u64(a[i]) - u64(b[i]) - borrow;
        r[i] = u32(d & 0xfffffffflu);
        borrow = d >> 63u;
    }
    if borrow != 0lu {
        var carry = 0lu;
        for (var i = 0u; i < 8u; i++) {
            let s = u64(r[i]) + u64(p[i]) + carry;
            r[i] = u32(s & 0xfffffffflu);
            carry = s >> 32u;
        }
    }
    return r;
}

fn fe_neg(a: Fe) -> Fe {
    return fe_sub(fe_zero(), a);
}

// Montgomery product a * b / R mod p (CIOS, 32-bit limbs, u64 accumulators).
fn fe_mul(a_in: Fe, b_in: Fe) -> Fe {
    var a = a_in;
    var b = b_in;
    var p = P32;
    var t: array<u32, 10>;
    for (var i = 0u; i < 8u; i++) {
        let bi = u64(b[i]);
        var c = 0lu;
        for (var j = 0u; j < 8u; j++) {
            let x = u64(t[j]) + u64(a[j]) * bi + c;
            t[j] = u32(x & 0xfffffffflu);
            c = x >> 32u;
        }
        let top = u64(t[8]) + c;
        t[8] = u32(top & 0xfffffffflu);
        t[9] = u32(top >> 32u);

        let m = u64(t[0] * N0_32);
        c = (u64(t[0]) + m * u64(p[0])) >> 32u;
        for (var j = 1u; j < 8u; j++) {
            let x = u64(t[j]) + m * u64(p[j]) + c;
            t[j - 1u] = u32(x & 0xfffffffflu);
            c = x >> 32u;
        }
        let hi = u64(t[8]) + c;
        t[7] = u32(hi & 0xfffffffflu);
        t[8] = t[9] + u32(hi >> 32u);
        t[9] = 0u;
    }
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        r[i] = t[i];
    }
    return fe_reduce_once(r);
}

fn fe_sqr(a: Fe) -> Fe {
    return fe_mul(a, a);
}

fn fe_to_mont(a: Fe) -> Fe {
    return fe_mul(a, R2_32);
}

fn fe_from_mont(a: Fe) -> Fe {
    var one: Fe;
    one[0] = 1u;
    return fe_mul(a, one);
}
