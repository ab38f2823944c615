//! Connections to the cluster's database, over TLS when the URL asks
//! for it (docs/SCALE_OUT.md, "TLS to the database").
//!
//! The URL takes libpq's `sslmode` and `sslrootcert` parameters. With
//! TLS, cvm always checks the server's certificate, the way libpq's
//! `verify-full` does: signed by a trusted CA, and issued to the host in
//! the URL. `sslrootcert=FILE` names the CA certificates (PEM);
//! `sslrootcert=system`, or `sslmode=require` and no file, trusts the
//! system's bundle. A database reached over a network it does not own
//! should need TLS; a client that skips the check would trust whoever
//! answers for the host.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::ClusterError;

/// Where Debian (and most Linux systems) keep the trusted CAs in one file.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Connect to `url`: the client, and the connection to drive.
pub(super) async fn connect(
    url: &str,
    doing: &str,
) -> Result<(Client, Connection<Socket, RustlsStream>), ClusterError> {
    let (config, tls) = parse(url)?;
    config.connect(tls).await.map_err(|e| ClusterError::db(doing, e))
}

/// The URL's connection settings, and its TLS (none when it asks for none).
fn parse(url: &str) -> Result<(Config, Tls), ClusterError> {
    let bad = |reason: String| ClusterError::Config(format!("the queue URL: {reason}"));
    // Only URLs: a libpq key-value string's own sslmode would be read past here.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad("it must be a postgres:// or postgresql:// URL".into()));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root) = (None, None);
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.to_string()),
            Some(("sslrootcert", value)) => root = Some(percent_decoded(value).map_err(bad)?),
            Some(("sslcert" | "sslkey", _)) => {
                return Err(bad("client certificates (sslcert, sslkey) are not supported; \
                                authenticate with a password in the URL"
                    .into()))
            }
            _ => rest.push(pair),
        }
    }
    let wants_tls = match (mode.as_deref(), &root) {
        (Some("disable"), _) => false,
        (Some("require" | "verify-ca" | "verify-full"), _) => true,
        // A CA named is a request for TLS.
        (None | Some("allow" | "prefer"), Some(_)) => true,
        (None | Some("allow" | "prefer"), None) => false,
        (Some(other), _) => {
            return Err(bad(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    let plain = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
    let mut config: Config = plain.parse().map_err(|e| bad(crate::service::error::with_causes(&e)))?;
    bound_waits(&mut config);
    if !wants_tls {
        config.ssl_mode(SslMode::Disable);
        return Ok((config, Tls(None)));
    }
    config.ssl_mode(SslMode::Require);
    let roots = match root.as_deref() {
        None | Some("system") => {
            let bundle = std::env::var_os("SSL_CERT_FILE").map_or_else(|| PathBuf::from(SYSTEM_BUNDLE), PathBuf::from);
            trusted(&bundle, "the system's CA bundle")?
        }
        Some(path) => trusted(Path::new(path), "sslrootcert")?,
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Config(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((config, Tls(Some(Arc::new(tls)))))
}

/// A database host that goes silent (no reset: a cable pulled, a machine
/// gone) must fail calls within seconds, not hang them for the kernel's
/// minutes of retries: a connect gives up after 10 s, data unacknowledged
/// for 30 s ends the connection, and an idle one is probed after 30 s.
/// What the URL sets itself (`connect_timeout`, `keepalives_idle`, ...) stays.
fn bound_waits(config: &mut Config) {
    use std::time::Duration;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    // tokio-postgres' default: two hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
    }
}

/// The CA certificates in a PEM file.
fn trusted(path: &Path, what: &str) -> Result<RootCertStore, ClusterError> {
    let bad = |reason: String| ClusterError::Config(format!("{what} {}: {reason}", path.display()));
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(bad("holds no CA certificate".into()));
    }
    Ok(roots)
}

/// `%XX` escapes decoded (a path in a URL's query).
fn percent_decoded(value: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
            let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let decoded = decoded.ok_or_else(|| format!("a bad %-escape in {value:?}"))?;
            bytes.push(decoded);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

/// rustls for tokio-postgres; `None` where the URL asks for no TLS (its
/// mode is then `disable`, so it is never asked to connect).
#[derive(Clone)]
struct Tls(Option<Arc<ClientConfig>>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Tls {
    type Stream = RustlsStream;
    type TlsConnect = Handshake;
    type Error = io::Error;

    // Called for every host, TLS or not (the mode decides whether the
    // handshake runs).
    fn make_tls_connect(&mut self, host: &str) -> io::Result<Handshake> {
        let Some(config) = self.0.clone() else { return Ok(Handshake(None)) };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host {host:?}: {e}")))?;
        Ok(Handshake(Some((config, name))))
    }
}

/// A TLS handshake with a host under its name; none without TLS.
struct Handshake(Option<(Arc<ClientConfig>, ServerName<'static>)>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Handshake {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let (config, name) = self.0.ok_or_else(|| io::Error::other("TLS was not asked for"))?;
            let stream = tokio_rustls::TlsConnector::from(config).connect(name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// The TLS stream of a connection (boxed: its socket's type is
/// tokio-postgres's business).
pub(super) struct RustlsStream(Box<dyn Duplex>);

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

impl AsyncRead for RustlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    // SCRAM without channel binding: the certificate check above is what
    // keeps a man in the middle out.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_asked_for_by_a_mode_or_a_ca_and_the_ca_is_read() {
        let (config, tls) = parse("postgres://u@127.0.0.1:5432/db").unwrap();
        assert!(tls.0.is_none() && config.get_ssl_mode() == SslMode::Disable);
        // A key-value string's sslmode would be overridden: only URLs.
        let Err(e) = parse("host=db.internal user=cvm sslmode=require") else { panic!("key-value") };
        assert!(e.to_string().contains("postgres:// or postgresql:// URL"), "{e}");
        let (_, tls) = parse("postgres://u@h/db?sslmode=disable&sslrootcert=/nonexistent").unwrap();
        assert!(tls.0.is_none(), "disable wins");
        let Err(e) = parse("postgres://u@h/db?sslrootcert=/nonexistent/ca%20file.pem") else { panic!("no file") };
        assert!(e.to_string().contains("sslrootcert /nonexistent/ca file.pem"), "{e}");
        let Err(e) = parse("postgres://u@h/db?sslmode=sometimes") else { panic!("a bad mode") };
        assert!(e.to_string().contains("sslmode=sometimes is not one of"), "{e}");
        // A parameter the client does not know, or a bad value, is named.
        let Err(e) = parse("postgres://u@h/db?bogus=1") else { panic!("an unknown parameter") };
        assert!(e.to_string().contains("bogus"), "{e}");
        let Err(e) = parse("postgres://u@h/db?connect_timeout=abc") else { panic!("a bad value") };
        assert!(e.to_string().contains("connect_timeout"), "{e}");
        let Err(e) = parse("postgres://u@h/db?sslmode=require&sslcert=c.pem") else { panic!("client certs") };
        assert!(e.to_string().contains("client certificates"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let Err(e) = parse(&format!("postgres://u@h/db?sslrootcert={}", empty.display())) else { panic!("empty") };
        assert!(e.to_string().contains("holds no CA certificate"), "{e}");
        // Waits are bounded unless the URL says otherwise.
        let (config, _) = parse("postgres://u@h/db").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&std::time::Duration::from_secs(10)));
        assert_eq!(config.get_tcp_user_timeout(), Some(&std::time::Duration::from_secs(30)));
        assert_eq!(config.get_keepalives_idle(), std::time::Duration::from_secs(30));
        let (config, _) = parse("postgres://u@h/db?connect_timeout=3").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
        // Other parameters pass through to the connection's settings.
        let (config, _) = parse("postgres://u@h/db?application_name=cvm-test&sslmode=prefer").unwrap();
        assert_eq!(config.get_application_name(), Some("cvm-test"));
    }
}
