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
    server.shutdown().await.unwrap();
}
