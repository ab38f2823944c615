//! `cvm serve`, `cvm submit`, `cvm jobs` and `cvm status` as a user runs
//! them, and a server killed with SIGKILL mid-load.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn cvm(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cvm"));
    c.arg("--data-dir").arg(dir).arg("--backend").arg("cpu");
    c
}

pub fn serve(dir: &Path) -> Child {
    let child =
        cvm(dir).args(["serve", "--runners", "1"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_socket(dir);
    child
}

/// Wait (a minute at most) for a server on `dir` to listen on its socket.
pub fn wait_for_socket(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(dir.join("cvm.sock")).is_err() {
        assert!(Instant::now() < deadline, "the server on {} did not start", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stop(mut child: Child) {
    // SIGTERM: a clean stop exits 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// One server per data dir: a second is refused and the first serves on.
/// An ended job is kept for `--result-ttl` seconds, then forgotten.
#[test]
fn a_second_server_is_refused_and_ended_jobs_are_forgotten_after_the_result_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"hash": {"messages": [{"text": "abc"}]}}"#).unwrap();
    let server = cvm(dir.path())
        .args(["serve", "--runners", "1", "--result-ttl", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(dir.path());
    let (code, _, err) = run(cvm(dir.path()).args(["serve", "--runners", "1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another `cvm serve` uses the data dir"), "{err}");
    let (code, _, err) = run(cvm(dir.path()).args(["submit", "--wait"]).arg(&job));
    assert_eq!(code, 0, "the first server still serves: {err}");
    let (code, out, err) = run(cvm(dir.path()).args(["jobs", "get", "1"]));
    assert_eq!(code, 0, "kept for now: {out}{err}");
    // The sweep runs every second (a quarter of the TTL, at least a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = run(cvm(dir.path()).args(["jobs", "get", "1"]));
        if code != 0 {
            assert!(err.contains("no job 1"), "{out}{err}");
            break;
        }
        assert!(Instant::now() < deadline, "job 1 is still kept past its TTL: {out}");
        std::thread::sleep(Duration::from_millis(250));
    }
    stop(server);
}

#[test]
fn a_user_submits_a_job_file_follows_it_and_reads_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"hash": {"messages": [{"text": "abc"}, {"hex": "00ff"}]}}"#).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit", "--wait"]).arg(&job));
    assert_eq!(code, 2, "no server yet: {err}");
    assert!(err.contains("no server on") && err.contains("cvm serve"), "{err}");

    let server = serve(dir.path());
    let (code, out, err) = run(cvm(dir.path()).args(["submit", "--wait"]).arg(&job));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("job 1 (hash): succeeded (backends: hash cpu)"), "where it ran: {out}");
    // The job store holds payloads (tokens, witnesses' keys): owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("jobs.redb"), mode("job-blobs"), mode("cvm.sock")), (0o600, 0o700, 0o600));
    assert!(out.contains(&blake3::hash(b"abc").to_hex().to_string()), "{out}");
    assert!(out.contains(&blake3::hash(&[0, 0xff]).to_hex().to_string()), "{out}");
    // The same file again names the same job.
    let (_, out, _) = run(cvm(dir.path()).args(["submit"]).arg(&job));
    assert!(out.contains("job 1 accepted (already submitted)"), "{out}");
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "jobs", "get", "1"]));
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["state"], "succeeded");
    assert_eq!(value["result"]["backends"]["hash"], "cpu");
    let (code, out, _) = run(cvm(dir.path()).args(["status"]));
    assert_eq!(code, 0);
    assert!(out.contains("serving on cpu"), "{out}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"hash": {"messages": [{"hex": "zz"}]}}"#).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit"]).arg(&bad));
    assert_eq!(code, 2);
    assert!(err.contains("hash.messages[0].hex"), "{err}");

    let stray = dir.path().join("stray.json");
    std::fs::write(&stray, r#"{"hash": {"messages": []}, "msm": {}}"#).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit"]).arg(&stray));
    assert_eq!(code, 2);
    assert!(err.contains("not a job file") && err.contains(r#"the keys "hash", "msm""#), "{err}");
    let twice = dir.path().join("twice.json");
    std::fs::write(&twice, r#"{"hash": {"messages": []}, "hash": {"messages": []}}"#).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit"]).arg(&twice));
    assert_eq!(code, 2);
    assert!(err.contains(r#"the key "hash" is given twice"#), "{err}");
    // A server address that is no server: said plainly.
    let (code, _, err) = run(cvm(dir.path()).args(["status", "--server"]).arg(format!("unix:{}", job.display())));
    assert_eq!(code, 2);
    assert!(err.contains("is not a socket"), "{err}");
    let (code, _, err) = run(cvm(dir.path()).args(["status", "--server", "tcp://127.0.0.1:99999"]));
    assert_eq!(code, 2);
    assert!(err.contains("is not a TCP port"), "{err}");

    // A file the server refuses after another was accepted: the accepted
    // one is reported, the refused one with its error, exit 1.
    let unknown = dir.path().join("unknown-set.json");
    let set = format!("bases:{}", "ab".repeat(32));
    std::fs::write(&unknown, format!(r#"{{"msm": {{"group": "g1", "base_set_id": "{set}", "scalars": []}}}}"#))
        .unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"hash": {"messages": [{"text": "other"}]}}"#).unwrap();
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit"]).arg(&other).arg(&unknown));
    assert_eq!(code, 1, "{out}{err}");
    let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(reports[0]["job_id"].as_u64().is_some(), "{reports}");
    assert!(reports[1]["error"].as_str().unwrap().contains(&set), "{reports}");
    // Refused alone: nothing changed, exit 2, an error of kind "server".
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "submit"]).arg(&unknown));
    assert_eq!(code, 2, "{out}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["kind"], "server", "{out}");
    // A job file on standard input.
    let mut piped =
        cvm(dir.path()).args(["submit", "--wait", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(piped.stdin.as_mut().unwrap(), br#"{"hash": {"messages": [{"text": "piped"}]}}"#)
        .unwrap();
    let piped = piped.wait_with_output().unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert!(String::from_utf8_lossy(&piped.stdout).contains(&blake3::hash(b"piped").to_hex().to_string()));
    // A key given twice is refused, not read as its last value.
    let twice = dir.path().join("twice.json");
    std::fs::write(&twice, r#"{"hash": {"messages": [{"text": "a", "text": "b"}]}}"#).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit"]).arg(&twice));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("duplicate field `text`"), "{err}");
    // A deadline past any clock is refused before anything is sent.
    let (code, _, err) = run(cvm(dir.path()).args(["submit", "--deadline", &u64::MAX.to_string()]).arg(&job));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--deadline") && err.contains("too far"), "{err}");
    stop(server);
    assert!(!dir.path().join("cvm.sock").exists(), "a clean stop removes the socket");
}

#[test]
fn jobs_accepted_before_a_sigkill_all_finish_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let files: Vec<_> = (0..40)
        .map(|i| {
            let path = dir.path().join(format!("job{i}.json"));
            let leaves: Vec<String> =
                (0..2000).map(|j| format!("\"{}\"", blake3::hash(format!("{i}-{j}").as_bytes()).to_hex())).collect();
            std::fs::write(&path, format!(r#"{{"merkle_root": {{"leaves": [{}]}}}}"#, leaves.join(","))).unwrap();
            path
        })
        .collect();
    // Submit in the background and kill the server while jobs are being accepted and run.
    let submitter = cvm(dir.path())
        .arg("--json")
        .arg("submit")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.kill().unwrap();
    server.wait().unwrap();
    let out = submitter.wait_with_output().unwrap();
    let accepted: Vec<u64> = match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
        Ok(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v["job_id"].as_u64()).collect(),
        Ok(v) => v["job_id"].as_u64().into_iter().collect(),
        // The submitter died with the server before printing: resubmitting below finds what was accepted.
        Err(_) => Vec::new(),
    };

    let server = serve(dir.path());
    // Resubmitting every file is safe: accepted ones answer with their job.
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit", "--wait"]).args(&files));
    assert_eq!(code, 0, "{err}");
    let reports: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(reports.len(), 40);
    let mut ids = Vec::new();
    for report in &reports {
        assert_eq!(report["job"]["state"], "succeeded", "{report}");
        assert!(report["job"]["attempts"].as_u64().unwrap() <= 2, "{report}");
        ids.push(report["job"]["job_id"].as_u64().unwrap());
    }
    for id in &accepted {
        assert!(ids.contains(id), "accepted job {id} was lost");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 40, "one job per file, never two");
    stop(server);
}

/// Settings that would be ignored, or could not work, are refused before
/// anything starts or is sent, and `--json` reports a refused command line
/// as it reports any error.
#[test]
fn settings_that_cannot_work_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"hash": {"messages": [{"text": "abc"}]}}"#).unwrap();
    let refused = |args: &[&str], expected: &str| {
        let (code, out, err) = run(cvm(dir.path()).args(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(expected) || out.contains(expected), "{args:?}: {expected:?} not in {out}{err}");
    };
    let job = job.to_str().unwrap();
    refused(&["submit", "--mode", "bogus", job], "unknown mode \"bogus\"");
    refused(&["submit", "--mode", "debug", job], "debug mode steps interactively");
    refused(&["submit", "--ops-per-proof", "0", job], "ops per proof");
    refused(&["serve", "--max-message-bytes", "0"], "--max-message-bytes 0");
    refused(&["serve", "--no-auth"], "--no-auth applies to the TCP listener");
    refused(&["serve", "--runners", "100000"], "at most 1024");
    refused(&["status", "--server", "tcp://127.0.0.1:1", "--tls-ca", job], "--tls-ca is for a server reached over TLS");
    // A worker's and a cluster server's settings, refused before the database is reached.
    let queue = "postgres://cvm@127.0.0.1:1/none";
    refused(&["worker", "--queue", queue, "--lease", "10000000000000000"], "--lease 10000000000000000: from 1 to");
    refused(&["worker", "--queue", queue, "--lease", "0"], "--lease 0: from 1 to");
    refused(&["serve", "--queue", queue, "--lease", "100000000000"], "--lease 100000000000: from 1 to");
    refused(&["worker", "--queue", queue, "--runners", "0"], "--runners 0: from 1 to");
    refused(&["worker", "--queue", queue, "--id", ""], "printable ASCII characters, no spaces");
    refused(&["worker", "--queue", queue, "--id", "a b"], "printable ASCII characters, no spaces");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (code, _, err) = run(cvm(&file).args(["serve"]));
    assert_eq!(code, 2);
    assert!(err.contains("is not a directory"), "{err}");
    // A socket no server answers on is named as stale.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("cvm.sock")).unwrap());
    refused(&["status"], "stale socket");
    // `--json` for an argument clap refuses.
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "jobs", "get", "abc"]));
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["kind"], "usage", "{report}");
    assert!(report["error"].as_str().unwrap().contains("abc"), "{report}");
}

/// A client pointed at something that is not a server (an HTTP/1 port,
/// such as the metrics page's, or nothing at all) says it could not talk
/// to one, with `--json` kind `connection`, rather than blaming a server.
#[test]
fn a_client_that_reaches_no_server_says_so() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = http.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in http.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let server = format!("tcp://{address}");
    let (code, out, err) = run(cvm(dir.path()).args(["status", "--server", &server]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no gRPC answer") && err.contains("--metrics"), "{err}");
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "jobs", "list", "--server", &server]));
    assert_eq!(code, 2, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["kind"], "connection", "{report}");
    // Nothing listening: the same kind, with the system's reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "status", "--server", &format!("tcp://{closed}")]));
    assert_eq!(code, 2, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["kind"], "connection", "{report}");
    assert!(report["error"].as_str().unwrap().contains("refused"), "{report}");
}
