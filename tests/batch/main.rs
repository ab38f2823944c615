//! The batch tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/batch.rs"]
mod batch_support;

mod cli;
mod errors;
mod examples;
mod model_proptest;
mod ops;
mod parallel;
mod pipeline;
