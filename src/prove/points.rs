//! Point validation: on the curve and in the prime-order subgroup, the two
//! checks every point from outside (a proof, a key, a snarkjs file) passes.

use super::ProveError;

/// On the curve and in the prime-order subgroup.
pub fn check_point<P: CheckedPoint>(what: &str, p: &P) -> Result<(), ProveError> {
    if !p.on_curve() {
        return Err(ProveError::InvalidPoint { what: what.into(), reason: "not on the curve".into() });
    }
    if !p.in_subgroup() {
        return Err(ProveError::InvalidPoint { what: what.into(), reason: "not in the prime-order subgroup".into() });
    }
    Ok(())
}

/// The two checks for BN254's short-Weierstrass points.
pub trait CheckedPoint {
    fn on_curve(&self) -> bool;
    fn in_subgroup(&self) -> bool;
}

impl<P: ark_ec::short_weierstrass::SWCurveConfig> CheckedPoint for ark_ec::short_weierstrass::Affine<P> {
    fn on_curve(&self) -> bool {
        self.is_on_curve()
    }
    fn in_subgroup(&self) -> bool {
        self.is_in_correct_subgroup_assuming_on_curve()
    }
}
