//! `cvm setup`, `cvm export`, `cvm verify`: Groth16 keys and snarkjs files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use causality_vm::prove::keys::{self, CircuitShape};
use causality_vm::prove::pipeline::decode_record;
use causality_vm::prove::{snarkjs, BatchProof};
use causality_vm::store::RegisterStore;

use crate::Globals;

#[derive(clap::Args)]
pub struct SetupArgs {
    /// Operations per proof (circuit size): a power of two from 1 to 256.
    #[arg(long, default_value_t = 4)]
    pub ops_per_proof: usize,
    /// Replace keys that already exist (proofs made with the old keys stop verifying).
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The committed batch whose proofs to export (default: the latest).
    #[arg(long, conflicts_with = "proofs")]
    pub batch: Option<u64>,
    /// Batch-proof files (ark-serialize compressed `BatchProof`) instead of
    /// the batch log, one set of snarkjs files each.
    #[arg(long = "proof")]
    pub proofs: Vec<PathBuf>,
    /// Verifying key (compressed); default: the data dir's key for --ops-per-proof.
    #[arg(long)]
    pub vk: Option<PathBuf>,
    /// Which key set in the data dir to use when --vk is not given.
    #[arg(long, default_value_t = 4)]
    pub ops_per_proof: usize,
    /// Output directory (one subdirectory per proof when there are several).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Directory with verification_key.json, proof.json and public.json
    /// (or proof-<i>/ subdirectories, each holding the three).
    pub dir: PathBuf,
}

pub fn setup(globals: &Globals, args: SetupArgs) -> anyhow::Result<i32> {
    let shape = CircuitShape::of(args.ops_per_proof)?;
    let dir = keys::key_dir(&globals.data_dir(), args.ops_per_proof);
    if keys::exists(&dir) && !args.force {
        anyhow::bail!("keys already exist in {} (use --force to replace them)", dir.display());
    }
    if !globals.quiet {
        eprintln!(
            "setup for {} ops per proof: {} constraints, {} public inputs. This is a local, single-party \
             setup, not a multi-party ceremony: whoever holds its randomness could forge proofs.",
            args.ops_per_proof,
            shape.num_constraints,
            shape.num_public_inputs()
        );
    }
    let start = std::time::Instant::now();
    let pk = keys::setup(&shape)?;
    keys::save(&dir, &shape, &pk)?;
    let meta = keys::KeyMetadata::of(&shape);
    if globals.json {
        let mut v = serde_json::to_value(&meta)?;
        v["dir"] = serde_json::json!(dir);
        v["seconds"] = serde_json::json!(start.elapsed().as_secs_f64());
        println!("{v}");
    } else {
        println!("keys written to {} (circuit digest {})", dir.display(), meta.circuit_digest);
    }
    Ok(0)
}

pub fn export(globals: &Globals, args: ExportArgs) -> anyhow::Result<i32> {
    let vk_path = match &args.vk {
        Some(p) => p.clone(),
        None => keys::key_dir(&globals.data_dir(), args.ops_per_proof).join(keys::VERIFYING_KEY_FILE),
    };
    let proofs = if args.proofs.is_empty() {
        logged_proofs(&globals.data_dir(), args.batch)?
    } else {
        args.proofs
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                BatchProof::from_bytes(&bytes).with_context(|| format!("decoding {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // The key set follows the proofs' size unless named explicitly.
    let vk_path = match (&args.vk, proofs.first()) {
        (None, Some(p)) if args.proofs.is_empty() => {
            keys::key_dir(&globals.data_dir(), p.slots()).join(keys::VERIFYING_KEY_FILE)
        }
        _ => vk_path,
    };
    let vk = keys::load_verifying_key(&vk_path)?;
    let dirs = snarkjs::export_batch(&args.out, &vk, &proofs)?;
    if globals.json {
        println!("{}", serde_json::json!({ "dirs": dirs }));
    } else {
        for d in &dirs {
            println!("{}", d.display());
        }
    }
    Ok(0)
}

/// The proofs the batch log holds for batch `number` (default: the latest).
fn logged_proofs(data_dir: &Path, number: Option<u64>) -> anyhow::Result<Vec<BatchProof>> {
    let store = RegisterStore::open(data_dir)
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    let number = number.unwrap_or(store.head());
    if number == 0 {
        anyhow::bail!("the batch log in {} is empty: nothing to export", data_dir.display());
    }
    let record = store
        .batch(number)?
        .with_context(|| format!("batch {number} is not in the log (it holds batches 1 to {})", store.head()))?;
    let proof = record.proof.with_context(|| {
        format!("batch {number} has no proofs (committed in {} mode or with --no-prove)", record.mode)
    })?;
    decode_record(&proof).with_context(|| format!("the proofs of batch {number}"))
}

/// The proof directories under `dir`: itself, or its `proof-<i>` children.
fn proof_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join(snarkjs::PROOF_FILE).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(snarkjs::PROOF_FILE).is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        anyhow::bail!("{} holds no {} (nor proof-<i>/ directories with one)", dir.display(), snarkjs::PROOF_FILE);
    }
    Ok(dirs)
}

pub fn verify(globals: &Globals, args: VerifyArgs) -> anyhow::Result<i32> {
    let mut failures = 0;
    let mut results = Vec::new();
    for dir in proof_dirs(&args.dir)? {
        match snarkjs::verify_dir(&dir) {
            Ok(n) => {
                if !globals.json {
                    println!("OK {} ({n} public inputs)", dir.display());
                }
                results.push(serde_json::json!({ "dir": dir, "ok": true, "public_inputs": n }));
            }
            Err(err) => {
                failures += 1;
                if !globals.json {
                    println!("FAIL {}: {err}", dir.display());
                }
                results.push(serde_json::json!({ "dir": dir, "ok": false, "error": err.to_string() }));
            }
        }
    }
    if globals.json {
        println!("{}", serde_json::json!({ "results": results }));
    }
    Ok(if failures == 0 { 0 } else { 1 })
}
