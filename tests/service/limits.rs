//! Bad input: every refusal is precise, immediate, and records nothing.

use causality_vm::service::proto::{
    job_payload, msm_job, Group, JobPayload, ListRequest, MerkleRootJob, MsmJob, PointList,
};
use causality_vm::service::server::start;
use tonic::Code;

use crate::support::*;

fn msm(group: Group, points: Vec<Vec<u8>>, scalars: Vec<Vec<u8>>) -> JobPayload {
    JobPayload {
        kind: Some(job_payload::Kind::Msm(MsmJob {
            group: group as i32,
            bases: Some(msm_job::Bases::InlineBases(PointList { points })),
            scalars,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_invalid_arguments_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let mut bad_key = hash_payload(&[b"x"]);
    if let Some(job_payload::Kind::Hash(h)) = &mut bad_key.kind {
        h.messages.push(keyed_message([0; 32], b"y"));
        if let Some(causality_vm::service::proto::hash_message::Mode::Key(k)) = &mut h.messages[1].mode {
            k.pop();
        }
    }
    // r itself: one past the largest scalar.
    let group_order_bytes = {
        use ark_ff::{BigInteger, PrimeField};
        ark_bn254::Fr::MODULUS.to_bytes_le()
    };
    let cases: Vec<(&str, JobPayload, &str)> = vec![
        ("no job", JobPayload { kind: None }, "payload: no job"),
        ("short key", bad_key, "hash.messages[1].key: 31 bytes"),
        ("ragged packed", packed_payload(vec![0; 130], 64), "hash.packed: 130 bytes, not a whole number of 64-byte"),
        ("packed without length", packed_payload(vec![0; 64], 0), "hash.message_len: 0"),
        (
            "both forms",
            {
                let mut both = packed_payload(vec![0; 64], 64);
                if let Some(job_payload::Kind::Hash(h)) = &mut both.kind {
                    h.messages.push(keyed_message([0; 32], b"y"));
                }
                both
            },
            "hash: both messages and packed",
        ),
        (
            "short leaf",
            JobPayload {
                kind: Some(job_payload::Kind::MerkleRoot(MerkleRootJob { leaves: vec![vec![0; 32], vec![0; 3]] })),
            },
            "merkle_root.leaves[1]: 3 bytes",
        ),
        ("no group", msm(Group::Unspecified, vec![vec![0; 32]], vec![vec![0; 32]]), "msm.group"),
        (
            "unknown group",
            {
                let mut odd = msm(Group::G1, vec![vec![0; 32]], vec![vec![0; 32]]);
                if let Some(job_payload::Kind::Msm(m)) = &mut odd.kind {
                    m.group = 7;
                }
                odd
            },
            "msm.group: 7 is no group",
        ),
        ("short point", msm(Group::G1, vec![vec![0; 31]], vec![vec![0; 32]]), "msm.inline_bases.points[0]: 31 bytes"),
        ("g2 point size", msm(Group::G2, vec![vec![0; 32]], vec![vec![0; 32]]), "msm.inline_bases.points[0]: 32 bytes"),
        ("count", msm(Group::G1, vec![vec![0; 32]; 2], vec![vec![0; 32]]), "1 scalars for 2 bases"),
        (
            "scalar = r",
            msm(Group::G1, vec![vec![0; 32]], vec![group_order_bytes]),
            "msm.scalars[0]: not below the BN254 group order",
        ),
        ("short scalar", msm(Group::G1, vec![vec![0; 32]], vec![vec![1; 33]]), "msm.scalars[0]: 33 bytes"),
        (
            "unknown set",
            JobPayload {
                kind: Some(job_payload::Kind::Msm(MsmJob {
                    group: Group::G1 as i32,
                    bases: Some(msm_job::Bases::BaseSetId(format!("bases:{}", "00".repeat(32)))),
                    scalars: vec![],
                })),
            },
            "is not on this server (never uploaded, or removed)",
        ),
    ];
    for (name, payload, expected) in cases {
        let err = client.submit(&name.replace(' ', "-"), payload.clone(), 0, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(err.message().contains(expected), "{name}: {:?} lacks {expected:?}", err.message());
        // Run refuses just as Submit does.
        let err = client.run(&name.replace(' ', "-"), payload, 0, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "run {name}: {err:?}");
    }
    for (id, expected) in [("", "1 to 128"), ("has space", "' ' at byte 3"), (&"x".repeat(129)[..], "129 bytes")] {
        let err = client.submit(id, hash_payload(&[b"x"]), 0, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(expected), "{:?}", err.message());
    }
    assert!(client.list(ListRequest::default()).await.unwrap().is_empty(), "nothing was recorded");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_an_old_deadline_and_an_oversized_request_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 0);
    opts.queue_depth = 2;
    opts.max_message_bytes = 64 * 1024;
    let server = start(opts).await.unwrap();
    let mut client = unix_client(&server).await;
    client.submit("a", hash_payload(&[b"a"]), 0, None).await.unwrap();
    client.submit("b", hash_payload(&[b"b"]), 0, None).await.unwrap();
    let full = client.submit("c", hash_payload(&[b"c"]), 0, None).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("hash queue is full (2 jobs)"), "{}", full.message());
    // A retry of an accepted job is still answered when the queue is full.
    assert!(client.submit("a", hash_payload(&[b"a"]), 0, None).await.unwrap().existing);
    // Another kind has its own queue.
    client.submit("m", merkle_payload(&[[0; 32]]), 0, None).await.unwrap();

    let past = causality_vm::service::core::now_ms() - 1;
    let late = client.submit("late", merkle_payload(&[[1; 32]]), 0, Some(past)).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");

    let big = vec![0u8; 100 * 1024];
    let err = client.submit("big", hash_payload(&[&big]), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("limit of 65536 bytes"), "{}", err.message());
    let recorded: Vec<String> =
        client.list(ListRequest::default()).await.unwrap().into_iter().map(|j| j.request_id).collect();
    assert_eq!(recorded, vec!["m", "b", "a"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_in_the_queue_fails_the_job_unrun() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let soon = causality_vm::service::core::now_ms() + 300;
    let accepted = client.submit("soon", hash_payload(&[b"x"]), 0, Some(soon)).await.unwrap();
    server.shutdown().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.error.as_ref().map(|e| e.code.as_str()), Some("DEADLINE_EXCEEDED"), "{job:?}");
    assert_eq!(job.attempts, 0, "it never started");
    server.shutdown().await.unwrap();
}

/// Queued jobs whose deadline passes end then, while no runner is free:
/// their watchers hear it, and their places in a full queue are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_past_their_deadline_leave_the_queue_when_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 0);
    opts.queue_depth = 2;
    let server = start(opts).await.unwrap();
    let mut client = unix_client(&server).await;
    let soon = causality_vm::service::core::now_ms() + 300;
    let first = client.submit("soon-1", hash_payload(&[b"1"]), 0, Some(soon)).await.unwrap();
    client.submit("soon-2", hash_payload(&[b"2"]), 0, Some(soon)).await.unwrap();
    let full = client.submit("waits", hash_payload(&[b"3"]), 0, None).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    let job = tokio::time::timeout(std::time::Duration::from_secs(10), client.wait(first.job_id)).await;
    let job = job.expect("ended when its deadline passed, no runner needed").unwrap();
    assert_eq!(job.error.as_ref().map(|e| e.code.as_str()), Some("DEADLINE_EXCEEDED"), "{job:?}");
    assert_eq!(job.attempts, 0);
    client.submit("fits", hash_payload(&[b"3"]), 0, None).await.expect("the places are free");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_deadline_names_the_accepted_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let soon = causality_vm::service::core::now_ms() + 200;
    let first = client.submit("late-retry", hash_payload(&[b"x"]), 0, Some(soon)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The caller lost the answer and retries: the job it already has, not DEADLINE_EXCEEDED.
    let again = client.submit("late-retry", hash_payload(&[b"x"]), 0, Some(soon)).await.unwrap();
    assert!(again.existing && again.job_id == first.job_id);
    server.shutdown().await.unwrap();
}

/// A request's elements are counted before it is decoded: one of 2-byte
/// elements would otherwise take about 25 times its size in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_too_many_elements_is_refused_before_it_is_decoded() {
    use causality_vm::service::codec::MAX_ELEMENTS;
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let leaves = vec![Vec::new(); MAX_ELEMENTS as usize + 1];
    let payload = JobPayload { kind: Some(job_payload::Kind::MerkleRoot(MerkleRootJob { leaves })) };
    let err = client.submit("many", payload, 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains(&format!("at most {MAX_ELEMENTS}")), "{}", err.message());
    let points = vec![Vec::new(); MAX_ELEMENTS as usize + 1];
    let err = client.upload_bases(Group::G1, points).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // At the bound, the request is decoded and checked as usual.
    let leaves = vec![Vec::new(); 3];
    let payload = JobPayload { kind: Some(job_payload::Kind::MerkleRoot(MerkleRootJob { leaves })) };
    let err = client.submit("few", payload, 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(client.list(ListRequest::default()).await.unwrap().is_empty(), "nothing was recorded");
    server.shutdown().await.unwrap();
}

/// Bytes sent as they are, to call the API with what no client library
/// would encode.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = prost::bytes::Buf::chunk(src).to_vec();
        prost::bytes::Buf::advance(src, bytes.len());
        Ok(Some(bytes))
    }
}

/// Bytes that are no protobuf message of the API (garbage, a truncated
/// request, a request id that is not UTF-8) are the caller's fault:
/// `INVALID_ARGUMENT`, not `INTERNAL` (which reads as the server's and
/// invites retries), and nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_arguments() {
    use causality_vm::capability::CapabilityToken;
    use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
    use causality_vm::DomainId;
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let token = CapabilityToken::mint_random(&service_key(dir.path()).unwrap(), DomainId::new(SERVICE_DOMAIN));
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.tcp.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    // A SubmitRequest whose request_id (field 1, length-delimited) is not UTF-8.
    let not_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    // One whose request_id claims 100 bytes and has 3.
    let truncated = vec![0x0a, 100, b'a', b'b', b'c'];
    for (what, bytes) in [("garbage", vec![0xff, 0xff, 0xff]), ("not UTF-8", not_utf8), ("truncated", truncated)] {
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(bytes);
        request.metadata_mut().insert("authorization", format!("Bearer {}", token.to_text()).parse().unwrap());
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/causality.accelerator.v1.Accelerator/Submit");
        let err = grpc.unary(request, path, RawCodec).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains("not a valid protobuf message"), "{what}: {}", err.message());
    }
    let mut client = unix_client(&server).await;
    assert!(client.list(ListRequest::default()).await.unwrap().is_empty(), "nothing queued");
    server.shutdown().await.unwrap();
}
