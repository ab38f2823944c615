//! `cvm serve`: the proving and hashing accelerator other deployments call.
//!
//! One job model for every kind of work (docs/SERVICE.md): a job is checked,
//! durably recorded in the job store ([`journal`]) and queued
//! ([`scheduler`]) before Submit returns; runners execute it on the
//! server's resident engines ([`work`]); its events stream to whoever
//! awaits it; after a crash, every accepted job that had not ended runs
//! again. [`core`] holds that logic free of gRPC; [`api`] is its gRPC
//! face, [`server`] the listeners, and [`client`] a typed client.

pub mod api;
pub mod auth;
mod blobs;
pub mod client;
#[cfg(feature = "postgres")]
pub mod cluster;
pub mod codec;
pub mod core;
pub mod crash;
mod error;
mod hot;
pub mod journal;
pub mod metrics;
pub mod metrics_http;
pub mod proto;
pub mod scheduler;
pub mod server;
pub mod work;

pub use client::Client;
pub use client::Endpoint;
pub use server::{serve, ServeOptions};
