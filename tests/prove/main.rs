//! The prove tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/batch.rs"]
mod batch_support;
#[path = "../support/circom.rs"]
mod circom_support;
#[path = "../support/prove.rs"]
mod prove_support;
#[path = "../support/snarkjs.rs"]
mod snarkjs_runner;

mod circom;
mod circuit;
mod groth16;
mod keys;
mod ntt;
mod pipeline;
mod snarkjs;
