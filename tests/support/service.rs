//! Starting servers and building job payloads for the service tests.
#![allow(dead_code)]

use std::path::Path;

use causality_vm::service::client::{Client, ClientOptions, Endpoint};
use causality_vm::service::proto::{hash_message, job_payload, HashJob, HashMessage, JobPayload, MerkleRootJob};
use causality_vm::service::server::{start, Running};
use causality_vm::service::ServeOptions;
use causality_vm::Backend;

/// Options for a CPU server on `dir` with `runners` runners and TCP on a free loopback port.
pub fn options(dir: &Path, runners: usize) -> ServeOptions {
    let mut options = ServeOptions::new(dir);
    options.backend = Backend::Cpu;
    options.runners = runners;
    options.tcp = Some("127.0.0.1:0".parse().unwrap());
    options
}

pub async fn server(dir: &Path, runners: usize) -> Running {
    start(options(dir, runners)).await.expect("starting the server")
}

pub async fn unix_client(running: &Running) -> Client {
    Client::connect(&Endpoint::Unix(running.socket.clone()), &ClientOptions::default()).await.expect("connecting")
}

pub async fn tcp_client(running: &Running, token: Option<String>) -> Client {
    let endpoint = Endpoint::Tcp { uri: format!("http://{}", running.tcp.expect("TCP listener")), tls: false };
    Client::connect(&endpoint, &ClientOptions { token, ..ClientOptions::default() }).await.expect("connecting")
}

pub fn hash_payload(messages: &[&[u8]]) -> JobPayload {
    let messages = messages.iter().map(|m| HashMessage { data: m.to_vec(), mode: None }).collect();
    JobPayload { kind: Some(job_payload::Kind::Hash(HashJob { messages, ..HashJob::default() })) }
}

/// A hash job of plain `message_len`-byte messages sent end to end.
pub fn packed_payload(packed: Vec<u8>, message_len: u32) -> JobPayload {
    JobPayload { kind: Some(job_payload::Kind::Hash(HashJob { messages: Vec::new(), packed, message_len })) }
}

pub fn keyed_message(key: [u8; 32], data: &[u8]) -> HashMessage {
    HashMessage { data: data.to_vec(), mode: Some(hash_message::Mode::Key(key.to_vec())) }
}

pub fn derive_message(context: &str, data: &[u8]) -> HashMessage {
    HashMessage { data: data.to_vec(), mode: Some(hash_message::Mode::DeriveKeyContext(context.into())) }
}

pub fn merkle_payload(leaves: &[[u8; 32]]) -> JobPayload {
    let leaves = leaves.iter().map(|l| l.to_vec()).collect();
    JobPayload { kind: Some(job_payload::Kind::MerkleRoot(MerkleRootJob { leaves })) }
}
