//! circom circuits proven three ways on the same zkey, witness and cores:
//! `cvm` (the key resident, as `cvm serve` keeps it), `cvm groth16 prove`
//! and `snarkjs groth16 prove` (a fresh process each proof, loading the
//! key, as their users run them; cvm also checks the witness against the
//! `.r1cs` beside the key), and ark-groth16 on the same R1CS matrices (its
//! own key; the proof from the matrices, no circuit synthesis). Reported
//! as ratios in one run.
//!
//! The circuits are chains of circomlib `Poseidon(2)` hashes (240
//! constraints each with `--O2`), compiled by circom2 into
//! `target/circom-bench/` (cached). The zkey is `cvm groth16 setup`'s
//! (single-party): a ceremony's powers of tau take longer to prepare than
//! everything measured here, and the key's shape is the same.
//!
//! `CVM_CIRCOM_BENCH_HASHES` = comma-separated chain lengths (default
//! "272": 65,280 constraints, a 2^16 domain; 1088 is 261,120, 2^18).
//! `CVM_CIRCOM_BENCH_SNARKJS_RUNS` = snarkjs proofs per size (default 3;
//! twice as many `cvm groth16 prove` processes run just before them).
//! Needs Node and `npm ci --prefix tests/snarkjs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::r1cs_to_qap::LibsnarkReduction;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use causality_vm::msm::MsmEngine;
use causality_vm::prove::circom::{self, setup, CircomKey, PointChecks, R1cs, Witness, Zkey};
use causality_vm::prove::ProveStages;
use criterion::{BenchmarkId, Criterion};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node(args: &[&str]) {
    let status = Command::new("node").args(args).current_dir(repo()).status().expect("running node");
    assert!(status.success(), "node {args:?} failed");
}

/// Compile the chain of `n` hashes, compute its witness and make a key
/// (each once, cached); returns the zkey, wtns and r1cs paths.
fn build(n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let dir = Path::new("target/circom-bench");
    let name = format!("chain_{n}");
    let file = |ext: &str| repo().join(dir).join(format!("{name}{ext}"));
    std::fs::create_dir_all(repo().join(dir)).unwrap();
    if !file(".r1cs").is_file() {
        let source = format!(
            "pragma circom 2.0.0;\ninclude \"../../tests/circom/circuits/lib/poseidon_chain.circom\";\n\
             component main {{public [seed]}} = PoseidonChain({n});\n"
        );
        std::fs::write(file(".circom"), source).unwrap();
        eprintln!("compiling {name} with circom (minutes for long chains)");
        let circom = format!("{}/{name}.circom", dir.display());
        node(&[
            "tests/snarkjs/node_modules/circom2/cli.js",
            &circom,
            "--O2",
            "--r1cs",
            "--wasm",
            "-l",
            "tests/snarkjs/node_modules",
            "-o",
            &dir.display().to_string(),
        ]);
    }
    if !file(".wtns").is_file() {
        let inputs: Vec<String> = (0..n).map(|i| (i + 2).to_string()).collect();
        std::fs::write(file(".input.json"), serde_json::json!({"seed": "1", "in": inputs}).to_string()).unwrap();
        node(&[
            "tests/snarkjs/node_modules/snarkjs/build/cli.cjs",
            "wtns",
            "calculate",
            &format!("{}/{name}_js/{name}.wasm", dir.display()),
            &file(".input.json").display().to_string(),
            &file(".wtns").display().to_string(),
        ]);
    }
    if !file(".zkey").is_file() {
        let r1cs = circom::load_r1cs(&file(".r1cs")).unwrap();
        let bytes = setup::zkey(&r1cs, &setup::Toxic::random(&mut rand::thread_rng())).unwrap();
        std::fs::write(file(".zkey"), bytes).unwrap();
    }
    (file(".zkey"), file(".wtns"), file(".r1cs"))
}

/// The R1CS replayed for arkworks' setup (signals in circom's order: the
/// one, the public signals, then the rest).
struct Replay<'a>(&'a R1cs);

impl ConstraintSynthesizer<Fr> for Replay<'_> {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let r1cs = self.0;
        let mut variables = vec![Variable::One];
        for _ in 0..r1cs.n_public {
            variables.push(cs.new_input_variable(|| Ok(Fr::from(0u64)))?);
        }
        for _ in r1cs.n_public + 1..r1cs.n_wires {
            variables.push(cs.new_witness_variable(|| Ok(Fr::from(0u64)))?);
        }
        let lc = |row: &[(Fr, usize)]| LinearCombination(row.iter().map(|&(c, i)| (c, variables[i])).collect());
        let [a, b, c] = &r1cs.matrices;
        for i in 0..r1cs.n_constraints {
            cs.enforce_r1cs_constraint(|| lc(&a[i]), || lc(&b[i]), || lc(&c[i]))?;
        }
        Ok(())
    }
}

/// One `cvm groth16 prove` process, as a user runs it (`--backend auto`:
/// on a machine without a GPU, the probe finds none or a software one).
fn cvm_cli(zkey: &Path, wtns: &Path, out: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(["groth16", "prove", "--quiet"])
        .args([zkey, wtns, &out.join("cvm_proof.json"), &out.join("cvm_public.json")])
        .env("CVM_DATA_DIR", out.join("cvm-data"))
        .status()
        .expect("running cvm");
    assert!(status.success(), "cvm groth16 prove failed");
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let hashes: Vec<usize> = std::env::var("CVM_CIRCOM_BENCH_HASHES")
        .unwrap_or_else(|_| "272".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let snarkjs_runs: usize =
        std::env::var("CVM_CIRCOM_BENCH_SNARKJS_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut criterion = Criterion::default().configure_from_args().sample_size(10).warm_up_time(Duration::from_secs(1));
    let mut summary = Vec::new();
    for n in hashes {
        let (zkey_path, wtns_path, r1cs_path) = build(n);
        let r1cs = circom::load_r1cs(&r1cs_path).unwrap();
        let witness: Witness = circom::load_witness(&wtns_path).unwrap();
        let bytes = std::fs::read(&zkey_path).unwrap();
        let zkey = Zkey::parse("bench", &bytes, *blake3::hash(&bytes).as_bytes(), PointChecks::Skip).unwrap();
        let constraints = r1cs.n_constraints;
        let engine = MsmEngine::cpu();
        let key = CircomKey::prepare(&engine, zkey, None).unwrap();

        // snarkjs and `cvm groth16 prove`, alternating: a process per proof.
        let out = repo().join("target/circom-bench");
        // The first load of a key checks every point (seconds) and leaves a
        // marker; later loads of the same bytes skip the check. Not timed.
        // Then each tool's processes in a row, as a user runs one of them
        // (interleaved with Node's, cvm's runs found their pages evicted).
        cvm_cli(&zkey_path, &wtns_path, &out);
        let cli_times: Vec<Duration> = (0..2 * snarkjs_runs).map(|_| cvm_cli(&zkey_path, &wtns_path, &out)).collect();
        let snarkjs: Vec<Duration> = (0..snarkjs_runs)
            .map(|_| {
                let start = Instant::now();
                node(&[
                    "tests/snarkjs/node_modules/snarkjs/build/cli.cjs",
                    "groth16",
                    "prove",
                    &zkey_path.display().to_string(),
                    &wtns_path.display().to_string(),
                    &out.join("snarkjs_proof.json").display().to_string(),
                    &out.join("snarkjs_public.json").display().to_string(),
                ]);
                start.elapsed()
            })
            .collect();

        // arkworks: its own key for the same matrices.
        let mut rng = rand::thread_rng();
        let pk =
            Groth16::<Bn254, LibsnarkReduction>::generate_random_parameters_with_reduction(Replay(&r1cs), &mut rng)
                .unwrap();
        let num_inputs = r1cs.n_public + 1;

        let mut group = criterion.benchmark_group("groth16_circom");
        let mut cvm_times = Vec::new();
        group.bench_with_input(BenchmarkId::new("cvm", constraints), &constraints, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    key.prove(&engine, &witness, &mut ProveStages::default()).unwrap();
                }
                let elapsed = start.elapsed();
                cvm_times.push(elapsed / iters as u32);
                elapsed
            })
        });
        let mut ark_times = Vec::new();
        group.bench_with_input(BenchmarkId::new("ark_groth16", constraints), &constraints, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
                    Groth16::<Bn254, LibsnarkReduction>::create_proof_with_reduction_and_matrices(
                        &pk,
                        r,
                        s,
                        &r1cs.matrices,
                        num_inputs,
                        constraints,
                        &witness.values,
                    )
                    .unwrap();
                }
                let elapsed = start.elapsed();
                ark_times.push(elapsed / iters as u32);
                elapsed
            })
        });
        group.finish();
        let mut stages = ProveStages::default();
        key.prove(&engine, &witness, &mut stages).unwrap();
        println!(
            "groth16_circom {constraints} constraints, cvm stages (ms): quotient {:.1}, msm g1 {:.1} beside g2 {:.1}, \
             assemble {:.1}",
            stages.qap_us as f64 / 1e3,
            stages.msm_g1_us as f64 / 1e3,
            stages.msm_g2_us as f64 / 1e3,
            stages.assemble_us as f64 / 1e3
        );
        summary.push((constraints, median(cvm_times), median(ark_times), median(snarkjs), median(cli_times)));
    }
    for (constraints, cvm, ark, snarkjs, cli) in summary {
        println!(
            "groth16_circom {constraints} constraints: cvm {:.3} s, ark-groth16 {:.3} s ({:.2}x cvm), snarkjs {:.3} s ({:.2}x cvm)",
            cvm.as_secs_f64(),
            ark.as_secs_f64(),
            ark.as_secs_f64() / cvm.as_secs_f64(),
            snarkjs.as_secs_f64(),
            snarkjs.as_secs_f64() / cvm.as_secs_f64(),
        );
        println!(
            "groth16_circom {constraints} constraints, a process per proof: cvm groth16 prove {:.3} s, \
             snarkjs groth16 prove {:.3} s ({:.2}x)",
            cli.as_secs_f64(),
            snarkjs.as_secs_f64(),
            snarkjs.as_secs_f64() / cli.as_secs_f64(),
        );
    }
    criterion.final_summary();
}
