//! `cvm hash`: b3sum-compatible lines in all three modes, and `--check`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn cvm(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvm"))
        .current_dir(dir)
        .env("CVM_BACKEND", "cpu")
        .args(args)
        .output()
        .expect("cvm runs")
}

/// `cvm` with `stdin` written to its standard input.
fn cvm_with_input(dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .current_dir(dir)
        .env("CVM_BACKEND", "cpu")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cvm runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
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
    // The key comes on standard input, raw (as b3sum takes it) or as hex.
    let cases: Vec<(ModeCase, Vec<u8>)> = vec![
        ((vec![], Box::new(|d: &[u8]| *blake3::hash(d).as_bytes())), vec![]),
        ((vec!["--keyed".into()], Box::new(move |d: &[u8]| *blake3::keyed_hash(&key, d).as_bytes())), key.to_vec()),
        (
            (vec!["--keyed".into()], Box::new(move |d: &[u8]| *blake3::keyed_hash(&key, d).as_bytes())),
            format!("{}\n", hex(&key)).into_bytes(),
        ),
        (
            (
                vec!["--derive-key".into(), "cvm cli test".into()],
                Box::new(|d: &[u8]| blake3::derive_key("cvm cli test", d)),
            ),
            vec![],
        ),
    ];
    for ((flags, reference), stdin) in cases {
        let mut args = vec!["hash"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(&names);
        let out = cvm_with_input(dir.path(), &args, &stdin);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let expected: String = files.iter().map(|(n, d)| format!("{}  {n}\n", hex(&reference(d)))).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "{args:?}");
    }
}

/// b3sum's flags, each against the blake3 crate, on a small file, a large
/// one (hashed as it is read) and standard input.
#[test]
fn b3sum_flags_match_the_blake3_crate() {
    let (dir, _) = setup();
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.path().join("large.bin"), &large).unwrap();
    let small = b"hello".to_vec();
    let xof = |data: &[u8], n: usize| {
        let mut out = vec![0u8; n];
        blake3::Hasher::new().update(data).finalize_xof().fill(&mut out);
        out
    };
    for (name, data) in [("small.txt", &small), ("large.bin", &large)] {
        for flags in [vec![], vec!["--no-mmap"], vec!["--num-threads", "1"]] {
            let mut args = vec!["hash", "--length", "64"];
            args.extend(&flags);
            args.push(name);
            let out = cvm(dir.path(), &args);
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{}  {name}\n", hex(&xof(data, 64))),
                "{args:?}"
            );
        }
        let out = cvm(dir.path(), &["hash", "--no-names", name]);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}\n", hex(blake3::hash(data).as_bytes())));
        let out = cvm(dir.path(), &["hash", "--tag", name]);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("BLAKE3 ({name}) = {}\n", hex(blake3::hash(data).as_bytes()))
        );
        let out = cvm(dir.path(), &["hash", "--raw", "--length", "7", name]);
        assert_eq!(out.stdout, xof(data, 7));
    }
    let out = cvm_with_input(dir.path(), &["hash", "-"], &large);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}  -\n", hex(blake3::hash(&large).as_bytes())));
    let out = cvm(dir.path(), &["hash", "--raw", "small.txt", "large.bin"]);
    assert_eq!(out.status.code(), Some(2), "--raw takes one input");
    // An output length past what is held in memory is refused, not allocated.
    let out = cvm(dir.path(), &["hash", "--length", "99999999999", "small.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 67108864 bytes"));
}

/// A 1 GiB (sparse) file hashes in constant memory, mapped or read.
#[test]
fn a_large_file_hashes_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.img");
    std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
    let mut reference = blake3::Hasher::new();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        reference.update(&zeros);
    }
    let expected = format!("{}  big.img\n", reference.finalize().to_hex());
    for flags in [&[][..], &["--no-mmap"]] {
        let mut args = vec!["hash"];
        args.extend(flags);
        args.push("big.img");
        let (stdout, max_rss_kib) = run_measured(dir.path(), &args);
        assert_eq!(stdout, expected, "{flags:?}");
        assert!(max_rss_kib < 160 * 1024, "{flags:?}: peak resident memory {max_rss_kib} KiB for a 1 GiB file");
    }
}

/// A FIFO (as a device or a shell's `<(…)` is) says it holds 0 bytes and
/// may hold any number: it is streamed in bounded memory, never read whole.
#[test]
fn a_fifo_hashes_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stream");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let block = vec![5u8; 1 << 20];
    let mut reference = blake3::Hasher::new();
    for _ in 0..384 {
        reference.update(&block);
    }
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            for _ in 0..384 {
                f.write_all(&block).unwrap();
            }
        })
    };
    let (stdout, max_rss_kib) = run_measured(dir.path(), &["hash", "stream"]);
    writer.join().unwrap();
    assert_eq!(stdout, format!("{}  stream\n", reference.finalize().to_hex()));
    assert!(max_rss_kib < 160 * 1024, "peak resident memory {max_rss_kib} KiB for a 384 MiB stream");
}

/// Run `cvm args` and return its output and its peak resident memory in KiB.
///
/// The peak is the child's own `VmHWM`, polled from `/proc` until it exits
/// (a high-water mark, so the last reading is the peak so far). `wait4`'s
/// `ru_maxrss` would not do: the child is spawned from this test process,
/// and Linux carries the spawning image's peak across `exec`, so the big
/// tests running beside this one would count against `cvm`.
fn run_measured(dir: &std::path::Path, args: &[&str]) -> (String, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .current_dir(dir)
        .env("CVM_BACKEND", "cpu")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(status) = std::fs::read_to_string(&status_file) else { break };
                let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) else { break };
                peak = peak.max(line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        })
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    // Output closed: the child is exiting; its last VmHWM reading stands.
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = poller.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(peak > 0, "no VmHWM read for the child");
    (stdout, peak)
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
fn bad_keys_and_check_lines_are_errors_never_panics() {
    let (dir, _) = setup();
    for key in [&b"abcd"[..], "é".repeat(32).as_bytes(), "ü".repeat(20).as_bytes(), b""] {
        let out = cvm_with_input(dir.path(), &["hash", "--keyed", "small.txt"], key);
        assert_eq!(out.status.code(), Some(2), "{key:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("key") && !err.contains("panicked"), "{err}");
    }
    std::fs::write(dir.path().join("odd.b3"), format!("{}  small.txt\nnot a line\n", "é".repeat(32))).unwrap();
    let out = cvm(dir.path(), &["hash", "--check", "odd.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("improperly formatted") && !err.contains("panicked"), "{err}");
    let out = cvm(dir.path(), &["hash", "small.txt", "nope"]);
    assert_eq!(out.status.code(), Some(1), "a missing file fails the run");
    assert!(String::from_utf8(out.stdout).unwrap().ends_with("  small.txt\n"), "the other files are still hashed");
}

#[test]
fn gpu_without_an_adapter_is_a_clear_error_and_auto_falls_back() {
    let (dir, files) = setup();
    // WGPU_BACKEND names a backend this build lacks, so no adapter exists.
    let cache = tempfile::tempdir().unwrap();
    let run = |backend: &str| {
        Command::new(env!("CARGO_BIN_EXE_cvm"))
            .current_dir(dir.path())
            .env("XDG_CACHE_HOME", cache.path())
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
    // Said once per user, not once per command.
    let again = run("auto");
    assert!(again.status.success());
    assert!(!String::from_utf8(again.stderr).unwrap().contains("CPU backend"), "said before");
}

/// The `auto` notice counts as said only where it could be seen: a
/// `--quiet` run (or a log filter hiding warnings) leaves it for the next.
#[test]
fn a_quiet_run_does_not_use_up_the_auto_notice() {
    let (dir, _) = setup();
    let cache = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], log: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cvm"));
        command.current_dir(dir.path()).env("XDG_CACHE_HOME", cache.path()).env("WGPU_BACKEND", "metal");
        command.env("CVM_BACKEND", "auto").env_remove("RUST_LOG").env_remove("CVM_LOG");
        if let Some(log) = log {
            command.env("RUST_LOG", log);
        }
        let out = command.args(extra).args(["hash", "small.txt"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap().contains("using the CPU backend")
    };
    assert!(!run(&["--quiet"], None), "quiet");
    assert!(!run(&[], Some("error")), "warnings filtered out");
    assert!(run(&[], None), "said at last");
    assert!(!run(&[], None), "and then not again");
}

/// `--json` gives each file's digest and the backend that hashed it.
#[test]
fn json_output_names_each_files_digest_and_backend() {
    let (dir, files) = setup();
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let out = cvm(dir.path(), &[&["--json", "hash"], names.as_slice()].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), files.len());
    for (entry, (name, data)) in entries.iter().zip(&files) {
        assert_eq!(entry["file"], *name);
        assert_eq!(entry["blake3"], hex(blake3::hash(data).as_bytes()));
        assert_eq!(entry["backend"], "cpu", "{entry}");
    }
}

/// `--json` leaves no failure on standard error alone: a file that cannot
/// be read and a list's improper line are entries too.
#[test]
fn json_output_lists_failures_too() {
    let (dir, files) = setup();
    let out = cvm(dir.path(), &["--json", "hash", "small.txt", "nope", "."]);
    assert_eq!(out.status.code(), Some(1));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0]["blake3"], hex(blake3::hash(&files[1].1).as_bytes()));
    for (entry, name) in entries[1..].iter().zip(["nope", "."]) {
        assert_eq!(entry["file"], name, "{entry}");
        assert!(entry["error"].as_str().is_some_and(|e| !e.is_empty()), "{entry}");
    }
    let list = format!("{}  small.txt\nnot a line\n", hex(blake3::hash(&files[1].1).as_bytes()));
    std::fs::write(dir.path().join("list.b3"), list).unwrap();
    let out = cvm(dir.path(), &["--json", "hash", "--check", "list.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["ok"], true, "{entries:?}");
    assert_eq!(entries[0]["backend"], "cpu", "where it was hashed: {entries:?}");
    assert_eq!((entries[1]["line"].as_u64(), entries[1]["ok"].as_bool()), (Some(2), Some(false)), "{entries:?}");
}

/// OpenGL is no compute backend of ours (wgpu's GL backend deadlocked or
/// panicked on the prover's concurrent MSMs): asked for alone, or the only
/// one left when Vulkan has no driver, it is refused like no adapter.
#[cfg(target_os = "linux")]
#[test]
fn an_opengl_adapter_is_never_used() {
    let (dir, _) = setup();
    let cache = tempfile::tempdir().unwrap();
    for (variable, value) in [("WGPU_BACKEND", "gl"), ("VK_ICD_FILENAMES", "/nonexistent/icd.json")] {
        let out = Command::new(env!("CARGO_BIN_EXE_cvm"))
            .current_dir(dir.path())
            // No Vulkan driver for the second run, however the machine names its drivers.
            .env("VK_DRIVER_FILES", if variable == "VK_ICD_FILENAMES" { value } else { "" })
            .env_remove("VK_ADD_DRIVER_FILES")
            .env("XDG_CACHE_HOME", cache.path())
            .env(variable, value)
            .env("CVM_BACKEND", "gpu")
            .args(["hash", "small.txt"])
            .output()
            .expect("cvm runs");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{variable}={value}: {stderr}");
        assert!(stderr.contains("no GPU adapter") && !stderr.contains("panicked"), "{variable}={value}: {stderr}");
    }
}

/// The kernels' knobs come from the environment through the binary: a named
/// kernel gives the same digests, a misspelt one a clear error and nothing
/// hashed.
#[test]
fn the_hash_kernel_variable_is_checked_and_honoured() {
    let (dir, files) = setup();
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let run = |kernel: &str| {
        Command::new(env!("CARGO_BIN_EXE_cvm"))
            .current_dir(dir.path())
            .env("CVM_BACKEND", "cpu")
            .env("CVM_HASH_KERNEL", kernel)
            .arg("hash")
            .args(&names)
            .output()
            .expect("cvm runs")
    };
    let expected = cvm(dir.path(), &[&["hash"][..], &names].concat());
    assert!(expected.status.success());
    for kernel in ["portable", "sse4.1", "avx2", "avx512"] {
        let supported = kernel.parse::<causality_vm::hash::Kernel>().unwrap().is_supported();
        let out = run(kernel);
        if supported {
            assert!(out.status.success(), "{kernel}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.stdout, expected.stdout, "{kernel}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{kernel}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"), "{kernel}");
        }
    }
    let out = run("avx1024");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CVM_HASH_KERNEL") && err.contains("avx1024"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The Poseidon kernel's variables are checked as the hash kernel's are: a
/// bad name or switch value is an error, not the fastest kernel in silence.
#[test]
fn the_poseidon_kernel_variables_are_checked() {
    let (dir, _) = setup();
    let run = |name: &str, value: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cvm"));
        command.current_dir(dir.path()).env("CVM_BACKEND", "cpu").env(name, value);
        command.args(["hash", "small.txt"]).output().expect("cvm runs")
    };
    for (name, value) in [("CVM_POSEIDON_KERNEL", "bogus"), ("CVM_POSEIDON_SCALAR", "2")] {
        let out = run(name, value);
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(name), "{name}={value}");
    }
    for (name, value) in [("CVM_POSEIDON_KERNEL", "scalar"), ("CVM_POSEIDON_SCALAR", "yes")] {
        assert!(run(name, value).status.success(), "{name}={value}");
    }
}
