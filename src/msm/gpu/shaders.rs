//! WGSL source pieces: a constants prelude generated from ark-bn254, the
//! field path the adapter supports, the curve, and one MSM stage per module
//! (put together with their bindings in `contract.rs`).

use std::borrow::Cow;

use ark_bn254::{Fq, Fr};
use ark_ff::{BigInt, PrimeField};

pub use super::group::Group;
use crate::msm::GpuFormulas;

const FIELD_U32: &str = include_str!("bn254_field_u32.wgsl");
const FIELD_U64: &str = include_str!("bn254_field_u64.wgsl");
const FIELD_INV: &str = include_str!("bn254_field_inv.wgsl");
const CURVE_POINTS: &str = include_str!("bn254_curve_points.wgsl");
const CURVE: &str = include_str!("bn254_curve.wgsl");
const CURVE_STEPPED: &str = include_str!("bn254_curve_stepped.wgsl");
const FQ2: &str = include_str!("bn254_fq2.wgsl");
pub(super) const TEST_FQ2: &str = include_str!("bn254_test_fq2.wgsl");
pub(super) const TEST_OPS: &str = include_str!("bn254_test_ops.wgsl");
pub(super) const MSM_COMMON: &str = include_str!("msm_common.wgsl");
const MSM_DIGITS: &str = include_str!("msm_digits.wgsl");
const MSM_SCAN: &str = include_str!("msm_scan.wgsl");
const MSM_ACCUMULATE: &str = include_str!("msm_accumulate.wgsl");
const MSM_REDUCE: &str = include_str!("msm_reduce.wgsl");

/// Which base-field implementation the kernels are built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldPath {
    /// 16 limbs of 16 bits in u32: only 32-bit integer ops, runs everywhere.
    U32,
    /// 8 limbs of 32 bits with u64 products: needs `Features::SHADER_INT64`.
    U64,
}

impl FieldPath {
    /// The path [`crate::msm::MsmTuning`] names, else the fastest the
    /// device supports.
    pub fn chosen_for(features: wgpu::Features) -> FieldPath {
        match crate::msm::MsmTuning::current().gpu_field {
            crate::msm::GpuField::U32 => FieldPath::U32,
            crate::msm::GpuField::U64 => FieldPath::U64,
            crate::msm::GpuField::Best => FieldPath::best_for(features),
        }
    }

    /// The fastest path the device supports.
    pub fn best_for(features: wgpu::Features) -> FieldPath {
        if features.contains(wgpu::Features::SHADER_INT64) {
            FieldPath::U64
        } else {
            FieldPath::U32
        }
    }

    /// Whether a device with `features` can compile this path.
    pub fn supported_by(self, features: wgpu::Features) -> bool {
        match self {
            FieldPath::U32 => true,
            FieldPath::U64 => features.contains(wgpu::Features::SHADER_INT64),
        }
    }

    fn source(self) -> &'static str {
        match self {
            FieldPath::U32 => FIELD_U32,
            FieldPath::U64 => FIELD_U64,
        }
    }
}

/// One MSM stage module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Digits,
    Scan,
    Accumulate,
    Reduce,
}

impl Stage {
    pub(super) fn source(self) -> &'static str {
        match self {
            Stage::Digits => MSM_DIGITS,
            Stage::Scan => MSM_SCAN,
            Stage::Accumulate => MSM_ACCUMULATE,
            Stage::Reduce => MSM_REDUCE,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Stage::Digits => "msm_digits",
            Stage::Scan => "msm_scan",
            Stage::Accumulate => "msm_accumulate",
            Stage::Reduce => "msm_reduce",
        }
    }
}

/// Which text of the curve formulas a module is built with: the same
/// formulas and API, the same results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CurveFormulas {
    /// Straight-line code (`bn254_curve.wgsl`): G1's kernels.
    Straight,
    /// Programs run by one interpreter loop (`bn254_curve_stepped.wgsl`),
    /// a field product inlined once per curve routine: G2's kernels, whose
    /// straight-line version over Fq2 took lavapipe a quarter of an hour to
    /// compile.
    Stepped,
}

impl CurveFormulas {
    pub const ALL: [CurveFormulas; 2] = [CurveFormulas::Straight, CurveFormulas::Stepped];

    fn source(self) -> &'static str {
        match self {
            CurveFormulas::Straight => CURVE,
            CurveFormulas::Stepped => CURVE_STEPPED,
        }
    }

    /// The formulas `group`'s MSM kernels use: straight for G1, stepped
    /// for G2, unless [`crate::msm::MsmTuning`] names one for both.
    pub fn of(group: Group) -> CurveFormulas {
        match (crate::msm::MsmTuning::current().gpu_formulas, group) {
            (GpuFormulas::Straight, _) | (GpuFormulas::PerGroup, Group::G1) => CurveFormulas::Straight,
            (GpuFormulas::Stepped, _) | (GpuFormulas::PerGroup, Group::G2) => CurveFormulas::Stepped,
        }
    }
}

/// Field, inverse and curve code (G1's) for `path`, with its constants.
pub fn curve_source(path: FieldPath, formulas: CurveFormulas) -> Vec<Cow<'static, str>> {
    vec![prelude().into(), path.source().into(), FIELD_INV.into(), CURVE_POINTS.into(), formulas.source().into()]
}

/// Field and inverse code for `path` with Fq2 on top (G2's coordinates).
pub fn fq2_source(path: FieldPath) -> Vec<Cow<'static, str>> {
    vec![prelude().into(), path.source().into(), FIELD_INV.into(), FQ2.into()]
}

/// Field, Fq2 and G2 curve code for `path`: G2's curve code is G1's
/// (its formulas are for a = 0 and never read b, so they hold on the twist
/// too) over Fq2, its names suffixed with 2 ([`over_fq2`]).
pub fn g2_curve_source(path: FieldPath, formulas: CurveFormulas) -> Vec<Cow<'static, str>> {
    let mut code = fq2_source(path);
    code.push(over_fq2(CURVE_POINTS).into());
    code.push(over_fq2(formulas.source()).into());
    code
}

/// The field and curve code of `group`'s kernels on `path`.
pub fn group_curve_source(path: FieldPath, group: Group) -> Vec<Cow<'static, str>> {
    let formulas = CurveFormulas::of(group);
    match group {
        Group::G1 => curve_source(path, formulas),
        Group::G2 => g2_curve_source(path, formulas),
    }
}

/// MSM code written over G1 (`Fe`, `Xyzz`, `Affine`) for `group`: as is
/// for G1, renamed over Fq2 for G2.
pub fn for_group(group: Group, source: &'static str) -> Cow<'static, str> {
    match group {
        Group::G1 => source.into(),
        Group::G2 => over_fq2(source).into(),
    }
}

/// WGSL written over `Fe` rewritten over `Fe2`: the type names `Fe`,
/// `Xyzz`, `Affine` and every identifier starting `fe_`, `xyzz_` or
/// `affine_` get a 2 (`fe2_mul`, `Xyzz2`, `xyzz2_add`, …), in comments too;
/// nothing else changes. One text of the curve formulas and MSM stages then
/// serves both groups.
pub fn over_fq2(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + source.len() / 16);
    let mut rest = source;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.push_str(&rest[..start]);
        let word_len =
            rest[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        match word {
            "Fe" | "Xyzz" | "Affine" => {
                out.push_str(word);
                out.push('2');
            }
            _ => match ["fe_", "xyzz_", "affine_"].iter().find(|prefix| word.starts_with(**prefix)) {
                Some(prefix) => {
                    out.push_str(&prefix[..prefix.len() - 1]);
                    out.push('2');
                    out.push_str(&word[prefix.len() - 1..]);
                }
                None => out.push_str(word),
            },
        }
        rest = &rest[start + word_len..];
    }
    out.push_str(rest);
    out
}

/// The same field code on `path` for BN254's scalar field Fr (the NTT's):
/// the field files are written against the prelude's constants, and Fr,
/// like Fq, is below R/4, which is all their bounds need.
pub fn scalar_field_source(path: FieldPath) -> Vec<Cow<'static, str>> {
    vec![field_prelude(Fr::MODULUS, Fr::R, Fr::R2).into(), path.source().into()]
}

/// Little-endian 32-bit words of a 256-bit integer.
pub fn bigint_words(b: &BigInt<4>) -> [u32; 8] {
    let mut words = [0u32; 8];
    for (i, limb) in b.0.iter().enumerate() {
        words[2 * i] = *limb as u32;
        words[2 * i + 1] = (limb >> 32) as u32;
    }
    words
}

/// The words of scalar-field elements as the Fr kernels (NTT, Poseidon)
/// read them: each element's Montgomery form, eight words.
pub fn fr_words<'a>(elements: impl IntoIterator<Item = &'a Fr>) -> Vec<u32> {
    elements.into_iter().flat_map(|v| bigint_words(&v.0)).collect()
}

/// The elements those kernels wrote: 32 bytes each, a Montgomery form.
pub fn fr_from_bytes(bytes: &[u8]) -> impl Iterator<Item = Fr> + '_ {
    bytes.chunks_exact(32).map(|word| {
        let limbs: [u64; 4] =
            std::array::from_fn(|i| u64::from_le_bytes(word[8 * i..8 * i + 8].try_into().expect("eight bytes")));
        Fr::new_unchecked(BigInt::new(limbs))
    })
}

/// Little-endian 16-bit limbs of a 256-bit integer.
pub fn bigint_limbs16(b: &BigInt<4>) -> [u32; 16] {
    let mut limbs = [0u32; 16];
    for (i, word) in bigint_words(b).iter().enumerate() {
        limbs[2 * i] = word & 0xffff;
        limbs[2 * i + 1] = word >> 16;
    }
    limbs
}

/// -p^-1 mod 2^32 (Newton iteration doubles the correct low bits each step).
pub fn montgomery_n0() -> u32 {
    n0_of(&Fq::MODULUS)
}

fn n0_of(modulus: &BigInt<4>) -> u32 {
    let p0 = bigint_words(modulus)[0];
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(p0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// p - 2, the Fermat inversion exponent.
pub fn p_minus_2() -> BigInt<4> {
    minus_2(Fq::MODULUS)
}

fn minus_2(modulus: BigInt<4>) -> BigInt<4> {
    let mut e = modulus;
    let mut borrow = 2u64;
    for limb in e.0.iter_mut() {
        let (v, b) = limb.overflowing_sub(borrow);
        *limb = v;
        borrow = b as u64;
    }
    e
}

fn wgsl_array(name: &str, values: &[u32]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("0x{v:08x}u")).collect();
    format!("const {name}: array<u32, {}> = array<u32, {}>({});\n", values.len(), values.len(), items.join(", "))
}

/// The BN254 Fq constants both field paths use, generated from ark-bn254.
pub fn prelude() -> String {
    field_prelude(Fq::MODULUS, Fq::R, Fq::R2)
}

/// A BN254 field's constants for the field paths (its modulus, R and R²
/// mod p), generated from ark-bn254.
fn field_prelude(modulus: BigInt<4>, r: BigInt<4>, r2: BigInt<4>) -> String {
    let n0 = n0_of(&modulus);
    let mut out = String::from("// Generated from ark-bn254 by src/msm/gpu/shaders.rs.\n");
    out += &wgsl_array("P16", &bigint_limbs16(&modulus));
    out += &wgsl_array("R2_16", &bigint_limbs16(&r2));
    out += &wgsl_array("ONE_MONT_16", &bigint_limbs16(&r));
    out += &format!("const N0_16: u32 = 0x{:04x}u;\n", n0 & 0xffff);
    out += &wgsl_array("P32", &bigint_words(&modulus));
    out += &wgsl_array("R2_32", &bigint_words(&r2));
    out += &wgsl_array("ONE_MONT_32", &bigint_words(&r));
    out += &format!("const N0_32: u32 = 0x{n0:08x}u;\n");
    out += &wgsl_array("P_MINUS_2_WORDS", &bigint_words(&minus_2(modulus)));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn over_fq2_renames_the_field_and_curve_names_only() {
        let g1 = "fn xyzz_add(p: Xyzz, q: Affine) -> Fe { let feed = fe_mul(p.x, Fe_x); return affine_neg(q); }";
        let g2 = "fn xyzz2_add(p: Xyzz2, q: Affine2) -> Fe2 { let feed = fe2_mul(p.x, Fe_x); return affine2_neg(q); }";
        assert_eq!(super::over_fq2(g1), g2);
        assert_eq!(super::over_fq2("x_fe_ + 1u + FE_WORDS"), "x_fe_ + 1u + FE_WORDS");
    }

    use super::*;
    use ark_ff::{Field, One};

    #[test]
    fn n0_is_minus_p_inverse() {
        let p0 = bigint_words(&Fq::MODULUS)[0];
        assert_eq!(p0.wrapping_mul(montgomery_n0()), u32::MAX);
        assert_eq!((p0 & 0xffff).wrapping_mul(montgomery_n0() & 0xffff) & 0xffff, 0xffff);
    }

    #[test]
    fn montgomery_constants_match_ark_ff() {
        // R mod p is the Montgomery form of one; R^2 mod p that of R mod p.
        assert_eq!(Fq::one().0, Fq::R);
        assert_eq!(Fq::from_bigint(Fq::R).map(|f| f.0), Some(Fq::R2));
        // a^(p-2) = a^-1 for a sample element.
        let a = Fq::from(123456789u64);
        assert_eq!(a.pow(p_minus_2().0), a.inverse().unwrap_or_default());
    }

    #[test]
    fn limbs_round_trip_words() {
        let limbs = bigint_limbs16(&Fq::MODULUS);
        let words = bigint_words(&Fq::MODULUS);
        for i in 0..8 {
            assert_eq!(limbs[2 * i] | (limbs[2 * i + 1] << 16), words[i]);
            assert!(limbs[2 * i] < 1 << 16 && limbs[2 * i + 1] < 1 << 16);
        }
    }
}
