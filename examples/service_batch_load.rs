//! Batch load on `cvm serve`, beside the same batches executed in-process in
//! the same run (docs/PERFORMANCE.md records the results with the machine).
//!
//! `clients` concurrent clients on the Unix socket each stream `rounds`
//! batch jobs of 10,000 transfers (Standard mode, no proofs): each client
//! has its own chain of resources (a transfer splits one resource of the
//! client's previous batch in two), submits all its batches in order (each
//! Submit returns once the job is durably recorded), then awaits them. The
//! in-process baseline parses the same batch files with the library and
//! runs them through `execute_batches`, eight at a time, as the server's
//! pipeline does. Both are reported in transfers per second, and their
//! ratio.
//!
//! ```text
//! cargo run --release --example service_batch_load -- [clients] [rounds]
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use causality_vm::batch::file::{check_inline, BatchFile, Keys};
use causality_vm::batch::{execute_batches, BatchJob, TransactionContext};
use causality_vm::resource::{nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceId};
use causality_vm::service::client::{Client, ClientOptions, Endpoint};
use causality_vm::service::proto::{job_payload, ExecuteBatchJob, JobPayload, JobState};
use causality_vm::service::server::start;
use causality_vm::service::ServeOptions;
use causality_vm::store::RegisterStore;
use causality_vm::{Backend, ContentId, DomainId, ExecutionMode};
use serde_json::{json, Value};

/// The server allocates as the `cvm` binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../src/bin/cvm/allocator.rs"]
mod allocator;

const TRANSFERS: usize = 10_000;
const DOMAIN: &str = "load.bank";
/// The pipeline the server runs batch jobs in (`core::PIPELINE`).
const PIPELINE: usize = 8;
const PROGRAM: &str = include_str!("fungible_token.tel");

/// One client's chain of resources: the spendable frontier.
struct Chain {
    client: usize,
    frontier: Vec<(ResourceId, [u8; 32], u64)>,
    nonce: u64,
}

/// Builds batch files (the JSON `cvm run` and `cvm submit` read).
struct Ledger {
    logic: ContentId,
    /// Nullifier keys follow from quantities (as in benches/batch.rs), so
    /// their Poseidon commitments are computed once per quantity.
    commitments: HashMap<u64, [u8; 32]>,
}

fn key_of(quantity: u64) -> [u8; 32] {
    *blake3::hash(&quantity.to_le_bytes()).as_bytes()
}

impl Ledger {
    fn output(&mut self, chain: &mut Chain, quantity: u64) -> (NewResource, [u8; 32]) {
        chain.nonce += 1;
        let key = key_of(quantity);
        let commitment = *self.commitments.entry(quantity).or_insert_with(|| nullifier_key_commitment(&key));
        let resource = NewResource {
            logic: self.logic,
            domain: DomainId::new(DOMAIN),
            fungibility_domain: "gold".into(),
            quantity,
            metadata: Default::default(),
            contents: Vec::new(),
            nullifier_key_commitment: commitment,
            controller: "treasury".into(),
            nonce: *blake3::hash(format!("{}/{}", chain.client, chain.nonce).as_bytes()).as_bytes(),
        };
        (resource, key)
    }

    /// 10,000 fresh resources of 2^19 units each (the program allows at most a million).
    fn genesis(&mut self, chain: &mut Chain) -> Vec<u8> {
        let ops = (0..TRANSFERS)
            .map(|_| {
                let (resource, key) = self.output(chain, 1 << 19);
                chain.frontier.push((ContentId::of_encoding(&resource.id_encoding()), key, 1 << 19));
                Operation::Create { resource }
            })
            .collect();
        batch_file(chain, "genesis", ops)
    }

    /// 10,000 transfers, each splitting one resource of the frontier in two.
    fn transfers(&mut self, chain: &mut Chain, round: usize) -> Vec<u8> {
        let frontier = std::mem::take(&mut chain.frontier);
        let mut ops = Vec::with_capacity(TRANSFERS);
        for (id, key, quantity) in frontier {
            let half = quantity / 2;
            let (a, key_a) = self.output(chain, half);
            let (b, _) = self.output(chain, quantity - half);
            chain.frontier.push((ContentId::of_encoding(&a.id_encoding()), key_a, half));
            ops.push(Operation::Transfer {
                inputs: vec![ConsumedInput { id, nullifier_key: key }],
                outputs: vec![a, b],
            });
        }
        batch_file(chain, &format!("round-{round}"), ops)
    }
}

fn batch_file(chain: &Chain, name: &str, ops: Vec<Operation>) -> Vec<u8> {
    let file = json!({
        "domain": DOMAIN,
        "token": "mint",
        "trace_id": format!("client-{}-{name}", chain.client),
        "inline_programs": [{"name": "fungible_token.tel", "tel": PROGRAM}],
        "ops": ops,
    });
    serde_json::to_vec(&file).expect("a batch file")
}

fn succeeded(result_json: &str) -> u64 {
    let value: Value = serde_json::from_str(result_json).expect("a result");
    value["success_count"].as_u64().unwrap_or(0)
}

/// Run batch files through the library, `PIPELINE` at a time; returns the time taken.
fn in_process(store: &mut RegisterStore, keys: &Path, batches: &[&Vec<u8>]) -> Duration {
    let started = Instant::now();
    for group in batches.chunks(PIPELINE) {
        let prepared: Vec<_> = group
            .iter()
            .map(|bytes| {
                let text = std::str::from_utf8(bytes).unwrap();
                let file = BatchFile::parse(text, "load").unwrap();
                check_inline(file, "load").unwrap().prepare(Keys::Create(keys)).unwrap()
            })
            .collect();
        let tx = TransactionContext::new(ExecutionMode::Standard);
        let content: Vec<_> = prepared.iter().map(|p| p.content()).collect();
        let jobs: Vec<BatchJob<'_>> = prepared
            .iter()
            .zip(&content)
            .map(|(p, content)| BatchJob::new(&p.keys, &p.ops, &p.ctx, &tx).with_programs(content))
            .collect();
        for outcome in execute_batches(store, &jobs) {
            assert_eq!(outcome.unwrap().success_count, TRANSFERS);
        }
    }
    started.elapsed()
}

fn batch_job(batch_json: Vec<u8>) -> JobPayload {
    let job = ExecuteBatchJob { batch_json, no_prove: true, ..ExecuteBatchJob::default() };
    JobPayload { kind: Some(job_payload::Kind::ExecuteBatch(job)) }
}

fn main() {
    allocator::configure();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("arguments are numbers"));
    let clients = args.next().unwrap_or(8);
    let rounds = args.next().unwrap_or(3);
    let create: Value = serde_json::from_str(include_str!("create.json")).unwrap();
    let logic = create["ops"][0]["resource"]["logic"].as_str().unwrap();
    let mut ledger = Ledger { logic: logic.parse().expect("a content id"), commitments: HashMap::new() };

    // Every client's chain: its genesis batch, then `rounds` transfer batches.
    let mut genesis = Vec::new();
    let mut rounds_of: Vec<Vec<Vec<u8>>> = Vec::new();
    for client in 0..clients {
        let mut chain = Chain { client, frontier: Vec::new(), nonce: 0 };
        genesis.push(ledger.genesis(&mut chain));
        rounds_of.push((0..rounds).map(|r| ledger.transfers(&mut chain, r)).collect());
    }
    let transfers = (clients * rounds * TRANSFERS) as f64;
    let mb = rounds_of.iter().flatten().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!("{clients} clients x {rounds} batches of {TRANSFERS} transfers ({mb:.0} MB of batch files)");

    // In-process: the genesis batches, then the rounds, client after client.
    let local = tempfile::tempdir().unwrap();
    let local_time = {
        let mut store = RegisterStore::open(local.path()).unwrap();
        let keys = local.path().join("keys.json");
        in_process(&mut store, &keys, &genesis.iter().collect::<Vec<_>>());
        let ordered: Vec<&Vec<u8>> = (0..rounds).flat_map(|r| rounds_of.iter().map(move |c| &c[r])).collect();
        in_process(&mut store, &keys, &ordered)
    };
    let local_rate = transfers / local_time.as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let served_time = runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServeOptions::new(dir.path());
        options.backend = Backend::Cpu;
        options.max_message_bytes = 1 << 30;
        let server = start(options).await.unwrap();
        let endpoint = Endpoint::Unix(server.socket.clone());
        let mut client = Client::connect(&endpoint, &ClientOptions::default()).await.unwrap();
        for (c, batch) in genesis.into_iter().enumerate() {
            let job = client.run(&format!("genesis-{c}"), batch_job(batch), 0, None).await.unwrap();
            assert_eq!(job.state(), JobState::Succeeded, "{:?}", job.error);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (c, batches) in rounds_of.into_iter().enumerate() {
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(&endpoint, &ClientOptions::default()).await.unwrap();
                let mut ids = Vec::new();
                for (r, batch) in batches.into_iter().enumerate() {
                    ids.push(client.submit(&format!("c{c}-r{r}"), batch_job(batch), 0, None).await.unwrap().job_id);
                }
                for id in ids {
                    let job = client.wait(id).await.unwrap();
                    assert_eq!(job.state(), JobState::Succeeded, "{:?}", job.error);
                    let Some(causality_vm::service::proto::job_result::Kind::ExecuteBatch(result)) =
                        job.result.and_then(|r| r.kind)
                    else {
                        panic!("no batch result")
                    };
                    assert_eq!(succeeded(&result.result_json), TRANSFERS as u64);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        server.shutdown().await.unwrap();
        elapsed
    });
    let served_rate = transfers / served_time.as_secs_f64();
    println!(
        "served: {served_rate:.0} transfers/s ({:.2} s); in-process execute_batches: {local_rate:.0} transfers/s \
         ({:.2} s); ratio {:.3}",
        served_time.as_secs_f64(),
        local_time.as_secs_f64(),
        served_rate / local_rate
    );
}
