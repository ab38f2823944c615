//! Key sets load by digest, validate every point when the digest does not
//! match or on request, upgrade from the compressed form of earlier
//! versions, and a batch's proofs name the key set that made them.

use ark_serialize::CanonicalSerialize;
use causality_vm::prove::keys::{self, CircuitShape, Validation};
use causality_vm::prove::ProvingSystem;
use causality_vm::Backend;

fn key_set() -> (tempfile::TempDir, std::path::PathBuf, CircuitShape) {
    let data = tempfile::tempdir().unwrap();
    ProvingSystem::load_or_setup(data.path(), 1, Backend::Cpu, |_| {}).unwrap();
    let dir = keys::key_dir(data.path(), 1);
    (data, dir, CircuitShape::of(1).unwrap())
}

#[test]
fn keys_load_by_digest_and_damage_is_caught_by_validation() {
    let (_data, dir, shape) = key_set();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(keys::CIRCUIT_FILE)).unwrap()).unwrap();
    assert_eq!(meta["key_format"], keys::KEY_FORMAT);
    assert_eq!(meta["proving_key_blake3"].as_str().map(str::len), Some(64));
    let (pk, loaded) = keys::load(&dir, &shape, Validation::Digest).unwrap();
    assert!(!loaded.validated && !loaded.upgraded, "{loaded:?}");
    let (again, loaded) = keys::load(&dir, &shape, Validation::Full).unwrap();
    assert!(loaded.validated);
    assert_eq!(again, pk);
    // One flipped byte inside a point: the digest no longer matches, every
    // point is validated, and the damage is an error.
    let path = dir.join(keys::PROVING_KEY_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let err = keys::load(&dir, &shape, Validation::Digest).expect_err("a damaged key is refused").to_string();
    assert!(err.contains(keys::PROVING_KEY_FILE), "{err}");
}

#[test]
fn key_sets_of_earlier_versions_are_validated_once_and_rewritten() {
    let (_data, dir, shape) = key_set();
    let (pk, _) = keys::load(&dir, &shape, Validation::Digest).unwrap();
    // The earlier form: compressed proving key, circuit.json without digests.
    let mut compressed = Vec::new();
    pk.serialize_compressed(&mut compressed).unwrap();
    std::fs::write(dir.join(keys::PROVING_KEY_FILE), &compressed).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(keys::CIRCUIT_FILE)).unwrap()).unwrap();
    for field in ["key_format", "proving_key_blake3", "verifying_key_blake3"] {
        meta.as_object_mut().unwrap().remove(field);
    }
    std::fs::write(dir.join(keys::CIRCUIT_FILE), meta.to_string()).unwrap();
    let (upgraded, loaded) = keys::load(&dir, &shape, Validation::Digest).unwrap();
    assert!(loaded.upgraded && loaded.validated);
    assert_eq!(upgraded, pk);
    let (_, loaded) = keys::load(&dir, &shape, Validation::Digest).unwrap();
    assert!(!loaded.upgraded && !loaded.validated, "rewritten in the fast form");
}

#[test]
fn stored_proofs_name_their_key_set_and_a_replaced_one_is_reported() {
    let data = tempfile::tempdir().unwrap();
    let cvm = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cvm"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--backend", "cpu"])
            .args(args)
            .output()
            .unwrap()
    };
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/create.json");
    assert!(cvm(&["run", "--ops-per-proof", "1", file.to_str().unwrap()]).status.success());
    let verify = data.path().join("verify.json");
    let batch = serde_json::json!({ "domain": "example.bank", "token": "mint",
        "ops": [{ "op": "verify", "target": { "kind": "batch_proof", "batch": 1 } }] });
    std::fs::write(&verify, batch.to_string()).unwrap();
    let o = cvm(&["run", "--mode", "verification", verify.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("verifies"), "{}", String::from_utf8_lossy(&o.stdout));
    let out = data.path().join("export");
    assert!(cvm(&["export", "--out", out.to_str().unwrap()]).status.success());
    let o = cvm(&["verify", "--paranoid", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // New keys for the same size: the batch's proofs say which ones made them.
    assert!(cvm(&["setup", "--ops-per-proof", "1", "--force"]).status.success());
    let o = cvm(&["run", "--mode", "verification", verify.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("were made with key set") && stdout.contains("setup --force"), "{stdout}");
}

#[test]
fn the_key_file_and_shape_forms_round_trip() {
    let (_data, dir, shape) = key_set();
    let (pk, _) = keys::load(&dir, &shape, Validation::Full).unwrap();
    let bytes = causality_vm::prove::keyfile::encode(&pk);
    assert_eq!(causality_vm::prove::keyfile::decode(&bytes, false).unwrap(), pk);
    assert_eq!(causality_vm::prove::keyfile::decode(&bytes, true).unwrap(), pk);
    for cut in [0, 7, 100, bytes.len() - 1] {
        assert!(causality_vm::prove::keyfile::decode(&bytes[..cut], true).is_err());
    }
    let decoded = CircuitShape::decode(&shape.encode()).unwrap();
    assert_eq!(decoded.digest, shape.digest);
    assert_eq!(decoded.matrices, shape.matrices);
    let cached = keys::cached_shape(&dir, 1).expect("the key set's shape is read back");
    assert_eq!(cached.matrices, shape.matrices);

    // A point's flag byte is 0 or 1; anything else is an error, validated or not.
    let mut bad_flag = bytes.clone();
    let first_point = bytes.len() - 65; // the last point of l_query
    bad_flag[first_point] = 2;
    assert!(causality_vm::prove::keyfile::decode(&bad_flag, false).unwrap_err().contains("flag byte"));
}

#[test]
fn a_damaged_shape_is_an_error_or_ignored_never_trusted() {
    let (data, dir, shape) = key_set();
    let bytes = shape.encode();
    for cut in [0, 8, 71, 80, bytes.len() / 2, bytes.len() - 1] {
        assert!(CircuitShape::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(CircuitShape::decode(&extra).unwrap_err().contains("trailing"));
    // The last entry's variable out of range.
    let mut bad_variable = bytes.clone();
    let n = bad_variable.len();
    bad_variable[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(CircuitShape::decode(&bad_variable).unwrap_err().contains("variable"));
    // And its coefficient index.
    let mut bad_coefficient = bytes.clone();
    bad_coefficient[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(CircuitShape::decode(&bad_coefficient).unwrap_err().contains("coefficient"));

    // A shape file that does not match its recorded digest is ignored and the
    // circuit synthesized; loading the keys then caches a good one again.
    let file = dir.join(keys::SHAPE_FILE);
    let mut damaged = std::fs::read(&file).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    std::fs::write(&file, &damaged).unwrap();
    assert!(keys::cached_shape(&dir, 1).is_none());
    ProvingSystem::load_or_setup(data.path(), 1, Backend::Cpu, |n| panic!("no notice expected: {n}")).unwrap();
    assert_eq!(keys::cached_shape(&dir, 1).expect("cached again").matrices, shape.matrices);
    std::fs::remove_file(&file).unwrap();
    assert!(keys::cached_shape(&dir, 1).is_none());
    ProvingSystem::load_or_setup(data.path(), 1, Backend::Cpu, |n| panic!("no notice expected: {n}")).unwrap();
    assert!(keys::cached_shape(&dir, 1).is_some());
}

/// The compliance circuit's digest at one op per proof. A change to the
/// circuit must bump `CIRCUIT_VERSION` (key sets cache their circuit's shape
/// by version) and update this digest.
#[test]
fn the_circuit_is_pinned_to_its_version() {
    let shape = CircuitShape::of(1).unwrap();
    assert_eq!(
        (causality_vm::prove::circuit::CIRCUIT_VERSION, shape.digest_hex().as_str()),
        (1, PINNED_DIGEST),
        "the circuit changed: bump CIRCUIT_VERSION and update PINNED_DIGEST"
    );
}

const PINNED_DIGEST: &str = "262924c3e19852b76a7d922ac726a3d7dc8c4725487536130160f37aecc02ca5";
