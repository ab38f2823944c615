//! ExecuteBatch jobs: the same results as `cvm run`, submission order, and
//! exactly once across a SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{cvm, run, serve, stop};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `n` batch files in `dir`, each creating two fresh resources (the
/// example's, with new nonces), bringing the example's TEL program by path.
pub fn create_batches(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::copy(examples().join("fungible_token.tel"), dir.join("fungible_token.tel")).unwrap();
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("create.json")).unwrap()).unwrap();
    (0..n)
        .map(|i| {
            let mut batch = template.clone();
            for (j, op) in batch["ops"].as_array_mut().unwrap().iter_mut().enumerate() {
                op["resource"]["nonce"] =
                    Value::String(blake3::hash(format!("{i}/{j}").as_bytes()).to_hex().to_string());
            }
            batch["trace_id"] = Value::String(format!("batch-{i}"));
            let path = dir.join(format!("batch{i}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(&batch).unwrap()).unwrap();
            path
        })
        .collect()
}

/// A batch file as the server takes it: its programs inline (what `cvm submit` does).
pub fn inline_batch(batch: &Path) -> Vec<u8> {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(batch).unwrap()).unwrap();
    let dir = batch.parent().unwrap();
    let programs = value.as_object_mut().unwrap().remove("programs").unwrap_or(Value::Array(vec![]));
    let inline: Vec<Value> = programs
        .as_array()
        .unwrap()
        .iter()
        .map(|name| {
            let name = name.as_str().unwrap();
            serde_json::json!({"name": name, "tel": std::fs::read_to_string(dir.join(name)).unwrap()})
        })
        .collect();
    value["inline_programs"] = Value::Array(inline);
    value.to_string().into_bytes()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_batch_job_gives_what_cvm_run_gives() {
    let files = tempfile::tempdir().unwrap();
    let batch = create_batches(files.path(), 1).pop().unwrap();
    let local = tempfile::tempdir().unwrap();
    let (code, out, err) = run(cvm(local.path()).args(["--json", "run", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let expected = json(&out);

    let served = tempfile::tempdir().unwrap();
    let server = serve(served.path());
    let (code, out, err) = run(cvm(served.path()).args(["--json", "submit", "--wait", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let got = json(&out)["job"]["result"]["value"]["batch"].clone();
    assert_eq!(got["results"], expected["results"]);
    assert_eq!(got["success_count"], expected["success_count"]);
    for field in ["committed", "batch_number", "state_root_before", "state_root_after", "trace_id", "ops_count"] {
        assert_eq!(got["metadata"][field], expected["metadata"][field], "metadata.{field}");
    }
    // Readers work while the server holds the store.
    let (code, out, err) = run(cvm(served.path()).args(["state"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(expected["metadata"]["state_root_after"].as_str().unwrap()), "{out}");

    // A path program outside what was inlined is refused precisely, and nothing is queued.
    let raw = std::fs::read_to_string(&batch).unwrap();
    let mut client_side = json(&raw);
    client_side["programs"] = serde_json::json!(["../../etc/passwd"]);
    std::fs::write(files.path().join("escape.json"), client_side.to_string()).unwrap();
    let (code, _, err) = run(cvm(served.path()).args(["submit"]).arg(files.path().join("escape.json")));
    assert_eq!(code, 2);
    assert!(err.contains("program ../../etc/passwd"), "{err}");

    // A bad batch is refused with `cvm run`'s message: the file's own line and column.
    let mut bad = json(&raw);
    bad["ops"][1]["resource"]["quantity"] = serde_json::json!("many");
    let bad_file = files.path().join("bad-quantity.json");
    std::fs::write(&bad_file, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
    let (code, _, ran) = run(cvm(local.path()).args(["run", "--no-prove"]).arg(&bad_file));
    assert_eq!(code, 2, "{ran}");
    let (code, _, submitted) = run(cvm(served.path()).args(["submit"]).arg(&bad_file));
    assert_eq!(code, 2, "{submitted}");
    assert_eq!(submitted, ran, "the same message");
    assert!(ran.contains("bad-quantity.json:") && ran.contains("ops[1]"), "{ran}");

    // The same file with other flags is another job under the same derived request id.
    let (code, _, err) = run(cvm(served.path()).args(["submit"]).arg(&batch));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ALREADY_EXISTS") && err.contains("give --request-id"), "{err}");

    // The batch again (a new request): its creations fail, as in `cvm run`, exit 1.
    let (code, out, err) =
        run(cvm(served.path()).args(["--json", "submit", "--wait", "--no-prove", "--request-id", "again"]).arg(&batch));
    assert_eq!(code, 1, "{err}");
    assert_eq!(json(&out)["job"]["result"]["value"]["batch"]["success_count"], 0, "{out}");
    let (code, _, err) = run(cvm(local.path()).args(["run", "--no-prove"]).arg(&batch));
    assert_eq!(code, 1, "{err}");
    stop(server);
}

#[test]
fn batch_jobs_commit_once_each_across_a_sigkill() {
    let files = tempfile::tempdir().unwrap();
    // Proven batches take long enough (the key setup, then a proof each) for
    // the kills to land while batches execute, prove and commit.
    let batches = create_batches(files.path(), 6);
    // The reference: the same batches run in order by `cvm run`.
    let reference = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cvm(reference.path()).args(["run", "--no-prove"]).args(&batches));
    assert_eq!(code, 0, "{err}");
    let (_, reference_state, _) = run(cvm(reference.path()).args(["--json", "state"]));

    let dir = tempfile::tempdir().unwrap();
    for kill_after_ms in [1500u64, 3000] {
        let mut server = serve(dir.path());
        let submitter = cvm(dir.path())
            .args(["submit"])
            .args(&batches)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        server.kill().unwrap();
        server.wait().unwrap();
        let _ = submitter.wait_with_output();
    }
    let server = serve(dir.path());
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit", "--wait"]).args(&batches));
    assert_eq!(code, 0, "{err}\n{out}");
    for report in json(&out).as_array().unwrap() {
        assert_eq!(report["job"]["state"], "succeeded", "{report}");
    }
    stop(server);
    let (_, state, _) = run(cvm(dir.path()).args(["--json", "state"]));
    let (state, reference_state) = (json(&state), json(&reference_state));
    assert_eq!(state["state_root"], reference_state["state_root"], "the same registers, each batch once");
    assert_eq!(state["head"], 6, "6 batches committed, none twice: {state}");
}

/// Submit `job` to a fresh server, cancel it once it reaches `stage`, and
/// check that it ends cancelled with a message holding `said`, nothing of
/// it committed.
async fn cancel_at_stage(job: causality_vm::service::proto::ExecuteBatchJob, stage: &str, said: &str) {
    use causality_vm::service::proto::{job_payload, JobPayload, JobState};
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = crate::support::unix_client(&server).await;
    let payload = JobPayload { kind: Some(job_payload::Kind::ExecuteBatch(job)) };
    let accepted = client.submit("to-cancel", payload, 0, None).await.unwrap();
    let mut events = client.events(accepted.job_id).await.unwrap();
    loop {
        let event = events.message().await.unwrap().unwrap_or_else(|| panic!("the job ended before {stage}"));
        if event.stage == stage {
            break;
        }
    }
    let running = client.cancel(accepted.job_id).await.unwrap();
    assert_eq!(running.state(), JobState::Running, "a running job ends at its next stage: {running:?}");
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Cancelled, "{job:?}");
    let message = job.error.unwrap().message;
    assert!(message.contains(said), "{message}");
    server.shutdown().await.unwrap();
    let store = causality_vm::RegisterStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.head(), 0, "nothing committed");
}

/// Cancelled at its key stage (a fresh data dir makes the proving keys
/// there, for seconds): it stops when that stage ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_batch_job_cancelled_stops_at_its_next_stage_and_commits_nothing() {
    let files = tempfile::tempdir().unwrap();
    let batch = create_batches(files.path(), 1).pop().unwrap();
    let job = causality_vm::service::proto::ExecuteBatchJob { batch_json: inline_batch(&batch), ..Default::default() };
    cancel_at_stage(job, "load keys", "at stage load keys").await;
}

/// Cancelled while it proves (its prove stage, told by the pipeline, is
/// seen by Await): the batch stops before its commit, commits nothing, and
/// the job ends cancelled, saying where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_cancelled_while_it_runs_stops_before_its_commit() {
    let files = tempfile::tempdir().unwrap();
    let batch = create_batches(files.path(), 1).pop().unwrap();
    // Sixteen creations, one proof each: seconds of proving.
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&batch).unwrap()).unwrap();
    let template = value["ops"][0].clone();
    value["ops"] = (0..16)
        .map(|i| {
            let mut op = template.clone();
            op["resource"]["nonce"] =
                Value::String(blake3::hash(format!("cancel/{i}").as_bytes()).to_hex().to_string());
            op
        })
        .collect();
    std::fs::write(&batch, serde_json::to_vec(&value).unwrap()).unwrap();
    let job = causality_vm::service::proto::ExecuteBatchJob {
        batch_json: inline_batch(&batch),
        ops_per_proof: 1,
        ..Default::default()
    };
    cancel_at_stage(job, "prove", "stopped before its commit").await;
}

/// A batch dated past the server's clock skew, either way, is refused at
/// submit (a batch from the future would hold back every later batch:
/// committed timestamps never go back) and nothing is queued; `"now"` and
/// a date within the skew run; `max_clock_skew: None` lifts the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_dated_far_from_the_clock_are_refused_at_submit() {
    use causality_vm::service::proto::{job_payload, ExecuteBatchJob, JobPayload, JobState, ListRequest};
    let files = tempfile::tempdir().unwrap();
    let batches = create_batches(files.path(), 4);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let dated = |batch: &Path, timestamp: Value| {
        let mut value: Value = serde_json::from_str(&std::fs::read_to_string(batch).unwrap()).unwrap();
        value["timestamp"] = timestamp;
        value.as_object_mut().unwrap().remove("trace_id");
        std::fs::write(batch, serde_json::to_vec(&value).unwrap()).unwrap();
        let job = ExecuteBatchJob { batch_json: inline_batch(batch), no_prove: true, ..Default::default() };
        JobPayload { kind: Some(job_payload::Kind::ExecuteBatch(job)) }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = crate::support::unix_client(&server).await;
    for (i, far) in [4_000_000_000u64, now - 3600].into_iter().enumerate() {
        let refused = client.submit(&format!("far{i}"), dated(&batches[i], json!(far)), 0, None).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let message = refused.message();
        assert!(message.contains("execute_batch.batch_json") && message.contains("timestamp"), "{message}");
        assert!(message.contains(if i == 0 { "ahead of" } else { "behind" }), "{message}");
    }
    assert!(client.list(ListRequest::default()).await.unwrap().is_empty(), "nothing queued");
    for (i, timestamp) in [json!("now"), json!(now + 60)].into_iter().enumerate() {
        let accepted = client.submit(&format!("near{i}"), dated(&batches[2 + i], timestamp), 0, None).await.unwrap();
        let job = client.wait(accepted.job_id).await.unwrap();
        assert_eq!(job.state(), JobState::Succeeded);
        // With no trace id of its own, the batch is traced by its request id.
        let Some(causality_vm::service::proto::job_result::Kind::ExecuteBatch(r)) =
            job.result.as_ref().and_then(|r| r.kind.clone())
        else {
            panic!("{job:?}")
        };
        let trace = json(&r.result_json)["metadata"]["trace_id"].as_str().unwrap().to_string();
        assert!(trace.starts_with(&format!("request near{i}@")), "{trace}");
    }
    server.shutdown().await.unwrap();

    // Accepted while near the clock, queued across a restart whose limit it
    // is now past: a retry is answered with the job, and the job runs (the
    // limit is checked at submit, not when a job runs).
    let server = crate::support::server(dir.path(), 0).await;
    let mut client = crate::support::unix_client(&server).await;
    let queued = dated(&batches[0], json!(now + 100));
    let accepted = client.submit("drifted", queued.clone(), 0, None).await.unwrap();
    server.shutdown().await.unwrap();
    let mut options = crate::support::options(dir.path(), 1);
    options.max_clock_skew = Some(10);
    let server = causality_vm::service::server::start(options).await.unwrap();
    let mut client = crate::support::unix_client(&server).await;
    let again = client.submit("drifted", queued, 0, None).await.unwrap();
    assert!(again.existing && again.job_id == accepted.job_id, "{again:?}");
    assert_eq!(client.wait(accepted.job_id).await.unwrap().state(), JobState::Succeeded);
    server.shutdown().await.unwrap();

    let mut options = crate::support::options(dir.path(), 1);
    options.max_clock_skew = None;
    let server = causality_vm::service::server::start(options).await.unwrap();
    let mut client = crate::support::unix_client(&server).await;
    let accepted = client.submit("ahead", dated(&batches[1], json!(now + 3600)), 0, None).await.unwrap();
    assert_eq!(client.wait(accepted.job_id).await.unwrap().state(), JobState::Succeeded, "no limit");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_batch_jobs_run_as_one_pipeline_in_submission_order() {
    use causality_vm::service::proto::{job_payload, ExecuteBatchJob, JobPayload, JobState};
    let files = tempfile::tempdir().unwrap();
    let batches = create_batches(files.path(), 4);
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server(dir.path(), 0).await;
    let mut client = crate::support::unix_client(&server).await;
    let mut ids = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        // Proven, so that each batch takes long enough to tell a pipeline
        // from one batch after another.
        let job = ExecuteBatchJob { batch_json: inline_batch(batch), ..Default::default() };
        let payload = JobPayload { kind: Some(job_payload::Kind::ExecuteBatch(job)) };
        // Priorities do not reorder a domain's batches.
        ids.push(client.submit(&format!("b{i}"), payload, i as i32, None).await.unwrap().job_id);
    }
    server.shutdown().await.unwrap();
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = crate::support::unix_client(&server).await;
    // While the pipeline runs, Status counts each of its jobs as running, as List shows them.
    let mut most_running = 0;
    while client.get(ids[0]).await.unwrap().state() != JobState::Succeeded {
        let status = client.status().await.unwrap();
        let batches = status.kinds.iter().find(|k| k.kind() == causality_vm::service::proto::JobKind::ExecuteBatch);
        most_running = most_running.max(batches.unwrap().running);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(most_running, 4, "Status counted {most_running} running batch jobs at most");
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(client.wait(*id).await.unwrap());
    }
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job.state(), JobState::Succeeded);
        let Some(causality_vm::service::proto::job_result::Kind::ExecuteBatch(r)) =
            job.result.as_ref().and_then(|r| r.kind.clone())
        else {
            panic!()
        };
        let result: Value = serde_json::from_str(&r.result_json).unwrap();
        assert_eq!(result["metadata"]["batch_number"], i as u64 + 1, "submission order");
        // The job's backends are the batch's own: every stage that ran.
        let backends: Vec<(&str, &str)> =
            job.result.as_ref().unwrap().backends.iter().map(|b| (b.stage.as_str(), b.backend.as_str())).collect();
        assert_eq!(backends, [("execute", "cpu"), ("hash", "cpu"), ("prove", "cpu"), ("quotient", "cpu")]);
        assert_eq!(result["metadata"]["backends"]["prove"], "cpu");
    }
    // One pipeline: every job started before the first one ended.
    assert!(jobs.iter().all(|j| j.started_unix_ms < jobs[0].finished_unix_ms), "{jobs:?}");
    server.shutdown().await.unwrap();
}
