// BN254 G1 (y^2 = x^3 + 3) in XYZZ coordinates (the point types and their
// helpers: bn254_curve_points.wgsl). Formulas: add-2008-s, madd-2008-s,
// dbl-2008-s-1 and mdbl-2008-s-1 (a = 0) from the Explicit-Formulas Database,
// with the cases they exclude (infinity, equal and opposite points) handled.

// 2q for an affine q.
fn xyzz_double_affine(q: Affine) -> Xyzz {
    if affine_is_infinity(q) {
        return xyzz_infinity();
    }
    let u = fe_dbl(q.y);
    let v = fe_sqr(u);
    let w = fe_mul(u, v);
    let s = fe_mul(q.x, v);
    let xx = fe_sqr(q.x);
    let m = fe_add(fe_dbl(xx), xx);
    let x3 = fe_sub(fe_sqr(m), fe_dbl(s));
    let y3 = fe_sub(fe_mul(m, fe_sub(s, x3)), fe_mul(w, q.y));
    return Xyzz(x3, y3, v, w);
}

// 2p; infinity stays infinity because ZZ3 = V * ZZ1.
fn xyzz_double(p: Xyzz) -> Xyzz {
    let u = fe_dbl(p.y);
    let v = fe_sqr(u);
    let w = fe_mul(u, v);
    let s = fe_mul(p.x, v);
    let xx = fe_sqr(p.x);
    let m = fe_add(fe_dbl(xx), xx);
    let x3 = fe_sub(fe_sqr(m), fe_dbl(s));
    let y3 = fe_sub(fe_mul(m, fe_sub(s, x3)), fe_mul(w, p.y));
    return Xyzz(x3, y3, fe_mul(v, p.zz), fe_mul(w, p.zzz));
}

// p + q for an affine q (mixed addition).
fn xyzz_add_affine(p: Xyzz, q: Affine) -> Xyzz {
    if affine_is_infinity(q) {
        return p;
    }
    if xyzz_is_infinity(p) {
        return xyzz_from_affine(q);
    }
    let u2 = fe_mul(q.x, p.zz);
    let s2 = fe_mul(q.y, p.zzz);
    let h = fe_sub(u2, p.x);
    let r = fe_sub(s2, p.y);
    if fe_is_zero(h) {
        if fe_is_zero(r) {
            return xyzz_double_affine(q);
        }
        return xyzz_infinity();
    }
    let pp = fe_sqr(h);
    let ppp = fe_mul(h, pp);
    let q2 = fe_mul(p.x, pp);
    let x3 = fe_sub(fe_sub(fe_sqr(r), ppp), fe_dbl(q2));
    let y3 = fe_sub(fe_mul(r, fe_sub(q2, x3)), fe_mul(p.y, ppp));
    return Xyzz(x3, y3, fe_mul(p.zz, pp), fe_mul(p.zzz, ppp));
}

// p + q, both in XYZZ.
fn xyzz_add(p: Xyzz, q: Xyzz) -> Xyzz {
    if xyzz_is_infinity(q) {
        return p;
    }
    if xyzz_is_infinity(p) {
        return q;
    }
    let u1 = fe_mul(p.x, q.zz);
    let u2 = fe_mul(q.x, p.zz);
    let s1 = fe_mul(p.y, q.zzz);
    let s2 = fe_mul(q.y, p.zzz);
    let h = fe_sub(u2, u1);
    let r = fe_sub(s2, s1);
    if fe_is_zero(h) {
        if fe_is_zero(r) {
            return xyzz_double(p);
        }
        return xyzz_infinity();
    }
    let pp = fe_sqr(h);
    let ppp = fe_mul(h, pp);
    let q1 = fe_mul(u1, pp);
    let x3 = fe_sub(fe_sub(fe_sqr(r), ppp), fe_dbl(q1));
    let y3 = fe_sub(fe_mul(r, fe_sub(q1, x3)), fe_mul(s1, ppp));
    return Xyzz(x3, y3, fe_mul(fe_mul(p.zz, q.zz), pp), fe_mul(fe_mul(p.zzz, q.zzz), ppp));
}
