//! Every job kind the server runs, over the Unix socket and TCP, against
//! the same work done in-process; idempotent submits; cancel; list; status.

use ark_bn254::{Fr, G1Projective, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_serialize::CanonicalSerialize;
use causality_vm::capability::CapabilityToken;
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::service::client::Client;
use causality_vm::service::proto::{
    job_payload, job_result, msm_job, Group, JobKind, JobPayload, JobState, ListRequest, MerkleRootResult, MsmJob,
    PointList,
};
use causality_vm::{DomainId, HashPool};
use tonic::Code;

use crate::msm_support::random_inputs;
use crate::support::*;

fn compressed(p: &impl CanonicalSerialize) -> Vec<u8> {
    let mut out = Vec::new();
    p.serialize_compressed(&mut out).unwrap();
    out
}

fn scalar_bytes(s: &Fr) -> Vec<u8> {
    compressed(s)
}

async fn run(client: &mut Client, request_id: &str, payload: JobPayload) -> job_result::Kind {
    let accepted = client.submit(request_id, payload, 0, None).await.expect("submit");
    let job = client.wait(accepted.job_id).await.expect("wait");
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let result = job.result.expect("a result");
    assert!(!result.backends.is_empty(), "the result says which backend ran");
    result.kind.expect("a result kind")
}

fn root_token(dir: &std::path::Path) -> String {
    let key = service_key(dir).unwrap();
    CapabilityToken::mint_random(&key, DomainId::new(SERVICE_DOMAIN)).to_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_and_merkle_jobs_equal_the_library_over_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 2).await;
    let unix = unix_client(&server).await;
    let tcp = tcp_client(&server, Some(root_token(dir.path()))).await;
    let key = [7u8; 32];
    let long = vec![0xabu8; 5000];
    for (name, mut client) in [("unix", unix), ("tcp", tcp)] {
        let mut job = hash_payload(&[b"", b"abc", &long]);
        if let Some(job_payload::Kind::Hash(h)) = &mut job.kind {
            h.messages.push(keyed_message(key, b"keyed"));
            h.messages.push(derive_message("cvm test context", b"material"));
        }
        let job_result::Kind::Hash(result) = run(&mut client, &format!("hash-{name}"), job).await else { panic!() };
        let expected: Vec<Vec<u8>> = vec![
            blake3::hash(b"").as_bytes().to_vec(),
            blake3::hash(b"abc").as_bytes().to_vec(),
            blake3::hash(&long).as_bytes().to_vec(),
            blake3::keyed_hash(&key, b"keyed").as_bytes().to_vec(),
            blake3::derive_key("cvm test context", b"material").to_vec(),
        ];
        assert_eq!(result.digests, expected, "{name}");

        for n in [0usize, 1, 2, 3, 1000] {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
            let job_result::Kind::MerkleRoot(root) =
                run(&mut client, &format!("merkle-{name}-{n}"), merkle_payload(&leaves)).await
            else {
                panic!()
            };
            assert_eq!(root.root, HashPool::new().merkle_root(&leaves).unwrap().to_vec(), "{name}: {n} leaves");
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_submits_and_returns_the_ended_job_in_one_call_and_packed_hash_jobs_equal_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 2).await;
    let unix = unix_client(&server).await;
    let tcp = tcp_client(&server, Some(root_token(dir.path()))).await;
    // 3,000 messages of 100 bytes: past the pool's eager threshold, so the
    // packed path hashes them in place.
    let packed: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected: Vec<u8> = packed.chunks(100).flat_map(|m| *blake3::hash(m).as_bytes()).collect();
    for (name, mut client) in [("unix", unix), ("tcp", tcp)] {
        let job = client.run(&format!("packed-{name}"), packed_payload(packed.clone(), 100), 0, None).await.unwrap();
        assert_eq!(job.state(), JobState::Succeeded, "{name}: {job:?}");
        let Some(job_result::Kind::Hash(result)) = job.result.clone().and_then(|r| r.kind) else { panic!("{job:?}") };
        assert!(result.digests.is_empty(), "packed jobs answer packed");
        assert_eq!(result.packed_digests, expected, "{name}");

        // Run again: the same job, already ended, with the same result.
        let again = client.run(&format!("packed-{name}"), packed_payload(packed.clone(), 100), 0, None).await.unwrap();
        assert_eq!((again.job_id, again.result.clone()), (job.job_id, job.result.clone()), "{name}");
        let other = client.run(&format!("packed-{name}"), hash_payload(&[b"x"]), 0, None).await.unwrap_err();
        assert_eq!(other.code(), Code::AlreadyExists, "{name}: {other:?}");

        // Messages one by one, and an empty packed job.
        let one = client.run(&format!("one-{name}"), hash_payload(&[b"abc"]), 0, None).await.unwrap();
        let Some(job_result::Kind::Hash(r)) = one.result.and_then(|r| r.kind) else { panic!() };
        assert_eq!(r.digests, vec![blake3::hash(b"abc").as_bytes().to_vec()]);
        let empty = client.run(&format!("empty-{name}"), packed_payload(Vec::new(), 64), 0, None).await.unwrap();
        let Some(job_result::Kind::Hash(r)) = empty.result.and_then(|r| r.kind) else { panic!() };
        assert!(r.packed_digests.is_empty() && r.digests.is_empty());
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_by_a_stop_names_the_job_it_leaves_queued() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let run = tokio::spawn(async move { client.run("kept", hash_payload(&[b"kept"]), 0, None).await });
    // Wait until the job is recorded, then stop the server under the call.
    let mut lister = unix_client(&server).await;
    while lister.list(ListRequest::default()).await.unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.shutdown().await.unwrap();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("job 1 is kept"), "{}", err.message());

    // After a restart it runs, and a Run with the same request id returns it.
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let job = client.run("kept", hash_payload(&[b"kept"]), 0, None).await.unwrap();
    assert_eq!((job.job_id, job.state()), (1, JobState::Succeeded));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msm_jobs_equal_arkworks_inline_and_with_resident_bases() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let (g1, s1) = random_inputs::<ark_bn254::g1::Config>(11, 37);
    let (g2, s2) = random_inputs::<ark_bn254::g2::Config>(12, 9);
    let g1_expected = compressed(&G1Projective::msm(&g1, &s1).unwrap().into_affine());
    let g2_expected = compressed(&G2Projective::msm(&g2, &s2).unwrap().into_affine());
    let g1_points: Vec<Vec<u8>> = g1.iter().map(compressed).collect();
    let g2_points: Vec<Vec<u8>> = g2.iter().map(compressed).collect();
    let job = |group: Group, bases: msm_job::Bases, scalars: &[Fr]| JobPayload {
        kind: Some(job_payload::Kind::Msm(MsmJob {
            group: group as i32,
            bases: Some(bases),
            scalars: scalars.iter().map(scalar_bytes).collect(),
        })),
    };
    let inline = |points: &Vec<Vec<u8>>| msm_job::Bases::InlineBases(PointList { points: points.clone() });
    let job_result::Kind::Msm(r) = run(&mut client, "g1", job(Group::G1, inline(&g1_points), &s1)).await else {
        panic!()
    };
    assert_eq!(r.point, g1_expected);
    let job_result::Kind::Msm(r) = run(&mut client, "g2", job(Group::G2, inline(&g2_points), &s2)).await else {
        panic!()
    };
    assert_eq!(r.point, g2_expected);

    let set1 = client.upload_bases(Group::G1, g1_points.clone()).await.unwrap();
    assert_eq!(set1.count, 37);
    let again = client.upload_bases(Group::G1, g1_points.clone()).await.unwrap();
    assert_eq!(again.base_set_id, set1.base_set_id, "a base set is named by its content");
    let set2 = client.upload_bases(Group::G2, g2_points).await.unwrap();
    let named = |id: &str| msm_job::Bases::BaseSetId(id.to_string());
    let job_result::Kind::Msm(r) = run(&mut client, "g1-set", job(Group::G1, named(&set1.base_set_id), &s1)).await
    else {
        panic!()
    };
    assert_eq!(r.point, g1_expected);
    let job_result::Kind::Msm(r) = run(&mut client, "g2-set", job(Group::G2, named(&set2.base_set_id), &s2)).await
    else {
        panic!()
    };
    assert_eq!(r.point, g2_expected);
    // A resident set is checked at submit, as inline bases are: its group and its count.
    let err = client.submit("g1-on-g2", job(Group::G1, named(&set2.base_set_id), &s1), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("in the other group"), "{}", err.message());
    let err = client.submit("short", job(Group::G1, named(&set1.base_set_id), &s1[1..]), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("36 scalars for a base set of 37"), "{}", err.message());
    server.shutdown().await.unwrap();

    // Base sets outlive the server: a job naming one runs after a restart.
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    // Not resident yet, and still checked at submit (from its file).
    let err = client.submit("short-again", job(Group::G1, named(&set1.base_set_id), &s1[2..]), 0, None).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("35 scalars for a base set of 37"), "{}", err.message());
    let job_result::Kind::Msm(r) =
        run(&mut client, "g1-set-again", job(Group::G1, named(&set1.base_set_id), &s1)).await
    else {
        panic!()
    };
    assert_eq!(r.point, g1_expected);

    // A removed set is gone from memory and disk: jobs naming it are refused.
    assert!(client.remove_bases(&set1.base_set_id).await.unwrap());
    assert!(!client.remove_bases(&set1.base_set_id).await.unwrap(), "already gone");
    let err = client.submit("g1-removed", job(Group::G1, named(&set1.base_set_id), &s1), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("is not on this server (never uploaded, or removed)"), "{}", err.message());
    // A retry of a job accepted while the set was there is still answered with that job.
    let again = client.submit("g1-set-again", job(Group::G1, named(&set1.base_set_id), &s1), 0, None).await.unwrap();
    assert!(again.existing, "{again:?}");
    let kept = client.wait(again.job_id).await.unwrap();
    assert_eq!(kept.state(), JobState::Succeeded, "{kept:?}");
    let err = client.remove_bases("bases:nonsense").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    server.shutdown().await.unwrap();
    assert!(!dir.path().join("bases").join(format!("{}.bases", &set1.base_set_id["bases:".len()..])).exists());

    // A job accepted while its set was here, whose set is removed before it
    // runs, fails FAILED_PRECONDITION: uploading the set again mends it.
    let server = crate::support::server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let set = client.upload_bases(Group::G1, g1_points.clone()).await.unwrap();
    let queued = client.submit("g1-queued", job(Group::G1, named(&set.base_set_id), &s1), 0, None).await.unwrap();
    assert!(client.remove_bases(&set.base_set_id).await.unwrap());
    server.shutdown().await.unwrap();
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let failed = client.wait(queued.job_id).await.unwrap();
    assert_eq!(failed.state(), JobState::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(error.code, "FAILED_PRECONDITION", "{error:?}");
    assert!(error.message.contains("upload it again"), "{error:?}");
    server.shutdown().await.unwrap();
}

/// A small hash or Merkle job submitted while a runner is free runs as it
/// is accepted: its Submit returns with it ended (its accept and its end
/// one durable write), and it is kept like any job across a restart. A
/// larger one, or one with no runner free, is queued as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_hash_jobs_run_as_they_are_accepted_when_a_runner_is_free() {
    use causality_vm::service::core::RUN_AT_ONCE_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let leaves = [[1u8; 32], [2; 32], [3; 32]];
    let root = HashPool::new().merkle_root(&leaves).unwrap().to_vec();
    let digest = |data: &[u8]| vec![blake3::hash(data).as_bytes().to_vec()];
    let digests = |job: &causality_vm::service::proto::Job| match job.result.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(job_result::Kind::Hash(h)) => h.digests.clone(),
        other => panic!("{other:?}"),
    };
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let small = client.submit("small", hash_payload(&[b"abc"]), 0, None).await.unwrap();
    let tree = client.submit("tree", merkle_payload(&leaves), 0, None).await.unwrap();
    let job = client.get(small.job_id).await.unwrap();
    assert_eq!((job.state(), job.attempts), (JobState::Succeeded, 1), "ended as Submit returned: {job:?}");
    assert_eq!(job.result.as_ref().unwrap().backends[0].backend, "cpu");
    assert_eq!(digests(&job), digest(b"abc"));
    let job = client.get(tree.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(job.result.and_then(|r| r.kind), Some(job_result::Kind::MerkleRoot(MerkleRootResult { root })));

    let big = vec![7u8; RUN_AT_ONCE_BYTES];
    let queued = client.submit("big", hash_payload(&[&big]), 0, None).await.unwrap();
    let job = client.wait(queued.job_id).await.unwrap();
    assert_eq!(digests(&job), digest(&big), "queued and run by the runner: {job:?}");

    let again = client.submit("small", hash_payload(&[b"abc"]), 0, None).await.unwrap();
    assert!(again.existing && again.job_id == small.job_id, "{again:?}");
    let other = client.submit("small", hash_payload(&[b"abd"]), 0, None).await.unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    server.shutdown().await.unwrap();

    // No runner: the small job waits in the queue; the one that ran kept its result.
    let server = crate::support::server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    assert_eq!(digests(&client.get(small.job_id).await.unwrap()), digest(b"abc"));
    let waiting = client.submit("waiting", hash_payload(&[b"x"]), 0, None).await.unwrap();
    assert_eq!(client.get(waiting.job_id).await.unwrap().state(), JobState::Queued);
    let listed = client.list(ListRequest::default()).await.unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_are_idempotent_on_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let first = client.submit("same", hash_payload(&[b"a"]), 0, None).await.unwrap();
    assert!(!first.existing);
    let again = client.submit("same", hash_payload(&[b"a"]), 0, None).await.unwrap();
    assert!(again.existing);
    assert_eq!(again.job_id, first.job_id);
    let other = client.submit("same", hash_payload(&[b"b"]), 0, None).await.unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    assert!(other.message().contains(&format!("job {}", first.job_id)), "{}", other.message());
    let listed = client.list(ListRequest::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "nothing recorded for the refused submit");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_cancel_at_once_and_priorities_order_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let low = client.submit("low", hash_payload(&[b"1"]), 0, None).await.unwrap();
    let high = client.submit("high", hash_payload(&[b"2"]), 5, None).await.unwrap();
    assert_eq!(high.queue_position, 0, "a higher priority goes first");
    let last = client.submit("last", hash_payload(&[b"3"]), 0, None).await.unwrap();
    assert_eq!(last.queue_position, 2);
    let cancelled = client.cancel(low.job_id).await.unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    assert_eq!(cancelled.error.as_ref().unwrap().code, "CANCELLED");
    let status = client.status().await.unwrap();
    let hash = status.kinds.iter().find(|k| k.kind() == JobKind::Hash).unwrap();
    assert_eq!((hash.queued, hash.running), (2, 0));
    let queued =
        client.list(ListRequest { states: vec![JobState::Queued as i32], ..Default::default() }).await.unwrap();
    assert_eq!(queued.iter().map(|j| j.job_id).collect::<Vec<_>>(), vec![last.job_id, high.job_id]);
    server.shutdown().await.unwrap();

    // Restarted with runners, the queued jobs run; the cancelled one stays cancelled.
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    for id in [high.job_id, last.job_id] {
        assert_eq!(client.wait(id).await.unwrap().state(), JobState::Succeeded);
    }
    assert_eq!(client.get(low.job_id).await.unwrap().state(), JobState::Cancelled);
    let job = client.get(high.job_id).await.unwrap();
    let Some(job_result::Kind::Hash(h)) = job.result.and_then(|r| r.kind) else { panic!("the result is kept") };
    assert_eq!(h.digests, vec![blake3::hash(b"2").as_bytes().to_vec()]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_health_and_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("unix:{}", server.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let service = "causality.accelerator.v1.Accelerator".to_string();
    let answer = health.check(tonic_health::pb::HealthCheckRequest { service }).await.unwrap().into_inner();
    assert_eq!(answer.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else { panic!("{answer:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"causality.accelerator.v1.Accelerator".to_string()), "{names:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_and_volumes_on_the_metrics_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 1);
    opts.metrics = Some("127.0.0.1:0".parse().unwrap());
    let server = causality_vm::service::server::start(opts).await.unwrap();
    let mut client = unix_client(&server).await;
    let accepted = client.submit("m1", hash_payload(&[b"abc", b"de"]), 0, None).await.unwrap();
    client.wait(accepted.job_id).await.unwrap();
    let _ = client.submit("m1", hash_payload(&[b"other"]), 0, None).await.unwrap_err();
    let bad = JobPayload {
        kind: Some(job_payload::Kind::MerkleRoot(causality_vm::service::proto::MerkleRootJob {
            leaves: vec![vec![1]],
        })),
    };
    let _ = client.submit("bad", bad, 0, None).await.unwrap_err();
    // A batch job: its execute, hash and commit stages from the batch's own timings, once each.
    let files = tempfile::tempdir().unwrap();
    let batch = crate::batches::create_batches(files.path(), 1).pop().unwrap();
    let job = causality_vm::service::proto::ExecuteBatchJob {
        batch_json: crate::batches::inline_batch(&batch),
        no_prove: true,
        ..Default::default()
    };
    let payload = JobPayload { kind: Some(job_payload::Kind::ExecuteBatch(job)) };
    let accepted = client.submit("b1", payload, 0, None).await.unwrap();
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let address = server.metrics.unwrap();
    let page = |path: &'static str| {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        })
    };
    let text = page("/metrics").await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for line in [
        "cvm_jobs_accepted_total{kind=\"hash\"} 1",
        "cvm_jobs_finished_total{kind=\"hash\",outcome=\"succeeded\"} 1",
        "cvm_hashed_bytes_total 5",
        "cvm_queue_depth{kind=\"hash\"} 0",
        "cvm_stage_seconds_count{stage=\"hash\"} 2",
        "cvm_stage_seconds_count{stage=\"queue_wait\"} 2",
        "cvm_stage_seconds_count{stage=\"execute\"} 1",
        "cvm_stage_seconds_count{stage=\"commit\"} 1",
        "cvm_jobs_run_at_once_total 1",
        "cvm_jobs_rejected_total{kind=\"hash\",reason=\"conflict\"} 1",
        "cvm_jobs_rejected_total{kind=\"merkle-root\",reason=\"invalid\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(page("/other").await.unwrap().starts_with("HTTP/1.1 404"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msm_jobs_leave_placement_to_the_engine_and_never_wait_on_the_servers_device_hold() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), 1);
    options.backend = causality_vm::Backend::Gpu;
    options.tcp = None;
    let server = causality_vm::service::server::start(options).await.expect("a GPU server");
    let mut client = unix_client(&server).await;
    let (g1, s1) = random_inputs::<ark_bn254::g1::Config>(31, 8);
    let expected = compressed(&G1Projective::msm(&g1, &s1).unwrap().into_affine());
    let payload = JobPayload {
        kind: Some(job_payload::Kind::Msm(MsmJob {
            group: Group::G1 as i32,
            bases: Some(msm_job::Bases::InlineBases(PointList { points: g1.iter().map(compressed).collect() })),
            scalars: s1.iter().map(scalar_bytes).collect(),
        })),
    };
    // The first compiles the device's pipelines (seconds on lavapipe).
    let job_result::Kind::Msm(result) = run(&mut client, "msm-gpu-1", payload.clone()).await else {
        panic!("an MSM result")
    };
    assert_eq!(result.point, expected);
    // A hash stage holds the server's device: the MSM job does not wait for it
    // (the MSM engine places its MSMs and serializes its own device work).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let core = server.core.clone();
    let holder = std::thread::spawn(move || {
        let _hold = core.engines.device.lock().unwrap();
        holding.send(()).unwrap();
        let _ = released.recv();
    });
    held.recv().unwrap();
    let job = tokio::time::timeout(std::time::Duration::from_secs(60), run(&mut client, "msm-gpu-2", payload))
        .await
        .expect("the MSM job waited for the server's device hold");
    release.send(()).unwrap();
    holder.join().unwrap();
    let job_result::Kind::Msm(result) = job else { panic!("an MSM result") };
    assert_eq!(result.point, expected);
    server.shutdown().await.unwrap();
}
