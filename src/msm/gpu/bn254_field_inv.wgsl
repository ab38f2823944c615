// Field inversion by Fermat's little theorem, a^(p-2), shared by both field
// paths. Zero maps to zero. P_MINUS_2_WORDS (little-endian 32-bit words) comes
// from the Rust prelude.

fn fe_inv(a: Fe) -> Fe {
    var e = P_MINUS_2_WORDS;
    var r = fe_one();
    for (var i = 0u; i < 256u; i++) {
        let bit_index = 255u - i;
        r = fe_sqr(r);
        if ((e[bit_index / 32u] >> (bit_index % 32u)) & 1u) == 1u {
            r = fe_mul(r, a);
        }
    }
    return r;
}
