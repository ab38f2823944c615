// BN254 points as both curve-formula files (bn254_curve.wgsl, the straight
// version, and bn254_curve_stepped.wgsl) take them: XYZZ coordinates
// (x = X/ZZ, y = Y/ZZZ, ZZ^3 = ZZZ^2, ZZ = 0 the point at infinity) and
// affine bases with (0, 0) for infinity, which is not on the curve.

struct Xyzz {
    x: Fe,
    y: Fe,
    zz: Fe,
    zzz: Fe,
}

struct Affine {
    x: Fe,
    y: Fe,
}

fn xyzz_infinity() -> Xyzz {
    return Xyzz(fe_zero(), fe_zero(), fe_zero(), fe_zero());
}

fn xyzz_is_infinity(p: Xyzz) -> bool {
    return fe_is_zero(p.zz);
}

fn affine_is_infinity(q: Affine) -> bool {
    return fe_is_zero(q.x) && fe_is_zero(q.y);
}

fn affine_neg(q: Affine) -> Affine {
    return Affine(q.x, fe_neg(q.y));
}

fn xyzz_from_affine(q: Affine) -> Xyzz {
    if affine_is_infinity(q) {
        return xyzz_infinity();
    }
    return Xyzz(q.x, q.y, fe_one(), fe_one());
}
