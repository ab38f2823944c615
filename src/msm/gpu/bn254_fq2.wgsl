// Fq2 = Fq[u]/(u² + 1), the field of BN254's G2 coordinates: c0 + c1·u, each
// half an Fe of the field path before this file (Montgomery form). The
// operations G2's curve formulas need, on top of the Fe ones.

struct Fe2 {
    c0: Fe,
    c1: Fe,
}

fn fe2_zero() -> Fe2 {
    return Fe2(fe_zero(), fe_zero());
}

fn fe2_one() -> Fe2 {
    return Fe2(fe_one(), fe_zero());
}

fn fe2_is_zero(a: Fe2) -> bool {
    return fe_is_zero(a.c0) && fe_is_zero(a.c1);
}

fn fe2_eq(a: Fe2, b: Fe2) -> bool {
    return fe_eq(a.c0, b.c0) && fe_eq(a.c1, b.c1);
}

fn fe2_add(a: Fe2, b: Fe2) -> Fe2 {
    return Fe2(fe_add(a.c0, b.c0), fe_add(a.c1, b.c1));
}

fn fe2_sub(a: Fe2, b: Fe2) -> Fe2 {
    return Fe2(fe_sub(a.c0, b.c0), fe_sub(a.c1, b.c1));
}

fn fe2_dbl(a: Fe2) -> Fe2 {
    return Fe2(fe_dbl(a.c0), fe_dbl(a.c1));
}

fn fe2_neg(a: Fe2) -> Fe2 {
    return Fe2(fe_neg(a.c0), fe_neg(a.c1));
}

// Karatsuba: three Fe products. With u² = −1:
// (a0 + a1·u)(b0 + b1·u) = (a0·b0 − a1·b1) + ((a0 + a1)(b0 + b1) − a0·b0 − a1·b1)·u.
fn fe2_mul(a: Fe2, b: Fe2) -> Fe2 {
    let v0 = fe_mul(a.c0, b.c0);
    let v1 = fe_mul(a.c1, b.c1);
    let cross = fe_mul(fe_add(a.c0, a.c1), fe_add(b.c0, b.c1));
    return Fe2(fe_sub(v0, v1), fe_sub(fe_sub(cross, v0), v1));
}

// (a0 + a1·u)² = (a0 + a1)(a0 − a1) + 2·a0·a1·u: two Fe products.
fn fe2_sqr(a: Fe2) -> Fe2 {
    let c0 = fe_mul(fe_add(a.c0, a.c1), fe_sub(a.c0, a.c1));
    return Fe2(c0, fe_dbl(fe_mul(a.c0, a.c1)));
}

// 1/a = (a0 − a1·u)/(a0² + a1²); zero stays zero (as fe_inv).
fn fe2_inv(a: Fe2) -> Fe2 {
    let t = fe_inv(fe_add(fe_sqr(a.c0), fe_sqr(a.c1)));
    return Fe2(fe_mul(a.c0, t), fe_neg(fe_mul(a.c1, t)));
}

// Storage: c0's eight words, then c1's.
fn fe2_from_words(w_in: array<u32, 16>) -> Fe2 {
    var w = w_in;
    var c0: array<u32, 8>;
    var c1: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        c0[k] = w[k];
        c1[k] = w[8u + k];
    }
    return Fe2(fe_from_words(c0), fe_from_words(c1));
}

fn fe2_to_words(a: Fe2) -> array<u32, 16> {
    var c0 = fe_to_words(a.c0);
    var c1 = fe_to_words(a.c1);
    var w: array<u32, 16>;
    for (var k = 0u; k < 8u; k++) {
        w[k] = c0[k];
        w[8u + k] = c1[k];
    }
    return w;
}
