//! snarkjs interop: exported files verify with our reader, with `cvm verify`,
//! and with snarkjs itself (node); bad files are rejected with clear errors.
//!
//! snarkjs is installed with `npm ci --prefix tests/snarkjs`. Without node or
//! that install the snarkjs check is skipped with a message, unless
//! CVM_REQUIRE_SNARKJS=1, which makes it fail.

use crate::prove_support;
use crate::snarkjs_runner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ark_bn254::{Fq2, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::UniformRand;
use causality_vm::msm::MsmEngine;
use causality_vm::prove::snarkjs::{self, PROOF_FILE, PUBLIC_FILE, VK_FILE};
use causality_vm::prove::{BatchProof, ProveError, ProvingSystem};
use prove_support::*;
use serde_json::Value;
use snarkjs_runner::{run_snarkjs, snarkjs_script};

fn system() -> &'static ProvingSystem {
    static SYSTEM: OnceLock<ProvingSystem> = OnceLock::new();
    SYSTEM.get_or_init(|| ProvingSystem::setup_in_memory(1, MsmEngine::cpu()).expect("setup"))
}

fn proofs() -> &'static Vec<BatchProof> {
    static PROOFS: OnceLock<Vec<BatchProof>> = OnceLock::new();
    PROOFS.get_or_init(|| system().prove_batch(&[transfer(10), update(30)]).expect("prove"))
}

fn exported() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let dirs = snarkjs::export_batch(dir.path(), system().verifying_key(), proofs()).unwrap();
    (dir, dirs)
}

fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn exported_files_round_trip_and_verify() {
    let (_tmp, dirs) = exported();
    assert_eq!(dirs.len(), 2, "one set per proof");
    for (dir, proof) in dirs.iter().zip(proofs()) {
        assert_eq!(snarkjs::verify_dir(dir).unwrap(), 5);
        let read = |f: &str| serde_json::from_str::<Value>(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
        assert_eq!(&snarkjs::vk_from_json(&read(VK_FILE)).unwrap(), system().verifying_key());
        assert_eq!(snarkjs::proof_from_json(&read(PROOF_FILE)).unwrap(), proof.proof);
        assert_eq!(snarkjs::public_from_json(&read(PUBLIC_FILE)).unwrap(), proof.public_inputs);
        let vk = read(VK_FILE);
        assert_eq!(vk["protocol"], "groth16");
        assert_eq!(vk["curve"], "bn128");
        assert_eq!(vk["nPublic"], 5);
        assert_eq!(vk["IC"].as_array().unwrap().len(), 6);
        assert_eq!(read(PROOF_FILE)["pi_a"][2], "1");
        assert_eq!(read(PROOF_FILE)["pi_b"][2], serde_json::json!(["1", "0"]));
    }
}

fn expect_err(dir: &Path, needle: &str) {
    match snarkjs::verify_dir(dir) {
        Err(e) => assert!(e.to_string().contains(needle), "error {e} should mention {needle:?}"),
        Ok(_) => panic!("expected an error mentioning {needle:?}"),
    }
}

#[test]
fn bad_files_are_rejected_with_clear_errors() {
    let (_tmp, dirs) = exported();
    let dir = &dirs[0];
    let backup = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (vk, proof, public) = (backup(VK_FILE), backup(PROOF_FILE), backup(PUBLIC_FILE));
    let restore = || {
        std::fs::write(dir.join(VK_FILE), &vk).unwrap();
        std::fs::write(dir.join(PROOF_FILE), &proof).unwrap();
        std::fs::write(dir.join(PUBLIC_FILE), &public).unwrap();
    };

    edit(&dir.join(PUBLIC_FILE), |v| {
        v.as_array_mut().unwrap().pop();
    });
    expect_err(dir, "wrong number of public inputs: the verifying key expects 5, got 4");
    restore();

    edit(&dir.join(PUBLIC_FILE), |v| v.as_array_mut().unwrap().swap(3, 4));
    expect_err(dir, "does not verify");
    restore();

    edit(&dir.join(PROOF_FILE), |v| v["pi_a"][1] = Value::String("5".into()));
    expect_err(dir, "pi_a (G1)");
    expect_err(dir, "not on the curve");
    restore();

    let mut rng = ark_std::test_rng();
    let outside = loop {
        let x = Fq2::rand(&mut rng);
        if let Some(p) = G2Affine::get_point_from_x_unchecked(x, false) {
            if !p.is_in_correct_subgroup_assuming_on_curve() {
                break p;
            }
        }
    };
    assert!(outside.is_on_curve() && !outside.is_zero());
    edit(&dir.join(PROOF_FILE), |v| v["pi_b"] = snarkjs::g2_to_json(&outside));
    expect_err(dir, "not in the prime-order subgroup");
    restore();

    // p itself is not a canonical field element.
    let p = "21888242871839275222246405745257275088696311157297823662689037894645226208583";
    edit(&dir.join(PROOF_FILE), |v| v["pi_c"][0] = Value::String(p.into()));
    expect_err(dir, "not a canonical decimal field element");
    restore();

    edit(&dir.join(VK_FILE), |v| v["nPublic"] = serde_json::json!(4));
    expect_err(dir, "nPublic is 4 but IC has 6 points");
    restore();

    // A count that wraps when one is added, against an empty IC.
    edit(&dir.join(VK_FILE), |v| {
        v["nPublic"] = serde_json::json!(u64::MAX);
        v["IC"] = serde_json::json!([]);
    });
    expect_err(dir, "but IC has 0 points");
    restore();

    // Refused by its length, before any decimal parsing (quadratic in it).
    edit(&dir.join(PROOF_FILE), |v| v["pi_a"][0] = Value::String("1".repeat(1 << 20)));
    expect_err(dir, "a decimal string of 1048576 characters");
    restore();

    edit(&dir.join(PROOF_FILE), |v| v["curve"] = Value::String("bls12381".into()));
    expect_err(dir, "curve must be");
    restore();
    snarkjs::verify_dir(dir).unwrap();
}

#[test]
fn cvm_export_and_verify_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let vk_path = tmp.path().join("vk.bin");
    let mut vk_bytes = Vec::new();
    ark_serialize::CanonicalSerialize::serialize_compressed(system().verifying_key(), &mut vk_bytes).unwrap();
    std::fs::write(&vk_path, vk_bytes).unwrap();
    let proof_path = tmp.path().join("p0.bin");
    std::fs::write(&proof_path, proofs()[0].to_bytes()).unwrap();
    let out = tmp.path().join("out");
    let cvm = || Command::new(env!("CARGO_BIN_EXE_cvm"));
    let status = cvm()
        .args(["--quiet", "export", "--vk"])
        .arg(&vk_path)
        .arg("--proof")
        .arg(&proof_path)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let verified = cvm().args(["verify", "--vk"]).arg(&vk_path).arg(&out).output().unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("OK"));
    edit(&out.join(PUBLIC_FILE), |v| v.as_array_mut().unwrap().swap(0, 1));
    let rejected = cvm().args(["verify", "--vk"]).arg(&vk_path).arg(&out).output().unwrap();
    assert_eq!(rejected.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rejected.stdout).contains("FAIL"));
}

#[test]
fn snarkjs_accepts_our_proofs_and_rejects_tampered_ones() {
    let Some(script) = snarkjs_script() else { return };
    let (_tmp, dirs) = exported();
    for dir in &dirs {
        let (code, out) = run_snarkjs(&script, dir);
        assert_eq!(code, Some(0), "snarkjs rejected {}: {out}", dir.display());
        assert!(out.contains("OK"), "{out}");
    }
    edit(&dirs[0].join(PUBLIC_FILE), |v| v.as_array_mut().unwrap().swap(3, 4));
    let (code, out) = run_snarkjs(&script, &dirs[0]);
    assert_eq!(code, Some(1), "snarkjs accepted swapped public inputs: {out}");
}

#[test]
fn verification_errors_name_the_file() {
    let (_tmp, dirs) = exported();
    std::fs::write(dirs[0].join(PROOF_FILE), "{not json").unwrap();
    match snarkjs::verify_dir(&dirs[0]) {
        Err(ProveError::Malformed { what, reason }) => {
            assert!(what.contains(PROOF_FILE), "{what}");
            assert!(reason.contains("not JSON"), "{reason}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    // Read from a file of another name, the errors name that file, and a
    // fault at the top of the document says no empty place ("at ").
    let renamed = dirs[0].join("inputs-of-run-7.json");
    std::fs::write(&renamed, "{\"a\": 1}").unwrap();
    let err = snarkjs::read_public(&renamed).unwrap_err().to_string();
    assert!(err.contains("inputs-of-run-7.json") && !err.contains(" at :"), "{err}");
    let err = snarkjs::read_vk(&renamed).unwrap_err().to_string();
    assert!(err.contains("inputs-of-run-7.json") && !err.contains(" at :"), "{err}");
}

#[test]
fn cvm_setup_makes_keys_the_library_and_export_use() {
    let data = tempfile::tempdir().unwrap();
    let cvm = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cvm"));
        c.arg("--data-dir").arg(data.path());
        c
    };
    let made = cvm().args(["--json", "setup", "--ops-per-proof", "1"]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let meta: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(meta["ops_per_proof"], 1);
    assert_eq!(meta["num_public_inputs"], 5);
    assert!(String::from_utf8_lossy(&made.stderr).contains("not a multi-party ceremony"));

    let again = cvm().args(["setup", "--ops-per-proof", "1"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exist"));
    let odd = cvm().args(["setup", "--ops-per-proof", "3"]).output().unwrap();
    assert!(String::from_utf8_lossy(&odd.stderr).contains("unsupported ops per proof 3"));

    let system = ProvingSystem::load_or_setup(data.path(), 1, causality_vm::Backend::Cpu, |m| {
        panic!("keys from cvm setup should load without a setup: {m}")
    })
    .unwrap();
    let proof = system.prove_batch(&[delete(4)]).unwrap().remove(0);
    let proof_path = data.path().join("p.bin");
    std::fs::write(&proof_path, proof.to_bytes()).unwrap();
    let out = data.path().join("out");
    let exported = cvm()
        .args(["export", "--ops-per-proof", "1", "--proof"])
        .arg(&proof_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    assert_eq!(snarkjs::verify_dir(&out).unwrap(), 5);
}

/// Groth16 proofs are malleable: negating A and B gives a second valid
/// proof of the same statement (docs/SECURITY.md). Harmless for soundness,
/// which is why nothing is keyed on a proof's bytes.
#[test]
fn negating_a_and_b_gives_another_valid_proof() {
    let original = &proofs()[0];
    let mut other = original.clone();
    other.proof.a = -other.proof.a;
    other.proof.b = -other.proof.b;
    assert_ne!(other.to_bytes(), original.to_bytes());
    system().verify(original).unwrap();
    system().verify(&other).expect("the negated proof verifies too");
}
