//! TCP callers need a service token: missing, forged, expired and too
//! narrow tokens are refused, queue nothing, and are counted.

use causality_vm::capability::{CapabilityToken, Caveat, JobKind as TokenJob, RootKey};
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::service::proto::ListRequest;
use causality_vm::DomainId;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_on_tcp_and_not_needed_on_the_owner_only_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    // The socket is the owner's alone, and binding it left nothing beside it.
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let socket = std::fs::metadata(dir.path().join("cvm.sock")).unwrap();
    assert!(socket.file_type().is_socket());
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    let strays: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".s"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    let key = service_key(dir.path()).unwrap();
    let root = CapabilityToken::mint_random(&key, DomainId::new(SERVICE_DOMAIN));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    let refused = [
        (None, Code::Unauthenticated, "no token"),
        (
            Some(CapabilityToken::mint_random(&RootKey::generate(), DomainId::new(SERVICE_DOMAIN)).to_text()),
            Code::Unauthenticated,
            "not minted with this server's service key",
        ),
        (
            Some(CapabilityToken::mint_random(&key, DomainId::new("bank")).to_text()),
            Code::Unauthenticated,
            "not this service",
        ),
        (Some(root.attenuate(Caveat::ExpiresAt(now - 1)).unwrap().to_text()), Code::Unauthenticated, "expired"),
        (Some(format!("{}x", root.to_text())), Code::Unauthenticated, "malformed"),
        (
            Some(root.attenuate(Caveat::Jobs(vec![TokenJob::Msm])).unwrap().to_text()),
            Code::PermissionDenied,
            "does not allow hash jobs",
        ),
        // A caveat a server cannot honour is refused, not read wider than meant.
        (
            Some(root.attenuate(Caveat::Rights(vec![causality_vm::capability::Right::Read])).unwrap().to_text()),
            Code::PermissionDenied,
            "a `rights` caveat, which a service token cannot honour",
        ),
    ];
    for (i, (token, code, expected)) in refused.into_iter().enumerate() {
        let mut client = tcp_client(&server, token).await;
        let err = client.submit(&format!("t{i}"), hash_payload(&[b"x"]), 0, None).await.unwrap_err();
        assert_eq!(err.code(), code, "case {i}: {err:?}");
        assert!(err.message().contains(expected), "case {i}: {:?} lacks {expected:?}", err.message());
    }

    let narrow =
        root.attenuate(Caveat::Jobs(vec![TokenJob::Hash])).unwrap().attenuate(Caveat::ExpiresAt(now + 3600)).unwrap();
    let mut hasher = tcp_client(&server, Some(narrow.to_text())).await;
    let accepted = hasher.submit("ok", hash_payload(&[b"x"]), 0, None).await.unwrap();
    hasher.wait(accepted.job_id).await.unwrap();
    let merkle = hasher.submit("m", merkle_payload(&[[0; 32]]), 0, None).await.unwrap_err();
    assert_eq!(merkle.code(), Code::PermissionDenied);

    // The socket needs no token; it sees every job, and only the one accepted job exists.
    let mut owner = unix_client(&server).await;
    let jobs = owner.list(ListRequest::default()).await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.request_id.as_str()).collect::<Vec<_>>(), vec!["ok"]);
    // A token narrowed to MSM jobs cannot read a hash job.
    let msm_only = root.attenuate(Caveat::Jobs(vec![TokenJob::Msm])).unwrap();
    let err = tcp_client(&server, Some(msm_only.to_text())).await.get(accepted.job_id).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let metrics = server.core.metrics.render();
    for reason in ["missing", "forged", "expired", "malformed", "too_narrow", "unhonoured_caveat"] {
        assert!(metrics.contains(&format!("cvm_auth_rejections_total{{reason=\"{reason}\"}}")), "{reason}:\n{metrics}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_listener_without_auth_or_tls_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 0);
    opts.tcp = Some("0.0.0.0:0".parse().unwrap());
    let err = causality_vm::service::server::start(opts.clone()).await.err().expect("refused");
    assert!(err.to_string().contains("without TLS"), "{err}");
    opts.auth.no_auth = true;
    let err = causality_vm::service::server::start(opts).await.err().expect("refused");
    assert!(err.to_string().contains("without authentication"), "{err}");
    assert!(!dir.path().join("cvm.sock").exists(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_bind_batch_domains_and_the_calls_beside_jobs() {
    use causality_vm::capability::Caveat;
    use causality_vm::service::proto::{job_payload, ExecuteBatchJob, Group, JobPayload, ListRequest};
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let key = service_key(dir.path()).unwrap();
    let root = CapabilityToken::mint_random(&key, DomainId::new(SERVICE_DOMAIN));
    let batch = |domain: &str, token: &str| JobPayload {
        kind: Some(job_payload::Kind::ExecuteBatch(ExecuteBatchJob {
            batch_json: serde_json::json!({"domain": domain, "token": token, "ops": []}).to_string().into_bytes(),
            ..Default::default()
        })),
    };
    let other_domain = root.attenuate(Caveat::Domains(vec![DomainId::new("bank-a")])).unwrap();
    let mut client = tcp_client(&server, Some(other_domain.to_text())).await;
    let err = client.submit("b1", batch("bank-b", "mint"), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("bank-b"), "{}", err.message());
    // In its own domain, a token holder still may not have the server mint a root token.
    let err = client.submit("b2", batch("bank-a", "mint"), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("mint"), "{}", err.message());

    // The owner's batch job in bank-b: to a token limited to bank-a it is not
    // there (Get, Await, Cancel, List); one of bank-b sees it.
    let mut owner = unix_client(&server).await;
    let submitted = owner.submit("owner-b", batch("bank-b", "mint"), 0, None).await.unwrap();
    let id = submitted.job_id;
    for call in ["get", "await", "cancel"] {
        let err = match call {
            "get" => client.get(id).await.map(|_| ()),
            "await" => client.events(id).await.map(|_| ()),
            _ => client.cancel(id).await.map(|_| ()),
        }
        .unwrap_err();
        // As if there were no such job: trying ids must not list other tenants' domains.
        assert_eq!(err.code(), Code::NotFound, "{call}: {err:?}");
        assert!(!err.message().contains("bank-b"), "{call}: {}", err.message());
    }
    assert!(client.list(ListRequest::default()).await.unwrap().iter().all(|j| j.job_id != id), "not listed");
    let own_domain = root.attenuate(Caveat::Domains(vec![DomainId::new("bank-b")])).unwrap();
    let mut client = tcp_client(&server, Some(own_domain.to_text())).await;
    let job = client.get(id).await.unwrap();
    assert_eq!(job.domain, "bank-b");
    assert!(client.list(ListRequest::default()).await.unwrap().iter().any(|j| j.job_id == id), "listed");

    let hash_only = root.attenuate(Caveat::Jobs(vec![TokenJob::Hash])).unwrap();
    let mut client = tcp_client(&server, Some(hash_only.to_text())).await;
    let err = client.upload_bases(Group::G1, vec![vec![0; 32]]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let too_many = ListRequest { states: vec![1; 17], ..Default::default() };
    let err = client.list(too_many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    for (request, named) in [
        (ListRequest { kinds: vec![3, 42], ..Default::default() }, "kinds[1] = 42"),
        (ListRequest { states: vec![0], ..Default::default() }, "states[0] = 0"),
    ] {
        let err = client.list(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(named), "{}", err.message());
    }
    server.shutdown().await.unwrap();
}

/// `cvm token` keeps service tokens to the caveats a server honours, and
/// verifies them against the data dir's service key.
#[test]
fn service_tokens_take_only_the_caveats_a_server_honours() {
    let dir = tempfile::tempdir().unwrap();
    let cvm = |args: &[&str]| crate::cli::run(crate::cli::cvm(dir.path()).args(args));
    let (code, token, err) = cvm(&["token", "mint", "--service", "--jobs", "hash"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim();
    let (code, out, err) = cvm(&["token", "verify", token]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("valid"), "{out}");
    for flags in [&["--rights", "read"][..], &["--ops", "read"], &["--max-quantity", "5"]] {
        let (code, _, err) = cvm(&[&["token", "attenuate", token][..], flags].concat());
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(err.contains("narrowed by --jobs, --domains and --expires only"), "{err}");
        let (code, _, err) = cvm(&[&["token", "mint", "--service"][..], flags].concat());
        assert_eq!(code, 2, "{flags:?}: {err}");
    }
    let (code, _, err) = cvm(&["token", "keygen", "--domain", SERVICE_DOMAIN]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("service.key"), "{err}");
}
