//! The service tests in one binary: a real server (in this process, or the
//! `cvm` binary) on a real Unix socket and loopback TCP, called through the
//! typed client.

#[path = "../support/circom.rs"]
mod circom_support;
#[path = "../support/msm.rs"]
mod msm_support;
#[path = "../support/postgres.rs"]
mod postgres_support;
#[path = "../support/prove.rs"]
mod prove_support;
#[path = "../support/snarkjs.rs"]
mod snarkjs_support;
#[path = "../support/service.rs"]
mod support;

mod auth;
mod batches;
mod cli;
mod cluster;
mod crash;
mod groth16;
mod jobs;
mod limits;
mod prove_ops;
mod python;
mod restart;
mod tls;
