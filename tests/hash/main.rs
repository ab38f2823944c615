//! The hash tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/hash.rs"]
mod hash_support;
#[path = "../support/seed.rs"]
mod seed;

mod cli;
mod conformance;
mod cpu;
mod fixed;
mod gpu;
mod poseidon;
mod vectors;
