// The formulas of bn254_curve.wgsl (add-2008-s, madd-2008-s, dbl-2008-s-1,
// XYZZ with a = 0, the same infinity and equal/opposite cases) run as
// straight-line programs over a register file by one small interpreter loop,
// so each curve routine inlines one field product instead of a dozen.
// Drivers inline every call, and over Fq2 (G2) the straight-line version
// made pipelines so large that lavapipe took a quarter of an hour to compile
// one MSM. The same API as bn254_curve.wgsl; written over Fe and renamed for
// Fq2 (shaders::over_fq2), and tested over G1 against the straight version.

// Registers: the left point (X1 Y1 ZZ1 ZZZ1), the right one (X2 Y2 ZZ2
// ZZZ2; X2 Y2 alone when affine), scratch T0..T6. Every program leaves its
// result in the left point's registers.
const X1: u32 = 0u;
const Y1: u32 = 1u;
const ZZ1: u32 = 2u;
const ZZZ1: u32 = 3u;
const X2: u32 = 4u;
const Y2: u32 = 5u;
const ZZ2: u32 = 6u;
const ZZZ2: u32 = 7u;
const T0: u32 = 8u;
const T1: u32 = 9u;
const T2: u32 = 10u;
const T3: u32 = 11u;
const T4: u32 = 12u;
const T5: u32 = 13u;
const T6: u32 = 14u;
const CURVE_REGISTERS: u32 = 15u;

// A step: (operation, destination, left operand, right operand).
const STEP_MUL: u32 = 0u;
const STEP_ADD: u32 = 1u;
const STEP_SUB: u32 = 2u;

// H = T4 and R = T5 after each *_CHECK program: curve_sum branches on them
// (H = 0: equal or opposite points) before the *_FINISH program, or DOUBLE
// on the untouched left point.
const ADD_CHECK = vec2<u32>(0u, 6u);
const ADD_FINISH = vec2<u32>(6u, 21u);
const MADD_CHECK = vec2<u32>(21u, 25u);
const MADD_FINISH = vec2<u32>(25u, 38u);
const DOUBLE = vec2<u32>(38u, 54u);

const CURVE_STEPS = array<vec4<u32>, 54>(
    // ADD_CHECK (add-2008-s): U1 = X1·ZZ2, U2 = X2·ZZ1, S1 = Y1·ZZZ2, S2 = Y2·ZZZ1, H, R.
    vec4<u32>(STEP_MUL, T0, X1, ZZ2),
    vec4<u32>(STEP_MUL, T1, X2, ZZ1),
    vec4<u32>(STEP_MUL, T2, Y1, ZZZ2),
    vec4<u32>(STEP_MUL, T3, Y2, ZZZ1),
    vec4<u32>(STEP_SUB, T4, T1, T0),
    vec4<u32>(STEP_SUB, T5, T3, T2),
    // ADD_FINISH: PP = H², PPP = H·PP, Q = U1·PP, ZZ3 = ZZ1·ZZ2·PP,
    // ZZZ3 = ZZZ1·ZZZ2·PPP, X3 = R² − PPP − 2Q, Y3 = R·(Q − X3) − S1·PPP.
    vec4<u32>(STEP_MUL, T1, T4, T4),
    vec4<u32>(STEP_MUL, T3, T4, T1),
    vec4<u32>(STEP_MUL, T0, T0, T1),
    vec4<u32>(STEP_MUL, ZZ1, ZZ1, ZZ2),
    vec4<u32>(STEP_MUL, ZZ1, ZZ1, T1),
    vec4<u32>(STEP_MUL, ZZZ1, ZZZ1, ZZZ2),
    vec4<u32>(STEP_MUL, ZZZ1, ZZZ1, T3),
    vec4<u32>(STEP_MUL, X1, T5, T5),
    vec4<u32>(STEP_SUB, X1, X1, T3),
    vec4<u32>(STEP_SUB, X1, X1, T0),
    vec4<u32>(STEP_SUB, X1, X1, T0),
    vec4<u32>(STEP_SUB, T0, T0, X1),
    vec4<u32>(STEP_MUL, T0, T5, T0),
    vec4<u32>(STEP_MUL, Y1, T2, T3),
    vec4<u32>(STEP_SUB, Y1, T0, Y1),
    // MADD_CHECK (madd-2008-s): U2 = X2·ZZ1, S2 = Y2·ZZZ1, H = U2 − X1, R = S2 − Y1.
    vec4<u32>(STEP_MUL, T1, X2, ZZ1),
    vec4<u32>(STEP_MUL, T3, Y2, ZZZ1),
    vec4<u32>(STEP_SUB, T4, T1, X1),
    vec4<u32>(STEP_SUB, T5, T3, Y1),
    // MADD_FINISH: PP, PPP, Q = X1·PP, ZZ3 = ZZ1·PP, ZZZ3 = ZZZ1·PPP,
    // X3 = R² − PPP − 2Q, Y3 = R·(Q − X3) − Y1·PPP.
    vec4<u32>(STEP_MUL, T1, T4, T4),
    vec4<u32>(STEP_MUL, T3, T4, T1),
    vec4<u32>(STEP_MUL, T0, X1, T1),
    vec4<u32>(STEP_MUL, ZZ1, ZZ1, T1),
    vec4<u32>(STEP_MUL, ZZZ1, ZZZ1, T3),
    vec4<u32>(STEP_MUL, T2, Y1, T3),
    vec4<u32>(STEP_MUL, X1, T5, T5),
    vec4<u32>(STEP_SUB, X1, X1, T3),
    vec4<u32>(STEP_SUB, X1, X1, T0),
    vec4<u32>(STEP_SUB, X1, X1, T0),
    vec4<u32>(STEP_SUB, T0, T0, X1),
    vec4<u32>(STEP_MUL, T0, T5, T0),
    vec4<u32>(STEP_SUB, Y1, T0, T2),
    // DOUBLE (dbl-2008-s-1): U = 2Y1, V = U², W = U·V, S = X1·V, M = 3X1²,
    // X3 = M² − 2S, Y3 = M·(S − X3) − W·Y1, ZZ3 = V·ZZ1, ZZZ3 = W·ZZZ1.
    vec4<u32>(STEP_ADD, T0, Y1, Y1),
    vec4<u32>(STEP_MUL, T1, T0, T0),
    vec4<u32>(STEP_MUL, T2, T0, T1),
    vec4<u32>(STEP_MUL, T3, X1, T1),
    vec4<u32>(STEP_MUL, T4, X1, X1),
    vec4<u32>(STEP_ADD, T5, T4, T4),
    vec4<u32>(STEP_ADD, T5, T5, T4),
    vec4<u32>(STEP_MUL, ZZ1, T1, ZZ1),
    vec4<u32>(STEP_MUL, ZZZ1, T2, ZZZ1),
    vec4<u32>(STEP_MUL, T6, T2, Y1),
    vec4<u32>(STEP_MUL, X1, T5, T5),
    vec4<u32>(STEP_SUB, X1, X1, T3),
    vec4<u32>(STEP_SUB, X1, X1, T3),
    vec4<u32>(STEP_SUB, T3, T3, X1),
    vec4<u32>(STEP_MUL, T3, T5, T3),
    vec4<u32>(STEP_SUB, Y1, T3, T6),
);

alias CurveRegisters = array<Fe, CURVE_REGISTERS>;

// Run steps [range.x, range.y) of CURVE_STEPS on `regs`.
fn curve_run(regs: ptr<function, CurveRegisters>, range: vec2<u32>) {
    for (var k = range.x; k < range.y; k++) {
        let step = CURVE_STEPS[k];
        let a = (*regs)[step.z];
        let b = (*regs)[step.w];
        var r: Fe;
        if step.x == STEP_MUL {
            r = fe_mul(a, b);
        } else if step.x == STEP_ADD {
            r = fe_add(a, b);
        } else {
            r = fe_sub(a, b);
        }
        (*regs)[step.y] = r;
    }
}

fn curve_left(regs: ptr<function, CurveRegisters>) -> Xyzz {
    return Xyzz((*regs)[X1], (*regs)[Y1], (*regs)[ZZ1], (*regs)[ZZZ1]);
}

fn curve_load_left(regs: ptr<function, CurveRegisters>, p: Xyzz) {
    (*regs)[X1] = p.x;
    (*regs)[Y1] = p.y;
    (*regs)[ZZ1] = p.zz;
    (*regs)[ZZZ1] = p.zzz;
}

// The sum of the two points loaded in `regs`: the `check` program, then
// `finish` for distinct points, DOUBLE for equal ones (on the left point,
// which `check` leaves untouched), or infinity for opposite ones.
fn curve_sum(regs: ptr<function, CurveRegisters>, check: vec2<u32>, finish: vec2<u32>) -> Xyzz {
    curve_run(regs, check);
    var second = finish;
    if fe_is_zero((*regs)[T4]) {
        if !fe_is_zero((*regs)[T5]) {
            return xyzz_infinity();
        }
        second = DOUBLE;
    }
    curve_run(regs, second);
    return curve_left(regs);
}

// 2p; infinity stays infinity because ZZ3 = V·ZZ1.
fn xyzz_double(p: Xyzz) -> Xyzz {
    var regs: CurveRegisters;
    curve_load_left(&regs, p);
    curve_run(&regs, DOUBLE);
    return curve_left(&regs);
}

// 2q for an affine q.
fn xyzz_double_affine(q: Affine) -> Xyzz {
    if affine_is_infinity(q) {
        return xyzz_infinity();
    }
    return xyzz_double(xyzz_from_affine(q));
}

// p + q for an affine q (mixed addition).
fn xyzz_add_affine(p: Xyzz, q: Affine) -> Xyzz {
    if affine_is_infinity(q) {
        return p;
    }
    if xyzz_is_infinity(p) {
        return xyzz_from_affine(q);
    }
    var regs: CurveRegisters;
    curve_load_left(&regs, p);
    regs[X2] = q.x;
    regs[Y2] = q.y;
    return curve_sum(&regs, MADD_CHECK, MADD_FINISH);
}

// p + q, both in XYZZ.
fn xyzz_add(p: Xyzz, q: Xyzz) -> Xyzz {
    if xyzz_is_infinity(q) {
        return p;
    }
    if xyzz_is_infinity(p) {
        return q;
    }
    var regs: CurveRegisters;
    curve_load_left(&regs, p);
    regs[X2] = q.x;
    regs[Y2] = q.y;
    regs[ZZ2] = q.zz;
    regs[ZZZ2] = q.zzz;
    return curve_sum(&regs, ADD_CHECK, ADD_FINISH);
}
