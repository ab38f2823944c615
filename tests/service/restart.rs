//! Durability: accepted jobs survive a stop and run after the restart.

use causality_vm::service::proto::JobState;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_jobs_survive_a_restart_and_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let mut ids = Vec::new();
    for i in 0..20u32 {
        ids.push(client.submit(&format!("r{i}"), hash_payload(&[&i.to_le_bytes()]), 0, None).await.unwrap().job_id);
    }
    server.shutdown().await.unwrap();

    let server = crate::support::server(dir.path(), 2).await;
    let mut client = unix_client(&server).await;
    for (i, id) in ids.iter().enumerate() {
        let job = client.wait(*id).await.unwrap();
        assert_eq!(job.state(), JobState::Succeeded);
        assert_eq!(job.attempts, 1, "ran once");
        let Some(causality_vm::service::proto::job_result::Kind::Hash(h)) = job.result.and_then(|r| r.kind) else {
            panic!()
        };
        assert_eq!(h.digests[0], blake3::hash(&(i as u32).to_le_bytes()).as_bytes().to_vec());
    }
    // A resubmission after the restart names the same, finished job.
    let again = client.submit("r0", hash_payload(&[&0u32.to_le_bytes()]), 0, None).await.unwrap();
    assert!(again.existing && again.job_id == ids[0]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let err = causality_vm::service::server::start(options(dir.path(), 0)).await.err().expect("refused");
    assert!(err.to_string().contains("another `cvm serve`"), "{err}");
    // The refused server left the first one's socket where it was.
    assert!(server.socket.exists());
    crate::support::unix_client(&server).await.status().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Servers starting on one data dir at the same instant: one serves, the
/// others are refused, and none takes the winner's socket for stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_at_once_on_one_data_dir_leave_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let starts: Vec<_> =
        (0..4).map(|_| tokio::spawn(causality_vm::service::server::start(options(dir.path(), 0)))).collect();
    let mut serving = Vec::new();
    for start in starts {
        if let Ok(server) = start.await.unwrap() {
            serving.push(server);
        }
    }
    assert_eq!(serving.len(), 1, "exactly one serves");
    let server = serving.pop().unwrap();
    crate::support::unix_client(&server).await.status().await.expect("its socket is still its own");
    server.shutdown().await.unwrap();
}

/// Whatever else sits where the socket goes is not removed: only a stale
/// socket is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_the_socket_goes_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cvm.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let err = causality_vm::service::server::start(options(dir.path(), 0)).await.err().expect("refused");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

/// The crash window exactly-once must close: a batch committed (its record
/// carrying the request id) but the job's end never recorded. The restart
/// finds the commit and does not run the batch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_committed_before_a_crash_is_not_committed_again() {
    use causality_vm::batch::file::{check_inline, BatchFile, Keys};
    use causality_vm::batch::{execute_batches, BatchJob, TransactionContext};
    use causality_vm::service::journal::Journal;
    use causality_vm::service::proto::{job_payload, ExecuteBatchJob, JobPayload};
    use causality_vm::{ExecutionMode, RegisterStore};

    let dir = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("create.json")).unwrap()).unwrap();
    let source = std::fs::read_to_string(examples.join("fungible_token.tel")).unwrap();
    batch["programs"] = serde_json::json!([]);
    batch["inline_programs"] = serde_json::json!([{"name": "fungible_token.tel", "tel": source}]);
    let text = batch.to_string();
    let payload = JobPayload {
        kind: Some(job_payload::Kind::ExecuteBatch(ExecuteBatchJob {
            batch_json: text.clone().into_bytes(),
            no_prove: true,
            ..Default::default()
        })),
    };
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let accepted = client.submit("the-batch", payload, 0, None).await.unwrap();
    server.shutdown().await.unwrap();

    // What a crash leaves: the job started (durably, with the store's head
    // then), the batch committed under its request id, the end unrecorded.
    let journal = Journal::open(dir.path()).unwrap();
    let mut record = journal.get(accepted.job_id).unwrap().unwrap();
    record.job.set_state(JobState::Running);
    record.job.attempts = 1;
    record.batch_head = 0;
    journal.update(&record, None, true).unwrap();
    journal.close();
    drop(journal);
    {
        let mut store = RegisterStore::open(dir.path()).unwrap();
        let file = BatchFile::parse(&text, "test").unwrap();
        let prepared =
            check_inline(file, "test").unwrap().prepare(Keys::Create(&dir.path().join("keys.json"))).unwrap();
        let mut tx = TransactionContext::new(ExecutionMode::Standard);
        tx.request_id = Some("the-batch".into());
        let content = prepared.content();
        let job = BatchJob::new(&prepared.keys, &prepared.ops, &prepared.ctx, &tx).with_programs(&content);
        let result = execute_batches(&mut store, &[job]).pop().unwrap().unwrap();
        assert!(result.metadata.committed);
        store.close().unwrap();
    }

    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let Some(causality_vm::service::proto::job_result::Kind::ExecuteBatch(result)) = job.result.and_then(|r| r.kind)
    else {
        panic!("a batch result")
    };
    assert!(result.result_json.contains("recovered_from_batch_record"), "{}", result.result_json);
    server.shutdown().await.unwrap();
    let store = RegisterStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.head(), 1, "committed once");
    assert_eq!(store.batch(1).unwrap().unwrap().request_id.as_deref(), Some("the-batch"));
}
