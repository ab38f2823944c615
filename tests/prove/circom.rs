//! `cvm groth16` on circom circuits: the committed fixtures
//! (tests/vectors/circom, made by snarkjs; no Node needed), every bad input
//! the readers promise to name, and, with Node, circuits compiled by circom
//! and proven by both snarkjs and cvm.

use std::path::{Path, PathBuf};
use std::process::Command;

use ark_bn254::Fr;
use causality_vm::ntt::Ntt;
use causality_vm::prove::circom::{self, CircomError, CircomKey, PointChecks, Zkey};
use causality_vm::prove::snarkjs;
use causality_vm::prove::ProveStages;
use causality_vm::MsmEngine;

use crate::circom_support::{fixture, section_start};

fn cvm(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cvm"));
    c.arg("--data-dir").arg(data).arg("--backend").arg("cpu");
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `cvm groth16 prove` into `dir`; returns the exit code and stderr, and
/// checks that a failure leaves no output file.
fn prove(dir: &Path, zkey: &Path, wtns: &Path, extra: &[&str]) -> (i32, String) {
    let (proof, public) = (dir.join("proof.json"), dir.join("public.json"));
    let (code, _, err) = run(cvm(dir).args(["groth16", "prove"]).args([zkey, wtns, &proof, &public]).args(extra));
    if code != 0 {
        assert!(!proof.exists() && !public.exists(), "a failed prove wrote output: {err}");
        let strays: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert!(!strays.iter().any(|n| n.to_string_lossy().contains("cvm-tmp")), "{strays:?}");
    }
    (code, err)
}

#[test]
fn a_fixture_proof_verifies_and_matches_snarkjs_files() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = prove(dir.path(), &fixture("multiplier.zkey"), &fixture("multiplier.wtns"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("constraints checked"), "the .r1cs beside the key is used: {err}");
    // public.json byte for byte as snarkjs wrote it for the same witness.
    let ours = std::fs::read(dir.path().join("public.json")).unwrap();
    assert_eq!(ours, std::fs::read(fixture("multiplier.public.json")).unwrap());
    // Our proof verifies with the key snarkjs exported, in Rust and by `cvm groth16 verify`.
    let vk = snarkjs::read_vk(&fixture("multiplier.vk.json")).unwrap();
    let proof: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("proof.json")).unwrap()).unwrap();
    assert_eq!(proof["protocol"], "groth16");
    assert_eq!(proof["curve"], "bn128");
    let proof = snarkjs::proof_from_json(&proof).unwrap();
    let public = snarkjs::read_public(&dir.path().join("public.json")).unwrap();
    causality_vm::prove::system::verify_groth16(&ark_groth16::prepare_verifying_key(&vk), &proof, &public).unwrap();
    let vk_path = fixture("multiplier.vk.json");
    let verify =
        |public: &Path, proof: &Path| run(cvm(dir.path()).args(["groth16", "verify"]).args([&vk_path, public, proof]));
    let (code, out, _) = verify(&dir.path().join("public.json"), &dir.path().join("proof.json"));
    assert_eq!((code, out.trim()), (0, "OK: the proof verifies (2 public signals)"));
    // snarkjs's own proof of the same witness verifies too.
    let (code, _, _) = verify(&fixture("multiplier.public.json"), &fixture("multiplier.proof.json"));
    assert_eq!(code, 0);
    // Another public signal: refused.
    std::fs::write(dir.path().join("other.json"), r#"["11980", "3"]"#).unwrap();
    let (code, out, _) = verify(&dir.path().join("other.json"), &dir.path().join("proof.json"));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL"), "{out}");

    // The verification key export is snarkjs's file byte for byte.
    let exported = dir.path().join("vk.json");
    let (code, _, err) = run(cvm(dir.path()).args(["groth16", "vk"]).args([&fixture("multiplier.zkey"), &exported]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&exported).unwrap(), std::fs::read(fixture("multiplier.vk.json")).unwrap());
}

#[test]
fn json_output_names_the_backends_and_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let (proof, public) = (dir.path().join("p.json"), dir.path().join("s.json"));
    let mut backends = vec!["cpu"];
    if causality_vm::gpu::test_context().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvm"));
        cmd.arg("--data-dir").arg(dir.path()).args(["--backend", backend]);
        let (code, out, err) = run(cmd.args(["--json", "groth16", "prove"]).args([
            &fixture("multiplier.zkey"),
            &fixture("multiplier.wtns"),
            &proof,
            &public,
        ]));
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["verified"], true);
        assert_eq!(report["backends"]["msm_g1"], backend);
        assert_eq!(report["backends"]["msm_g2"], backend);
        assert_eq!(report["msms"][format!("g1_on_{backend}")], 4, "A, B1, L and H: {report}");
        assert_eq!(report["msms"][format!("g2_on_{backend}")], 1, "B2: {report}");
        assert_eq!(report["backends"]["quotient"], backend, "the NTTs run beside the MSMs");
        assert_eq!(report["ntt_fallbacks"], 0);
        assert_eq!(report["public_signals"], serde_json::json!(["11979", "3"]));
        assert!(report["constraints_checked_with"].as_str().unwrap().ends_with("multiplier.r1cs"));
    }
}

/// A copy of a fixture in `dir` with `edit` applied.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    edit(&mut bytes);
    let path = dir.join(format!("edited-{name}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bad_files_are_named_by_section_and_offset_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (zkey, wtns) = (fixture("multiplier.zkey"), fixture("multiplier.wtns"));

    let truncated = edited(d, "multiplier.zkey", |b| b.truncate(b.len() - 100));
    let (code, err) = prove(d, &truncated, &wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("edited-multiplier.zkey") && err.contains("truncated") && err.contains("offset"), "{err}");

    let short_wtns = edited(d, "multiplier.wtns", |b| b.truncate(b.len() - 7));
    let (code, err) = prove(d, &zkey, &short_wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("edited-multiplier.wtns") && err.contains("truncated"), "{err}");

    // Empty and missing files (the loaders map files: an empty one maps to nothing).
    let empty = edited(d, "multiplier.zkey", |b| b.clear());
    let (code, err) = prove(d, &empty, &wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("edited-multiplier.zkey"), "{err}");
    let empty_wtns = edited(d, "multiplier.wtns", |b| b.clear());
    let (code, err) = prove(d, &zkey, &empty_wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("edited-multiplier.wtns"), "{err}");
    let (code, err) = prove(d, &d.join("missing.zkey"), &wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.zkey"), "{err}");

    let not_a_key = edited(d, "multiplier.wtns", |_| {});
    let (code, err) = prove(d, &not_a_key, &wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not a .zkey file"), "{err}");

    // A point off the curve: y of the A section's second point changed.
    let off_curve = edited(d, "multiplier.zkey", |b| {
        let at = section_start(b, 5) + 64 + 32;
        b[at] ^= 1;
    });
    let (code, err) = prove(d, &off_curve, &wtns, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("section A") && err.contains("point 1") && err.contains("not on the curve"), "{err}");

    // BLS12-381's scalar field in the witness: the curve is named.
    let bls = with_scalar_prime(d, "73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001");
    let (code, err) = prove(d, &zkey, &bls, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unsupported curve bls12-381"), "{err}");

    // BN254's base field where its scalar field belongs: said so.
    let swapped = with_scalar_prime(d, "30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47");
    let (code, err) = prove(d, &zkey, &swapped, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("primes swapped (the base field's modulus where the scalar field's belongs)"), "{err}");
}

/// The fixture witness with its header's prime replaced (`hex`, big-endian).
fn with_scalar_prime(dir: &Path, hex: &str) -> PathBuf {
    edited(dir, "multiplier.wtns", |b| {
        let at = section_start(b, 1);
        b[at + 4..at + 36].copy_from_slice(&hex_le(hex));
    })
}

fn hex_le(hex: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    bytes.reverse();
    bytes
}

/// Two of the A section's points swapped: every point still checks, the
/// coefficients still fit the .r1cs and the witness satisfies it, yet the
/// proof cannot verify. The key is named as the fault, not the witness.
#[test]
fn a_key_whose_points_do_not_match_its_circuit_is_named_as_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let swapped = edited(d, "multiplier.zkey", |b| {
        let at = section_start(b, 5);
        let (first, second) = (at + 64, at + 128);
        let point: Vec<u8> = b[first..first + 64].to_vec();
        assert_ne!(point, b[second..second + 64], "the two points differ");
        b.copy_within(second..second + 64, first);
        b[second..second + 64].copy_from_slice(&point);
    });
    let r1cs = fixture("multiplier.r1cs");
    let (code, err) = prove(d, &swapped, &fixture("multiplier.wtns"), &["--r1cs", r1cs.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("satisfies every constraint") && err.contains("damaged or altered key"), "{err}");
    // Without the circuit, both causes are named.
    let (code, err) = prove(d, &swapped, &fixture("multiplier.wtns"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("either the witness does not satisfy") && err.contains("damaged or altered key"), "{err}");
}

/// The witness with signal `index` changed to `value` (standard form).
fn witness_with(dir: &Path, index: usize, value: u64) -> PathBuf {
    edited(dir, "multiplier.wtns", |b| {
        let at = section_start(b, 2) + 32 * index;
        b[at..at + 32].fill(0);
        b[at..at + 8].copy_from_slice(&value.to_le_bytes());
    })
}

#[test]
fn a_witness_that_does_not_satisfy_the_circuit_is_refused_before_or_after_proving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The last signal is private: changing it breaks a constraint.
    let n = circom::load_witness(&fixture("multiplier.wtns")).unwrap().values.len();
    let bad = witness_with(d, n - 1, 1234);
    let (code, err) = prove(d, &fixture("multiplier.zkey"), &bad, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("constraint") && err.contains("is not satisfied"), "{err}");
    // Again, with the pair of files now known to fit (only C decoded): the same error.
    assert_eq!(prove(d, &fixture("multiplier.zkey"), &bad, &[]), (code, err));

    // Without the circuit's .r1cs (the key alone, elsewhere), the proof's
    // own check catches it, and still nothing is written.
    let alone = tempfile::tempdir().unwrap();
    let zkey = alone.path().join("k.zkey");
    std::fs::copy(fixture("multiplier.zkey"), &zkey).unwrap();
    let (code, err) = prove(d, &zkey, &bad, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("does not verify") && err.contains("the witness does not satisfy the circuit"), "{err}");
    assert!(err.contains("give the circuit's .r1cs"), "{err}");
    let good = prove(alone.path(), &zkey, &fixture("multiplier.wtns"), &[]);
    assert_eq!(good.0, 0, "{}", good.1);
    assert!(good.1.contains("proof verified against the key"), "{}", good.1);

    // A witness of another length: another circuit's.
    let longer = edited(d, "multiplier.wtns", |b| {
        let header = section_start(b, 1) + 4 + 32;
        let count = u32::from_le_bytes(b[header..header + 4].try_into().unwrap()) + 1;
        b[header..header + 4].copy_from_slice(&count.to_le_bytes());
        let values = section_start(b, 2);
        let len = u64::from_le_bytes(b[values - 8..values].try_into().unwrap()) + 32;
        b[values - 8..values].copy_from_slice(&len.to_le_bytes());
        b.extend([0u8; 32]);
    });
    let (code, err) = prove(d, &fixture("multiplier.zkey"), &longer, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("a witness for another circuit"), "{err}");

    // An explicit .r1cs of another circuit is refused, not silently used.
    let other = edited(d, "multiplier.r1cs", |b| {
        // The first term's wire: another signal.
        let at = section_start(b, 2) + 4;
        b[at] ^= 1;
    });
    let (code, err) =
        prove(d, &fixture("multiplier.zkey"), &fixture("multiplier.wtns"), &["--r1cs", other.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is not the circuit of this key"), "{err}");
}

#[test]
fn the_readers_agree_with_snarkjs_json_exports() {
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    let json: Vec<String> = serde_json::from_slice(&std::fs::read(fixture("multiplier.wtns.json")).unwrap()).unwrap();
    let ours: Vec<String> = witness.values.iter().map(Fr::to_string).collect();
    assert_eq!(ours, json);

    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("multiplier.zkey.json")).unwrap()).unwrap();
    assert_eq!(zkey.n_vars as u64, exported["nVars"].as_u64().unwrap());
    assert_eq!(zkey.n_public as u64, exported["nPublic"].as_u64().unwrap());
    assert_eq!(zkey.domain_size as u64, exported["domainSize"].as_u64().unwrap());
    assert_eq!(*zkey.verifying_key(), snarkjs::read_vk(&fixture("multiplier.vk.json")).unwrap());
    // Every coefficient, as snarkjs reads it (standard form, decimal).
    let mut from_json: Vec<(u64, u64, u64, String)> = exported["ccoefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["matrix"].as_u64().unwrap(),
                c["constraint"].as_u64().unwrap(),
                c["signal"].as_u64().unwrap(),
                c["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut ours = Vec::new();
    for (m, rows) in [&zkey.a, &zkey.b].into_iter().enumerate() {
        for row in 0..rows.rows() {
            for (signal, value) in rows.row(row) {
                ours.push((m as u64, row as u64, *signal as u64, value.to_string()));
            }
        }
    }
    from_json.sort();
    ours.sort();
    assert_eq!(ours, from_json);

    let r1cs = circom::load_r1cs(&fixture("multiplier.r1cs")).unwrap();
    r1cs.matches(&zkey).unwrap();
    assert_eq!(r1cs.first_unsatisfied(&witness.values), None);
}

/// A header point at infinity (all zero bytes) is refused even when the
/// points' checks are skipped: with α₁ there, every pairing of the check
/// is one, and any witness would prove.
#[test]
fn a_key_with_a_header_point_at_infinity_is_refused() {
    let bytes = std::fs::read(fixture("multiplier.zkey")).unwrap();
    // Section 2: n8q, q, n8r, r, nVars, nPublic, domainSize, then α₁.
    let alpha = section_start(&bytes, 2) + 4 + 32 + 4 + 32 + 4 + 4 + 4;
    let mut zeroed = bytes.clone();
    zeroed[alpha..alpha + 64].fill(0);
    let digest = *blake3::hash(&zeroed).as_bytes();
    for checks in [PointChecks::Full, PointChecks::Skip] {
        match Zkey::parse("zero.zkey", &zeroed, digest, checks) {
            Err(CircomError::InvalidPoint { what, fault, .. }) => {
                assert_eq!(what, "alpha_1");
                assert!(fault.contains("point at infinity"), "{fault}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a key with α₁ at infinity was accepted"),
        }
    }
}

#[test]
fn a_key_is_checked_in_full_once_then_loaded_by_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let checked = dir.path().join("checked");
    let bytes = std::fs::read(fixture("multiplier.zkey")).unwrap();
    let first = circom::load_zkey(&fixture("multiplier.zkey"), Some(&checked)).unwrap();
    let marker = checked.join(format!("{}.checked", blake3::hash(&bytes).to_hex()));
    assert!(marker.is_file());
    // A bad point in another file is still caught: markers are per digest.
    let mut off = bytes.clone();
    let at = section_start(&off, 5) + 64 + 32;
    off[at] ^= 1;
    let path = dir.path().join("off.zkey");
    std::fs::write(&path, &off).unwrap();
    assert!(matches!(circom::load_zkey(&path, Some(&checked)), Err(CircomError::InvalidPoint { .. })));
    // The same bytes skip the checks (and decode the same).
    let digest = *blake3::hash(&off).as_bytes();
    let unchecked = Zkey::parse("off.zkey", &off, digest, PointChecks::Skip).unwrap();
    assert_ne!(unchecked.key.a_query[1], first.key.a_query[1]);
}

#[test]
fn a_circuit_matched_to_its_key_once_is_then_read_for_its_c_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let checked = dir.path().join("checked");
    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let r1cs_bytes = std::fs::read(fixture("multiplier.r1cs")).unwrap();
    let marker = checked.join(format!("{}-{}.fits", hex(&zkey.digest), blake3::hash(&r1cs_bytes).to_hex()));
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    let mut bad = witness.values.clone();
    *bad.last_mut().unwrap() += Fr::from(1u64);
    let bad = circom::Witness { values: bad };
    let engine = MsmEngine::cpu();
    let mut errors = Vec::new();
    for round in 0..2 {
        assert_eq!(marker.is_file(), round == 1, "the marker is left by the full match only");
        let circuit = circom::load_key_circuit(&fixture("multiplier.r1cs"), &zkey, Some(&checked)).unwrap();
        let key =
            CircomKey::prepare(&engine, circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap(), Some(circuit))
                .unwrap();
        key.prove(&engine, &witness, &mut ProveStages::default()).unwrap();
        let err = key.prove(&engine, &bad, &mut ProveStages::default()).expect_err("a bad witness is refused");
        assert!(matches!(err, CircomError::Unsatisfied { .. }), "{err}");
        errors.push(err.to_string());
    }
    assert_eq!(errors[0], errors[1]);
    // Another circuit's file has another digest: matched in full, and refused, every time.
    let other = edited(dir.path(), "multiplier.r1cs", |b| {
        let at = section_start(b, 2) + 4;
        b[at] ^= 1;
    });
    for _ in 0..2 {
        let refused = circom::load_key_circuit(&other, &zkey, Some(&checked));
        assert!(matches!(refused, Err(CircomError::OtherCircuit { .. })));
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_library_prover_proves_the_fixture_on_the_cpu() {
    let engine = MsmEngine::cpu();
    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let key = CircomKey::prepare(&engine, zkey, None).unwrap();
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    let mut stages = ProveStages::default();
    let (first, public) = key.prove(&engine, &witness, &mut stages).unwrap();
    let (second, _) = key.prove(&engine, &witness, &mut stages).unwrap();
    assert_ne!(first, second, "fresh r and s each proof");
    assert_eq!(public, witness.values[1..=key.n_public].to_vec());
}

/// Whether circom2, circomlib and snarkjs are installed (tests/snarkjs);
/// with CVM_REQUIRE_SNARKJS=1 their absence is a failure.
fn circom_tools() -> bool {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snarkjs/node_modules");
    let installed = ["circom2", "circomlib", "snarkjs"].iter().all(|p| modules.join(p).join("package.json").is_file());
    installed && crate::snarkjs_runner::snarkjs_script().is_some() || {
        let reason = "circom test not run: circom2, circomlib or snarkjs not installed (npm ci --prefix tests/snarkjs)";
        assert!(std::env::var("CVM_REQUIRE_SNARKJS").as_deref() != Ok("1"), "{reason}, and CVM_REQUIRE_SNARKJS=1");
        eprintln!("{reason}");
        false
    }
}

fn snarkjs(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snarkjs/node_modules/snarkjs/build/cli.cjs");
    let out = Command::new("node").arg(cli).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Two circuits compiled by circom from circomlib (a Poseidon chain and a
/// Merkle path), set up and proven by snarkjs (tests/circom/build.sh), then
/// proven by cvm from the same zkey and witness: snarkjs verifies our
/// proof, we verify its, and public.json is byte for byte the same.
#[test]
fn circom_circuits_prove_with_cvm_and_verify_with_snarkjs() {
    if !circom_tools() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let d = out.path();
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/circom/build.sh");
    for name in ["poseidon_chain", "merkle_path"] {
        // Both fit a 2^10 ptau, made once in `d` and reused.
        let status = Command::new("bash").arg(&build).arg(name).arg(d).status().unwrap();
        assert!(status.success(), "building {name}: see {}", d.join("build.log").display());
        let file = |suffix: &str| d.join(format!("{name}{suffix}"));
        let (code, err) =
            prove_named(d, &file(".zkey"), &file(".wtns"), &file(".cvm_proof.json"), &file(".cvm_public.json"));
        assert_eq!(code, 0, "{name}: {err}");
        assert!(err.contains("constraints checked"), "{name}: the circuit's .r1cs is used: {err}");
        assert_eq!(
            std::fs::read(file(".cvm_public.json")).unwrap(),
            std::fs::read(file(".snarkjs_public.json")).unwrap(),
            "{name}: public.json"
        );
        let (code, said) = snarkjs(&[
            "groth16".as_ref(),
            "verify".as_ref(),
            file(".vk.json").as_os_str(),
            file(".cvm_public.json").as_os_str(),
            file(".cvm_proof.json").as_os_str(),
        ]);
        assert!(code == 0 && said.contains("OK"), "{name}: snarkjs on our proof: {said}");
        let (code, said, _) = run(cvm(d).args(["groth16", "verify"]).args([
            file(".vk.json"),
            file(".snarkjs_public.json"),
            file(".snarkjs_proof.json"),
        ]));
        assert_eq!(code, 0, "{name}: cvm on snarkjs's proof: {said}");
        let (code, _, err) = run(cvm(d).args(["groth16", "vk"]).args([file(".zkey"), file(".cvm_vk.json")]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            std::fs::read(file(".cvm_vk.json")).unwrap(),
            std::fs::read(file(".vk.json")).unwrap(),
            "{name}: vk"
        );
    }
}

fn prove_named(dir: &Path, zkey: &Path, wtns: &Path, proof: &Path, public: &Path) -> (i32, String) {
    let (code, _, err) = run(cvm(dir).args(["groth16", "prove"]).args([zkey, wtns, proof, public]));
    (code, err)
}

/// Our quotient scalars equal snarkjs's own (its prover's intermediate
/// values for the fixture's witness, dumped by tests/circom/check_formats.js).
#[test]
fn the_quotient_equals_snarkjs_intermediate_values() {
    use causality_vm::prove::circom::quotient::{odd_coset_quotient, Shape};
    let qap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("multiplier.qap.json")).unwrap()).unwrap();
    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    let h = odd_coset_quotient(
        Shape { plan: &Ntt::new(zkey.domain_size).unwrap(), a: &zkey.a, b: &zkey.b },
        &witness.values,
    );
    let expected: Vec<String> = serde_json::from_value(qap["h"].clone()).unwrap();
    assert_eq!(h.iter().map(Fr::to_string).collect::<Vec<_>>(), expected);
}

/// `cvm groth16 setup`'s key (single-party) proves and verifies, here and
/// (with Node) in snarkjs.
#[test]
fn a_dev_setup_key_proves_and_verifies() {
    use causality_vm::prove::circom::setup;
    let r1cs = circom::load_r1cs(&fixture("multiplier.r1cs")).unwrap();
    let mut rng = rand::thread_rng();
    let bytes = setup::zkey(&r1cs, &setup::Toxic::random(&mut rng)).unwrap();
    let zkey = Zkey::parse("dev.zkey", &bytes, *blake3::hash(&bytes).as_bytes(), PointChecks::Full).unwrap();
    r1cs.matches(&zkey).unwrap();
    let engine = MsmEngine::cpu();
    let circuit = r1cs.for_key("multiplier.r1cs".into(), &zkey).unwrap();
    let key = CircomKey::prepare(&engine, zkey, Some(circuit)).unwrap();
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    // `prove` checks the proof against the key's verification key.
    key.prove(&engine, &witness, &mut ProveStages::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zkey = d.join("dev.zkey");
    let (code, _, err) = run(cvm(d).args(["groth16", "setup"]).args([&fixture("multiplier.r1cs"), &zkey]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("single-party"), "the toxic waste is named: {err}");
    let (code, err) = prove_named(d, &zkey, &fixture("multiplier.wtns"), &d.join("p.json"), &d.join("s.json"));
    assert_eq!(code, 0, "{err}");
    if !circom_tools() {
        return;
    }
    // snarkjs proves with our key, and verifies with the key it exports from it.
    let file = |name: &str| d.join(name);
    let (code, said) = snarkjs(&[
        "zkey".as_ref(),
        "export".as_ref(),
        "verificationkey".as_ref(),
        zkey.as_os_str(),
        file("vk.json").as_os_str(),
    ]);
    assert_eq!(code, 0, "{said}");
    let (code, said) = snarkjs(&[
        "groth16".as_ref(),
        "prove".as_ref(),
        zkey.as_os_str(),
        fixture("multiplier.wtns").as_os_str(),
        file("sp.json").as_os_str(),
        file("ss.json").as_os_str(),
    ]);
    assert_eq!(code, 0, "{said}");
    for (public, proof) in [("ss.json", "sp.json"), ("s.json", "p.json")] {
        let (code, said) = snarkjs(&[
            "groth16".as_ref(),
            "verify".as_ref(),
            file("vk.json").as_os_str(),
            file(public).as_os_str(),
            file(proof).as_os_str(),
        ]);
        assert!(code == 0 && said.contains("OK"), "{proof}: {said}");
    }
}

/// A ceremony's key for the compliance circuit: the circuit exported as an
/// .r1cs, a snarkjs-format key made for it (here by `cvm groth16 setup`;
/// a ceremony's final .zkey has the same form), imported as the key set;
/// batches are then proven with it (the odd-coset quotient) and their
/// proofs verify, with snarkjs too. Another circuit's key is refused.
#[test]
fn a_snarkjs_key_of_the_compliance_circuit_becomes_its_key_set() {
    use causality_vm::prove::ProvingSystem;
    use causality_vm::Backend;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r1cs = d.join("compliance.r1cs");
    let (code, out, err) = run(cvm(d).args(["setup", "--ops-per-proof", "1", "--export-r1cs"]).arg(&r1cs));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("written to"), "{out}");
    let parsed = circom::load_r1cs(&r1cs).unwrap();
    let shape = causality_vm::prove::keys::CircuitShape::of(1).unwrap();
    assert_eq!(parsed.n_constraints, shape.num_constraints);
    assert_eq!(parsed.n_public, shape.num_public_inputs());

    // Another circuit's key: refused, nothing installed.
    let (code, _, err) =
        run(cvm(d).args(["setup", "--ops-per-proof", "1", "--import-zkey"]).arg(fixture("multiplier.zkey")));
    assert_eq!(code, 2);
    assert!(err.contains("not this circuit's"), "{err}");

    let zkey = d.join("compliance.zkey");
    let (code, _, err) = run(cvm(d).args(["groth16", "setup"]).arg(&r1cs).arg(&zkey));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(cvm(d).args(["setup", "--ops-per-proof", "1", "--import-zkey"]).arg(&zkey));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is the key set"), "{out}");
    // Once there, a second import needs --force, as a second setup does.
    let (code, _, err) = run(cvm(d).args(["setup", "--ops-per-proof", "1", "--import-zkey"]).arg(&zkey));
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");

    let system =
        ProvingSystem::load_or_setup(d, 1, Backend::Cpu, |notice| panic!("no setup expected: {notice}")).unwrap();
    let vk = circom::load_zkey(&zkey, None).unwrap().key.vk;
    assert_eq!(*system.verifying_key(), vk, "the ceremony's verification key");
    let proofs = system
        .prove_batch(&[crate::prove_support::create(7), crate::prove_support::transfer(9)])
        .expect("proven with the imported key (each proof is verified)");
    assert_eq!(proofs.len(), 2);
    if let Some(script) = crate::snarkjs_runner::snarkjs_script() {
        let export = d.join("export");
        snarkjs::export_proof(&export, &vk, &proofs[1]).unwrap();
        let (code, said) = crate::snarkjs_runner::run_snarkjs(&script, &export);
        assert_eq!(code, Some(0), "snarkjs: {said}");
    }
}

/// The same fixture proven with its G1 MSMs on the GPU engine (lavapipe in
/// CI): the proof verifies and the engine says where it ran.
#[test]
fn the_fixture_proves_on_the_gpu_engine() {
    let Some(_ctx) = causality_vm::gpu::test_context() else { return };
    let engine = MsmEngine::new(causality_vm::Backend::Gpu).unwrap();
    assert_eq!(engine.backend(), causality_vm::ResolvedBackend::Gpu);
    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let key = CircomKey::prepare(&engine, zkey, None).unwrap();
    let witness = circom::load_witness(&fixture("multiplier.wtns")).unwrap();
    let mut stages = ProveStages::default();
    // `prove` checks the proof against the key before returning it.
    let (_, public) = key.prove(&engine, &witness, &mut stages).unwrap();
    assert_eq!(public, witness.values[1..=2].to_vec());
    assert_eq!(stages.gpu_fallbacks, 0, "the GPU ran the MSMs");
    assert_eq!(stages.quotient_backend(), Some(causality_vm::ResolvedBackend::Gpu), "and the quotient's NTTs");
    assert_eq!(stages.ntt_fallbacks, 0);
}

/// A G2 point on the twist but outside the prime-order subgroup (B₂ of
/// the fixture's key replaced by one): named by section, index and fault.
#[test]
fn a_g2_point_outside_the_subgroup_is_refused() {
    use ark_bn254::{Fq2, G2Affine};
    use ark_ec::short_weierstrass::SWCurveConfig;
    use ark_ff::{Field, UniformRand};
    use causality_vm::prove::circom::field::PointCheck;
    let mut rng = rand::thread_rng();
    let outside = loop {
        let x = Fq2::rand(&mut rng);
        let rhs = x.square() * x + ark_bn254::g2::Config::COEFF_B;
        if let Some(y) = rhs.sqrt() {
            let p = G2Affine::new_unchecked(x, y);
            if p.fault() == Some("is not in the prime-order subgroup") {
                break p;
            }
        }
    };
    let mut bytes = std::fs::read(fixture("multiplier.zkey")).unwrap();
    let at = section_start(&bytes, 7) + 128 * 2;
    let mut encoded = Vec::new();
    for c in [outside.x.c0, outside.x.c1, outside.y.c0, outside.y.c1] {
        encoded.extend(ark_ff::BigInteger::to_bytes_le(&c.0));
    }
    bytes[at..at + 128].copy_from_slice(&encoded);
    let err = Zkey::parse("bad.zkey", &bytes, [0; 32], PointChecks::Full).err().unwrap().to_string();
    assert!(err.contains("section B2") && err.contains("point 2") && err.contains("subgroup"), "{err}");
    assert!(err.contains(&format!("offset {at}")), "{err}");
}

/// The proof's components against arkworks: with the blinding fixed, the
/// core's A, B and C equal Groth16's formulas computed with arkworks' own
/// MSMs over the zkey's sections and snarkjs's quotient scalars.
#[test]
fn the_proof_components_equal_arkworks_msms_over_the_key() {
    use ark_bn254::{G1Projective, G2Projective};
    use ark_ec::{CurveGroup, VariableBaseMSM};
    use causality_vm::prove::circom::quotient::{odd_coset_quotient, Shape};
    use causality_vm::prove::prover::{prove_assigned_blinded, ProverKey};
    let zkey = circom::load_zkey(&fixture("multiplier.zkey"), None).unwrap();
    let w = circom::load_witness(&fixture("multiplier.wtns")).unwrap().values;
    let h = odd_coset_quotient(Shape { plan: &Ntt::new(zkey.domain_size).unwrap(), a: &zkey.a, b: &zkey.b }, &w);
    let engine = MsmEngine::cpu();
    let prover = ProverKey::prepare(&engine, zkey.key.clone()).unwrap();
    let (r, s) = (Fr::from(11u64), Fr::from(13u64));
    let ours = prove_assigned_blinded(&engine, &prover, &w, zkey.n_public + 1, &h, (r, s), &mut ProveStages::default())
        .unwrap();

    let pk = &zkey.key;
    let private = &w[zkey.n_public + 1..];
    let a = G1Projective::msm(&pk.a_query, &w).unwrap() + pk.vk.alpha_g1 + pk.delta_g1 * r;
    let b2 = G2Projective::msm(&pk.b_g2_query, &w).unwrap() + pk.vk.beta_g2 + pk.vk.delta_g2 * s;
    let b1 = G1Projective::msm(&pk.b_g1_query, &w).unwrap() + pk.beta_g1 + pk.delta_g1 * s;
    let c =
        G1Projective::msm(&pk.l_query, private).unwrap() + G1Projective::msm(&pk.h_query, &h).unwrap() + a * s + b1 * r
            - pk.delta_g1 * (r * s);
    assert_eq!(ours.a, a.into_affine());
    assert_eq!(ours.b, b2.into_affine());
    assert_eq!(ours.c, c.into_affine());
}
