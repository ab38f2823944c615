//! The code protox and tonic generate from `proto/causality/accelerator/v1/`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("causality.accelerator.v1");

/// The encoded descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/accelerator_descriptor.bin"));
