//! TLS (rustls) on the TCP listener, and mutual TLS with --client-ca.

use causality_vm::capability::CapabilityToken;
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::service::client::{Client, ClientOptions, Endpoint};
use causality_vm::service::proto::JobState;
use causality_vm::service::server::start;
use causality_vm::DomainId;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use crate::support::*;

/// A CA, a server certificate for `localhost` and a client certificate, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, usage) in
        [("server", ExtendedKeyUsagePurpose::ServerAuth), ("client", ExtendedKeyUsagePurpose::ClientAuth)]
    {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls_guard_the_tcp_listener() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let mut opts = options(dir.path(), 1);
    opts.auth.tls_cert = Some(certs.path().join("server.pem"));
    opts.auth.tls_key = Some(certs.path().join("server.key"));
    opts.auth.client_ca = Some(certs.path().join("ca.pem"));
    let server = start(opts).await.unwrap();
    let port = server.tcp.unwrap().port();
    let token =
        CapabilityToken::mint_random(&service_key(dir.path()).unwrap(), DomainId::new(SERVICE_DOMAIN)).to_text();
    let https = Endpoint::Tcp { uri: format!("https://127.0.0.1:{port}"), tls: true };
    let trusted = ClientOptions {
        token: Some(token.clone()),
        tls_ca: Some(certs.path().join("ca.pem")),
        tls_domain: Some("localhost".into()),
        ..ClientOptions::default()
    };

    // With the CA, a client certificate and a token: served.
    let mut client = Client::connect(
        &https,
        &ClientOptions {
            tls_identity: Some((certs.path().join("client.pem"), certs.path().join("client.key"))),
            ..trusted.clone()
        },
    )
    .await
    .unwrap();
    let accepted = client.submit("over-tls", hash_payload(&[b"abc"]), 0, None).await.unwrap();
    assert_eq!(client.wait(accepted.job_id).await.unwrap().state(), JobState::Succeeded);

    // Without a client certificate, the handshake (or the first call) fails.
    let refused = match Client::connect(&https, &trusted).await {
        Err(_) => true,
        Ok(mut c) => c.status().await.is_err(),
    };
    assert!(refused, "mutual TLS let a client without a certificate in");
    // Plain HTTP/2 to a TLS listener gets nowhere.
    let plain = Endpoint::Tcp { uri: format!("http://127.0.0.1:{port}"), tls: false };
    let refused = match Client::connect(&plain, &ClientOptions { token: Some(token), ..Default::default() }).await {
        Err(_) => true,
        Ok(mut c) => c.status().await.is_err(),
    };
    assert!(refused, "a plaintext client was served");
    server.shutdown().await.unwrap();
}
