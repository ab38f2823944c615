//! `cvm groth16`: Groth16 proofs of circom circuits from snarkjs's files,
//! in the argument orders circom users know (rapidsnark's for `prove`,
//! snarkjs's for `verify`), writing snarkjs's JSON shapes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use causality_vm::msm::MsmEngine;
use causality_vm::prove::circom::{self, CircomKey};
use causality_vm::prove::snarkjs::{self, text};
use causality_vm::prove::ProveStages;
use serde_json::json;

use crate::{progress, Globals};

#[derive(clap::Subcommand)]
pub enum Groth16Command {
    /// Prove a witness: `cvm groth16 prove CIRCUIT.zkey WITNESS.wtns PROOF.json PUBLIC.json`.
    Prove(ProveArgs),
    /// Verify a proof: `cvm groth16 verify VK.json PUBLIC.json PROOF.json`.
    Verify(VerifyArgs),
    /// Export a key's verification key: `cvm groth16 vk CIRCUIT.zkey VK.json`.
    Vk(VkArgs),
    /// A single-party setup for tests and benches: `cvm groth16 setup CIRCUIT.r1cs CIRCUIT.zkey`.
    /// Whoever runs it could forge proofs; use a ceremony's keys in production.
    Setup(SetupArgs),
}

#[derive(clap::Args)]
pub struct SetupArgs {
    /// The circuit (.r1cs, as circom writes it).
    pub r1cs: PathBuf,
    /// Where the proving key goes (.zkey, snarkjs's format).
    pub zkey: PathBuf,
}

#[derive(clap::Args)]
pub struct ProveArgs {
    /// The snarkjs Groth16 proving key (.zkey).
    pub zkey: PathBuf,
    /// The witness (.wtns), as circom's witness calculator writes it.
    pub witness: PathBuf,
    /// Where the proof goes (snarkjs's proof.json).
    pub proof: PathBuf,
    /// Where the public signals go (snarkjs's public.json).
    pub public: PathBuf,
    /// The circuit's .r1cs, to check the witness constraint by constraint
    /// before proving (default: NAME.r1cs beside the key, when it is the
    /// key's circuit). Without one, the finished proof is checked against
    /// the key instead, and a witness that does not satisfy the circuit is
    /// caught there.
    #[arg(long)]
    pub r1cs: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The verification key (snarkjs's verification_key.json).
    pub vk: PathBuf,
    /// The public signals (public.json).
    pub public: PathBuf,
    /// The proof (proof.json).
    pub proof: PathBuf,
}

#[derive(clap::Args)]
pub struct VkArgs {
    /// The snarkjs Groth16 proving key (.zkey).
    pub zkey: PathBuf,
    /// Where the verification key goes.
    pub vk: PathBuf,
}

pub fn run(globals: &Globals, command: Groth16Command) -> anyhow::Result<i32> {
    match command {
        Groth16Command::Prove(args) => prove(globals, args),
        Groth16Command::Verify(args) => verify(globals, args),
        Groth16Command::Vk(args) => vk(globals, args),
        Groth16Command::Setup(args) => setup(globals, args),
    }
}

/// Where the markers of zkeys whose points were checked live.
fn checked_dir(globals: &Globals) -> PathBuf {
    globals.data_dir().join("circom-keys")
}

fn prove(globals: &Globals, args: ProveArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    // Looking for a GPU (loading the Vulkan drivers) overlaps the loads.
    let backend = globals.backend;
    let engine = std::thread::spawn(move || MsmEngine::new(backend));
    // The cheap file first: a bad witness costs no key load.
    let witness = circom::load_witness(&args.witness)?;
    let spinner = progress::spinner(globals, format!("loading {}", args.zkey.display()));
    let checked = checked_dir(globals);
    let zkey_file = circom::MappedFile::open(&args.zkey)?;
    // One given must be the key's circuit; one found beside the key is used only when it is.
    let r1cs_path = args.r1cs.clone().or_else(|| circom::r1cs_beside(&args.zkey));
    // A circuit matched to this key before needs only the key's digest: its
    // file is read beside the key's points (each is decoded by parts on the
    // rayon pool, with serial stretches the other fills).
    let early_circuit = r1cs_path.clone().map(|path| {
        let (zkey_digest, checked) = (zkey_file.digest(), checked.clone());
        std::thread::spawn(move || {
            let file = circom::MappedFile::open(&path)?;
            let circuit = circom::circuit_matched_before(&file, zkey_digest, Some(&checked))?;
            Ok::<_, circom::CircomError>((file, circuit))
        })
    });
    let zkey = circom::zkey_from(&zkey_file, Some(&checked))?;
    drop(zkey_file);
    if witness.values.len() != zkey.n_vars {
        // Named before the bases upload: the witness is for another circuit.
        return Err(circom::CircomError::WitnessLength { expected: zkey.n_vars, got: witness.values.len() }.into());
    }
    let circuit = early_circuit.map(|reading| {
        let (file, circuit) = reading.join().map_err(|_| anyhow::anyhow!("reading the .r1cs panicked"))??;
        Ok::<_, anyhow::Error>(match circuit {
            Some(circuit) => Ok(circuit),
            None => circom::circuit_for_key(&file, &zkey, Some(&checked)),
        })
    });
    let circuit = match circuit.transpose()? {
        Some(Err(e @ circom::CircomError::OtherCircuit { .. })) if args.r1cs.is_none() => {
            if !globals.quiet {
                note!("note: not checking constraints: {e}");
            }
            None
        }
        other => other.transpose()?,
    };
    let loaded = started.elapsed();
    let engine = engine.join().map_err(|_| anyhow::anyhow!("the GPU probe panicked"))?.context("the MSM engine")?;
    let key = CircomKey::prepare(&engine, zkey, circuit)?;
    if let Some(spinner) = &spinner {
        spinner.set_message(format!("proving ({} signals, domain {})", key.n_vars, key.domain_size));
    }
    let mut stages = ProveStages::default();
    let proved = key.prove(&engine, &witness, &mut stages);
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let (proof, public) = proved?;
    // No newline at the end, as snarkjs writes them (public.json byte for byte).
    let public_text = text::public(&public);
    write_files(&[(&args.proof, text::proof(&proof).as_bytes()), (&args.public, public_text.as_bytes())])?;
    let quotient = stages.quotient_backend().map(|b| b.to_string());
    let (msm_g1, msm_g2) =
        (stages.msm_g1_backend().map(|b| b.to_string()), stages.msm_g2_backend().map(|b| b.to_string()));
    if globals.json {
        let report = json!({
            "proof": args.proof,
            "public": args.public,
            "public_signals": public.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            "constraints_checked_with": match key.has_r1cs() { true => r1cs_path.map(|p| p.display().to_string()), false => None },
            "verified": true,
            "backends": { "quotient": quotient, "msm_g1": msm_g1, "msm_g2": msm_g2 },
            "msms": {
                "g1_on_gpu": stages.msm_g1_on_gpu, "g1_on_cpu": stages.msm_g1_on_cpu,
                "g2_on_gpu": stages.msm_g2_on_gpu, "g2_on_cpu": stages.msm_g2_on_cpu,
                "points_shared_with_cpu": stages.msm_points_shared_with_cpu,
            },
            "timings_us": {
                "load": loaded.as_micros() as u64,
                "witness_check": stages.witness_us,
                "quotient": stages.qap_us,
                "msm_g1": stages.msm_g1_us,
                "msm_g2": stages.msm_g2_us,
                "assemble": stages.assemble_us,
                "total": started.elapsed().as_micros() as u64,
            },
            "gpu_fallbacks": stages.gpu_fallbacks,
            "ntt_fallbacks": stages.ntt_fallbacks,
        });
        out!("{report}")?;
    } else if !globals.quiet {
        let check = match key.has_r1cs() {
            true => "constraints checked, proof verified",
            false => "proof verified against the key",
        };
        let on = |b: &Option<String>| b.as_deref().unwrap_or("-").to_string();
        note!(
            "proof written to {} and {} public signals to {} ({check}; G1 MSMs on {}, G2 MSM on {}, quotient on \
             {}; {:.2} s)",
            args.proof.display(),
            public.len(),
            args.public.display(),
            on(&msm_g1),
            on(&msm_g2),
            on(&quotient),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}

/// Where a file is written before it is renamed into place.
fn staging(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".cvm-tmp");
    path.with_file_name(name)
}

/// Write the files all or none: each to its staging name, then renamed.
fn write_files(files: &[(&Path, &[u8])]) -> anyhow::Result<()> {
    let written = files
        .iter()
        .try_for_each(|(path, bytes)| {
            std::fs::write(staging(path), bytes).with_context(|| format!("writing {}", path.display()))
        })
        .and_then(|()| {
            files.iter().try_for_each(|(path, _)| {
                std::fs::rename(staging(path), path).with_context(|| format!("writing {}", path.display()))
            })
        });
    if written.is_err() {
        for (path, _) in files {
            let _ = std::fs::remove_file(staging(path));
        }
    }
    written
}

fn verify(globals: &Globals, args: VerifyArgs) -> anyhow::Result<i32> {
    let vk = snarkjs::read_vk(&args.vk)?;
    let public = snarkjs::read_public(&args.public)?;
    let proof = snarkjs::proof_from_json(
        &serde_json::from_slice(
            &causality_vm::bounded::read_at_most(&args.proof, 1 << 24)
                .with_context(|| format!("reading {}", args.proof.display()))?,
        )
        .with_context(|| format!("{}: not JSON", args.proof.display()))?,
    )
    .with_context(|| args.proof.display().to_string())?;
    let verdict =
        causality_vm::prove::system::verify_groth16(&ark_groth16::prepare_verifying_key(&vk), &proof, &public);
    let ok = verdict.is_ok();
    if globals.json {
        let error = verdict.as_ref().err().map(|e| e.to_string());
        out!("{}", json!({ "ok": ok, "public_signals": public.len(), "error": error }))?;
    } else {
        match &verdict {
            Ok(()) => out!("OK: the proof verifies ({} public signals)", public.len())?,
            Err(e) => out!("FAIL: {e}")?,
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn vk(globals: &Globals, args: VkArgs) -> anyhow::Result<i32> {
    let zkey = circom::load_zkey(&args.zkey, Some(&checked_dir(globals)))?;
    let text = text::vk(zkey.verifying_key());
    write_files(&[(&args.vk, text.as_bytes())])?;
    if globals.json {
        out!("{}", json!({ "vk": args.vk, "public_signals": zkey.n_public }))?;
    } else if !globals.quiet {
        note!("verification key ({} public signals) written to {}", zkey.n_public, args.vk.display());
    }
    Ok(0)
}

fn setup(globals: &Globals, args: SetupArgs) -> anyhow::Result<i32> {
    let r1cs = circom::load_r1cs(&args.r1cs)?;
    let spinner =
        progress::spinner(globals, format!("setting up {} ({} constraints)", args.r1cs.display(), r1cs.n_constraints));
    let bytes = circom::setup::zkey(&r1cs, &circom::setup::Toxic::random(&mut rand::rngs::OsRng));
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let bytes = bytes?;
    write_files(&[(&args.zkey, &bytes)])?;
    if globals.json {
        out!("{}", json!({ "zkey": args.zkey, "constraints": r1cs.n_constraints, "single_party": true }))?;
    } else if !globals.quiet {
        note!(
            "proving key written to {} ({} constraints). This is a single-party setup: whoever ran it could forge \
             proofs. Use it for tests and benches; prove production circuits with a ceremony's keys.",
            args.zkey.display(),
            r1cs.n_constraints
        );
    }
    Ok(0)
}
