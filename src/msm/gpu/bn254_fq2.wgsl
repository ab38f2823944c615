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
// The products run in a loop with one fe_mul call site: drivers inline every
// call, so three inlined Fe products per Fq2 product made G2's pipelines
// several times larger and lavapipe's compile that much slower. (What the
// loop costs on a hardware GPU is not measured yet.)
fn fe2_mul(a: Fe2, b: Fe2) -> Fe2 {
    var x = array<Fe, 3>(a.c0, a.c1, fe_add(a.c0, a.c1));
    var y = array<Fe, 3>(b.c0, b.c1, fe_add(b.c0, b.c1));
    var v: array<Fe, 3>;
    for (var k = 0u; k < 3u; k++) {
        v[k] = fe_mul(x[k], y[k]);
    }
    return Fe2(fe_sub(v[0], v[1]), fe_sub(fe_sub(v[2], v[0]), v[1]));
}

// (a0 + a1·u)² = (a0 + a1)(a0 − a1) + 2·a0·a1·u: two Fe products, one call
// site (as fe2_mul).
fn fe2_sqr(a: Fe2) -> Fe2 {
    var x = array<Fe, 2>(fe_add(a.c0, a.c1), a.c0);
    var y = array<Fe, 2>(fe_sub(a.c0, a.c1), a.c1);
    var v: array<Fe, 2>;
    for (var k = 0u; k < 2u; k++) {
        v[k] = fe_mul(x[k], y[k]);
    }
    return Fe2(v[0], fe_dbl(v[1]));
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
