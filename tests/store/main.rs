//! The store tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/batch.rs"]
mod batch_support;

mod crash;
mod durability;
mod faults;
