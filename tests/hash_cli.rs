//! `cvm hash`: b3sum-compatible lines in all three modes, and `--check`.

use std::process::{Command, Output};

fn cvm(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvm"))
        .current_dir(dir)
        .env("CVM_BACKEND", "cpu")
        .args(args)
        .output()
        .expect("cvm runs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn setup() -> (tempfile::TempDir, Vec<(&'static str, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("empty", Vec::new()),
        ("small.txt", b"hello".to_vec()),
        ("block", vec![7u8; 64]),
        ("long.bin", (0..5000u32).map(|i| (i % 251) as u8).collect()),
    ];
    for (name, data) in &files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    (dir, files)
}

/// Extra `cvm hash` flags and the digest they must give.
type ModeCase = (Vec<String>, Box<dyn Fn(&[u8]) -> [u8; 32]>);

#[test]
fn prints_b3sum_lines_in_every_mode() {
    let (dir, files) = setup();
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let key = [0x42u8; 32];
    let cases: Vec<ModeCase> = vec![
        (vec![], Box::new(|d: &[u8]| *blake3::hash(d).as_bytes())),
        (vec!["--keyed".into(), hex(&key)], Box::new(move |d: &[u8]| *blake3::keyed_hash(&key, d).as_bytes())),
        (
            vec!["--derive-key".into(), "cvm cli test".into()],
            Box::new(|d: &[u8]| blake3::derive_key("cvm cli test", d)),
        ),
    ];
    for (flags, reference) in cases {
        let mut args = vec!["hash"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(&names);
        let out = cvm(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let expected: String = files.iter().map(|(n, d)| format!("{}  {n}\n", hex(&reference(d)))).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "{args:?}");
    }
}

#[test]
fn check_passes_a_good_list_and_fails_a_bad_one() {
    let (dir, files) = setup();
    let list: String = files.iter().map(|(n, d)| format!("{}  {n}\n", hex(blake3::hash(d).as_bytes()))).collect();
    std::fs::write(dir.path().join("good.b3"), &list).unwrap();
    let out = cvm(dir.path(), &["hash", "--check", "good.b3"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().matches(": OK").count(), files.len());

    let bad = list.replacen(&hex(blake3::hash(b"hello").as_bytes()), &"0".repeat(64), 1)
        + &format!("{}  missing\n", "1".repeat(64));
    std::fs::write(dir.path().join("bad.b3"), bad).unwrap();
    let out = cvm(dir.path(), &["hash", "-c", "bad.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("small.txt: FAILED\n"), "{stdout}");
    assert!(stdout.contains("missing: FAILED ("), "{stdout}");
    assert!(stdout.contains("long.bin: OK"), "{stdout}");
    assert!(String::from_utf8(out.stderr).unwrap().contains("did NOT match"));
}

#[test]
fn bad_keys_and_missing_files_are_reported() {
    let (dir, _) = setup();
    let out = cvm(dir.path(), &["hash", "--keyed", "abcd", "small.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("64 hex digits"));
    let out = cvm(dir.path(), &["hash", "small.txt", "nope"]);
    assert_eq!(out.status.code(), Some(1), "a missing file fails the run");
    assert!(String::from_utf8(out.stdout).unwrap().ends_with("  small.txt\n"), "the other files are still hashed");
}

#[test]
fn gpu_without_an_adapter_is_a_clear_error_and_auto_falls_back() {
    let (dir, files) = setup();
    // WGPU_BACKEND names a backend this build lacks, so no adapter exists.
    let run = |backend: &str| {
        Command::new(env!("CARGO_BIN_EXE_cvm"))
            .current_dir(dir.path())
            .env("WGPU_BACKEND", "metal")
            .env("CVM_BACKEND", backend)
            .args(["hash", "small.txt"])
            .output()
            .expect("cvm runs")
    };
    let out = run("gpu");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no GPU adapter"), "{stderr}");
    assert_eq!(stderr.matches("no GPU adapter").count(), 1, "said once: {stderr}");
    let out = run("auto");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}  small.txt\n", hex(blake3::hash(&files[1].1).as_bytes()))
    );
    assert!(String::from_utf8(out.stderr).unwrap().contains("using the CPU backend"), "auto warns");
}
