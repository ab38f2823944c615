//! `cvm setup`, `cvm export`, `cvm verify`: Groth16 keys and snarkjs files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use causality_vm::prove::keys::{self, CircuitShape};
use causality_vm::prove::pipeline::decode_record;
use causality_vm::prove::{snarkjs, BatchProof};
use causality_vm::store::RegisterStore;

use crate::output::NotFound;
use crate::Globals;

#[derive(clap::Args)]
pub struct SetupArgs {
    /// Operations per proof (circuit size): a power of two from 1 to 256.
    #[arg(long, default_value_t = 4)]
    pub ops_per_proof: usize,
    /// Replace keys that already exist (proofs made with the old keys stop verifying).
    #[arg(long)]
    pub force: bool,
    /// Write the circuit as circom's .r1cs instead (for a multi-party
    /// ceremony run with snarkjs; import its final .zkey with --import-zkey).
    #[arg(long, value_name = "FILE", conflicts_with = "import_zkey")]
    pub export_r1cs: Option<PathBuf>,
    /// Make a snarkjs Groth16 key of this circuit (a ceremony's final .zkey)
    /// the key set, instead of a local setup.
    #[arg(long, value_name = "FILE")]
    pub import_zkey: Option<PathBuf>,
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
    /// Verifying key (compressed); default: the data dir's key set for the proofs' size.
    #[arg(long)]
    pub vk: Option<PathBuf>,
    /// The data dir's key set to use when --vk is not given (default: the proofs' own size).
    #[arg(long, value_parser = crate::run_cmd::ops_per_proof)]
    pub ops_per_proof: Option<usize>,
    /// Output directory (one subdirectory per proof when there are several),
    /// with a manifest.json listing every file's BLAKE3.
    #[arg(long)]
    pub out: PathBuf,
    /// Write into a directory that already holds files (an earlier
    /// export's are removed first).
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// An export: verification_key.json, proof.json and public.json (or
    /// proof-<i>/ subdirectories, each holding the three), and manifest.json.
    pub dir: PathBuf,
    /// The verifying key to trust (snarkjs verification_key.json, or the
    /// compressed verifying_key.bin of a key set); default: the data dir's
    /// key set for the proofs' size. The key inside DIR is never trusted on
    /// its own.
    #[arg(long)]
    pub vk: Option<PathBuf>,
    /// Also validate every point of the data dir's key sets used (normally
    /// checked by their digests; points are validated once, at setup).
    #[arg(long)]
    pub paranoid: bool,
}

pub fn setup(globals: &Globals, args: SetupArgs) -> anyhow::Result<i32> {
    let shape = CircuitShape::of(args.ops_per_proof)?;
    if let Some(path) = &args.export_r1cs {
        return export_r1cs(globals, &shape, path);
    }
    let dir = keys::key_dir(&globals.data_dir(), args.ops_per_proof);
    // Under the key set's lock: a run making the same keys waits, then uses these.
    let _lock = keys::lock(&dir)?;
    if keys::exists(&dir) && !args.force {
        anyhow::bail!("keys already exist in {} (use --force to replace them)", dir.display());
    }
    if let Some(path) = &args.import_zkey {
        return import_zkey(globals, &shape, &dir, path);
    }
    if !globals.quiet {
        note!(
            "setup for {} ops per proof: {} constraints, {} public inputs. This is a local, single-party \
             setup, not a multi-party ceremony: whoever holds its randomness could forge proofs.",
            args.ops_per_proof,
            shape.num_constraints,
            shape.num_public_inputs()
        );
    }
    let start = std::time::Instant::now();
    let spinner =
        crate::progress::spinner(globals, format!("setting up keys for {} ops per proof", args.ops_per_proof));
    let pk = keys::setup(&shape)?;
    if let Some(spinner) = &spinner {
        spinner.set_message("writing the keys");
    }
    keys::save(&dir, &shape, &pk)?;
    drop(spinner);
    let meta = keys::KeyMetadata::of(&shape);
    if globals.json {
        let mut v = serde_json::to_value(&meta)?;
        v["dir"] = serde_json::json!(dir);
        v["seconds"] = serde_json::json!(start.elapsed().as_secs_f64());
        out!("{v}")?;
    } else {
        out!("keys written to {} (circuit digest {})", dir.display(), meta.circuit_digest)?;
    }
    Ok(0)
}

/// `cvm setup --export-r1cs FILE`: the circuit for a snarkjs ceremony.
fn export_r1cs(globals: &Globals, shape: &CircuitShape, path: &Path) -> anyhow::Result<i32> {
    let bytes = keys::circuit_r1cs(shape).encode();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let k = shape.ops_per_proof;
    if globals.json {
        out!("{}", serde_json::json!({"r1cs": path, "ops_per_proof": k, "constraints": shape.num_constraints}))?;
    } else {
        out!(
            "the circuit for {k} ops per proof ({} constraints) written to {}",
            shape.num_constraints,
            path.display()
        )?;
        if !globals.quiet {
            note!(
                "run a ceremony on it with snarkjs (powers of tau of 2^{} or more, then `snarkjs groth16 setup`, \
                 contributions, a final beacon), then `cvm setup --ops-per-proof {k} --import-zkey FINAL.zkey`",
                shape.domain_size()?.trailing_zeros()
            );
        }
    }
    Ok(0)
}

/// `cvm setup --import-zkey FILE`: a ceremony's key becomes the key set.
fn import_zkey(globals: &Globals, shape: &CircuitShape, dir: &Path, path: &Path) -> anyhow::Result<i32> {
    let spinner = crate::progress::spinner(globals, format!("checking {}", path.display()));
    let zkey = causality_vm::prove::circom::load_zkey(path, None);
    drop(spinner);
    let zkey = zkey?;
    keys::import_zkey(dir, shape, &zkey)?;
    let meta = keys::KeyMetadata::of(shape);
    if globals.json {
        let mut v = serde_json::to_value(&meta)?;
        v["dir"] = serde_json::json!(dir);
        v["zkey_blake3"] = serde_json::json!(causality_vm::content_id::hex_encode(&zkey.digest));
        out!("{v}")?;
    } else {
        out!(
            "the key of {} (every point checked, this circuit's) is the key set in {} (circuit digest {})",
            path.display(),
            dir.display(),
            meta.circuit_digest
        )?;
    }
    Ok(0)
}

pub fn export(globals: &Globals, args: ExportArgs) -> anyhow::Result<i32> {
    let proofs = if args.proofs.is_empty() {
        logged_proofs(&globals.data_dir(), args.batch)?
    } else {
        args.proofs
            .iter()
            .map(|p| {
                let bytes = causality_vm::bounded::read_at_most(p, 1 << 26)
                    .with_context(|| format!("reading {}", p.display()))?;
                BatchProof::from_bytes(&bytes).with_context(|| format!("decoding {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // The key set follows the proofs' size unless named explicitly.
    let vk_path = match (&args.vk, args.ops_per_proof, proofs.first()) {
        (Some(path), ..) => path.clone(),
        (None, Some(k), _) => keys::key_dir(&globals.data_dir(), k).join(keys::VERIFYING_KEY_FILE),
        (None, None, Some(p)) => keys::key_dir(&globals.data_dir(), p.slots()).join(keys::VERIFYING_KEY_FILE),
        (None, None, None) => anyhow::bail!("no proofs to export"),
    };
    let vk = keys::load_verifying_key(&vk_path)?;
    prepare_out_dir(&args.out, args.force)?;
    let dirs = snarkjs::export_batch(&args.out, &vk, &proofs)?;
    if globals.json {
        out!("{}", serde_json::json!({ "dirs": dirs, "manifest": args.out.join(snarkjs::MANIFEST_FILE) }))?;
    } else {
        for d in &dirs {
            out!("{}", d.display())?;
        }
    }
    Ok(0)
}

/// An export goes into a new or empty directory; with `force`, an earlier
/// export's files are removed first (stale `proof-<i>/` directories would
/// otherwise sit beside the new ones).
fn prepare_out_dir(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!("--out {}: exists and is not a directory", out.display());
    }
    let entries: Vec<PathBuf> = match std::fs::read_dir(out) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    if entries.is_empty() {
        return Ok(());
    }
    if !force {
        anyhow::bail!(
            "--out {} is not empty ({} entries): export into a new directory, or pass --force to replace an \
             earlier export there",
            out.display(),
            entries.len()
        );
    }
    let ours = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let file =
            [snarkjs::VK_FILE, snarkjs::PROOF_FILE, snarkjs::PUBLIC_FILE, snarkjs::MANIFEST_FILE].contains(&name);
        file || (p.is_dir() && name.strip_prefix("proof-").is_some_and(|i| i.parse::<u64>().is_ok()))
    };
    for entry in entries.iter().filter(|p| ours(p)) {
        let removed = if entry.is_dir() { std::fs::remove_dir_all(entry) } else { std::fs::remove_file(entry) };
        removed.with_context(|| format!("removing {} from the earlier export", entry.display()))?;
    }
    Ok(())
}

/// The proofs the batch log holds for batch `number` (default: the latest).
fn logged_proofs(data_dir: &Path, number: Option<u64>) -> anyhow::Result<Vec<BatchProof>> {
    let store = RegisterStore::open_read_only(data_dir)
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    let head = store.head();
    let number = number.unwrap_or(head);
    if head == 0 {
        let message = format!("no batch has been committed in {}: nothing to export", data_dir.display());
        return Err(NotFound(message).into());
    }
    if number == 0 || number > head {
        return Err(NotFound(format!("batch {number} is not in the store: it holds batches 1 to {head}")).into());
    }
    let record = store.batch(number)?.with_context(|| format!("batch {number} has no record in the store"))?;
    let proof = record.proof.with_context(|| {
        format!("batch {number} has no proofs: it was committed in {} mode with --no-prove", record.mode)
    })?;
    decode_record(&proof).with_context(|| format!("the proofs of batch {number}"))
}

pub fn verify(globals: &Globals, args: VerifyArgs) -> anyhow::Result<i32> {
    let dir = &args.dir;
    let mut failures = 0;
    let mut results = Vec::new();
    let found = snarkjs::proof_dirs_in(dir)?;
    if found.is_empty() {
        anyhow::bail!("{} holds no {} (nor proof-<i>/ directories with one)", dir.display(), snarkjs::PROOF_FILE);
    }
    let dirs = match dir.join(snarkjs::MANIFEST_FILE).is_file() {
        true => match snarkjs::manifest_dirs(dir) {
            Ok(dirs) => dirs,
            Err(err) => {
                // The export is not what was exported: say so, then check what is there.
                failures += 1;
                if !globals.json {
                    out!("FAIL {}: {err}", dir.display())?;
                }
                results.push(serde_json::json!({ "dir": dir, "ok": false, "error": err.to_string() }));
                found
            }
        },
        false => {
            if !globals.quiet {
                note!(
                    "warning: {} has no {}: every proof found is checked, but a missing one cannot be noticed",
                    dir.display(),
                    snarkjs::MANIFEST_FILE
                );
            }
            found
        }
    };
    let data_keys = causality_vm::prove::StoredKeys::new(&globals.data_dir());
    let mut validated = std::collections::BTreeSet::new();
    let given = args.vk.as_deref().map(read_trusted_key).transpose()?;
    for dir in &dirs {
        let verified = trusted_key(&data_keys, given.as_ref(), dir).and_then(|(vk, k)| {
            if let (true, Some(k)) = (args.paranoid, k) {
                if validated.insert(k) {
                    let shape = CircuitShape::of(k)?;
                    keys::load(&keys::key_dir(&globals.data_dir(), k), &shape, keys::Validation::Full)?;
                }
            }
            snarkjs::verify_dir_with(dir, &vk)
        });
        match verified {
            Ok(n) => {
                if !globals.json {
                    out!("OK {} ({n} public inputs)", dir.display())?;
                }
                results.push(serde_json::json!({ "dir": dir, "ok": true, "public_inputs": n }));
            }
            Err(err) => {
                failures += 1;
                if !globals.json {
                    out!("FAIL {}: {err}", dir.display())?;
                }
                results.push(serde_json::json!({ "dir": dir, "ok": false, "error": err.to_string() }));
            }
        }
    }
    if globals.json {
        out!("{}", serde_json::json!({ "results": results }))?;
    }
    Ok(if failures == 0 { 0 } else { 1 })
}

/// A verifying key file: snarkjs JSON, or our compressed encoding.
fn read_trusted_key(path: &Path) -> anyhow::Result<ark_groth16::VerifyingKey<ark_bn254::Bn254>> {
    let bytes =
        causality_vm::bounded::read_at_most(path, 1 << 28).with_context(|| format!("reading {}", path.display()))?;
    Ok(match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => snarkjs::read_vk(path)?,
        _ => keys::load_verifying_key(path)?,
    })
}

/// The key a proof in `dir` is checked against: the one given, else the
/// data dir's key set for its size (read from its public inputs), with
/// that size.
fn trusted_key(
    data_keys: &causality_vm::prove::StoredKeys,
    given: Option<&ark_groth16::VerifyingKey<ark_bn254::Bn254>>,
    dir: &Path,
) -> Result<(ark_groth16::VerifyingKey<ark_bn254::Bn254>, Option<usize>), causality_vm::prove::ProveError> {
    if let Some(vk) = given {
        return Ok((vk.clone(), None));
    }
    let public = snarkjs::read_public(&dir.join(snarkjs::PUBLIC_FILE))?;
    let slots = (public.len() / causality_vm::prove::witness::PUBLIC_PER_SLOT).max(1);
    data_keys.verifying_key(slots).map(|key| (key.vk.clone(), Some(slots)))
}
