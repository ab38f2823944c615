//! CPU MSM backend. (Being replaced by our own Pippenger; see issue 4.)

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::VariableBaseMSM;

pub struct CpuMsm;

impl Default for CpuMsm {
    fn default() -> Self {
        CpuMsm::new()
    }
}

impl CpuMsm {
    pub fn new() -> Self {
        CpuMsm
    }

    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        G1Projective::msm_unchecked(bases, scalars)
    }

    pub fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        G2Projective::msm_unchecked(bases, scalars)
    }
}
