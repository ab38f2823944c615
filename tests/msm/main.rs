//! The msm tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/msm.rs"]
mod msm_support;
#[path = "../support/seed.rs"]
mod seed;

mod conformance;
mod cpu;
mod gpu;
mod gpu_g2;
mod share;
mod wgsl_field;
mod wgsl_fq2;
