//! The logic tests in one binary (one link of arkworks and wgpu instead of one per file).

#[path = "../support/vm.rs"]
mod vm_support;

mod capability;
mod tel_optimizer;
mod tel_programs;
mod vm_poseidon;
mod vm_programs;
