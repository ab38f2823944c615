//! Who may call the server. The Unix socket is owner-only, so a caller on
//! it is the server's own user. TCP callers present a bearer capability
//! token (`authorization: Bearer cvmcap1…`) minted with the service key in
//! the data dir (`cvm token mint --service`); its caveats name the job
//! kinds and batch domains it may use and its expiry. TLS (rustls) guards
//! the token on the wire; a non-loopback listener without both refuses to
//! start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::transport::server::UdsConnectInfo;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::core::{kind_name, token_kind, Core};
use super::error::ServeError;
use super::proto::{Job, JobKind};
use crate::capability::{CapabilityToken, Permissions, RootKey};
use crate::resource::DomainId;

/// The domain service tokens are rooted in (never a batch domain).
pub const SERVICE_DOMAIN: &str = "cvm-service";

/// The service key's file in the data dir.
pub fn service_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("service.key")
}

/// The service key, made (owner-only) on first use.
pub fn service_key(data_dir: &Path) -> std::io::Result<RootKey> {
    let path = service_key_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => RootKey::from_hex(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key = RootKey::generate();
            crate::fsutil::write_atomically(&path, format!("{}\n", key.to_hex()).as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// TCP's security settings (`cvm serve` flags).
#[derive(Clone, Debug, Default)]
pub struct Auth {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Accept TCP calls without a token: allowed on loopback only.
    pub no_auth: bool,
}

impl Auth {
    /// Refuse a listener that would expose the API unguarded.
    pub fn check_listen(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        if self.no_auth {
            return Err(ServeError::Config(format!(
                "refusing to listen on {addr} without authentication: --no-auth is for loopback addresses only"
            )));
        }
        if self.tls_cert.is_none() {
            return Err(ServeError::Config(format!(
                "refusing to listen on {addr} without TLS: tokens would cross the network in clear (--tls-cert, --tls-key)"
            )));
        }
        Ok(())
    }

    pub fn tls_config(&self) -> Result<Option<ServerTlsConfig>, ServeError> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|source| ServeError::Io { what: format!("reading the {what} {}", path.display()), source })
        };
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err(ServeError::Config("--client-ca needs --tls-cert and --tls-key".into()));
                }
                return Ok(None);
            }
            (Some(cert), Some(key)) => (read("TLS certificate", cert)?, read("TLS key", key)?),
            _ => return Err(ServeError::Config("--tls-cert and --tls-key go together".into())),
        };
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
        }
        Ok(Some(config))
    }
}

/// Checks TCP callers' tokens.
pub struct Authenticator {
    key: RootKey,
    no_auth: bool,
}

/// What a verified caller may do (in the request's extensions).
#[derive(Clone, Debug)]
pub struct Grant(Option<Permissions>);

impl Grant {
    /// The caller a request carries (the interceptor put it there); a
    /// request without one may do nothing.
    pub fn of<T>(request: &Request<T>) -> Grant {
        request
            .extensions()
            .get::<Grant>()
            .cloned()
            .unwrap_or_else(|| Grant(Some(Permissions::of_caveats(&[crate::capability::Caveat::Jobs(Vec::new())]))))
    }

    /// Whether the caller came with a token (TCP), rather than on the owner-only socket.
    pub fn is_token(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the caller may see and steer jobs of `kind` (List's filter).
    pub fn sees(&self, kind: JobKind) -> bool {
        self.check(kind, None).is_ok()
    }

    /// Whether the caller may see and steer `job` (Get, Await, Cancel, List):
    /// its kind, as for submitting it, and the domain it records (a batch
    /// job's, or in a cluster its proofs'). A job of a domain the token does
    /// not name is, to its holder, not there (`NOT_FOUND`, naming no domain:
    /// trying job ids must not list other tenants' domains); so is a batch
    /// job without a recorded domain, to a token limited to domains.
    pub fn sees_job(&self, job: &Job) -> Result<(), Status> {
        self.check(job.kind(), None)?;
        match self.in_domains(job) {
            true => Ok(()),
            false => Err(Status::not_found(format!("no job {}", job.job_id))),
        }
    }

    /// Whether `job`'s recorded domain is one the token names (any, for a
    /// token not limited to domains; none recorded passes but for a batch job).
    pub fn in_domains(&self, job: &Job) -> bool {
        let Some(allowed) = self.0.as_ref().and_then(|p| p.domains.as_ref()) else { return true };
        match DomainId::parse(&job.domain).ok() {
            Some(domain) => allowed.contains(&domain),
            None => job.kind() != JobKind::ExecuteBatch,
        }
    }

    /// The domains the caller's token is limited to, if it is.
    pub fn domains(&self) -> Option<Vec<String>> {
        let domains = self.0.as_ref()?.domains.as_ref()?;
        Some(domains.iter().map(|d| d.as_str().to_string()).collect())
    }

    /// Whether the caller may submit a job of `kind` (for batch jobs, in `domain`).
    pub fn check(&self, kind: JobKind, domain: Option<&DomainId>) -> Result<(), Status> {
        let Some(permissions) = &self.0 else { return Ok(()) };
        if let Some(kinds) = &permissions.jobs {
            if !token_kind(kind).is_some_and(|k| kinds.contains(&k)) {
                let allowed: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(Status::permission_denied(format!(
                    "the token does not allow {} jobs (it allows: {})",
                    kind_name(kind),
                    if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
                )));
            }
        }
        if let Some(domain) = domain {
            permissions
                .check_domain(domain)
                .map_err(|reason| Status::permission_denied(format!("the token: {reason}")))?;
        }
        Ok(())
    }
}

impl Authenticator {
    pub fn new(data_dir: &Path, auth: &Auth) -> Result<Authenticator, ServeError> {
        let key = service_key(data_dir).map_err(|source| ServeError::Io { what: "the service key".into(), source })?;
        Ok(Authenticator { key, no_auth: auth.no_auth })
    }

    /// Verify the bearer token in `metadata`; `Err((status, reason))`, the
    /// reason a metrics label.
    fn verify(&self, metadata: &MetadataMap) -> Result<Grant, (Status, &'static str)> {
        let Some(value) = metadata.get("authorization") else {
            if self.no_auth {
                return Ok(Grant(None));
            }
            return Err((
                Status::unauthenticated("no token: send `authorization: Bearer cvmcap1…` (cvm token mint --service)"),
                "missing",
            ));
        };
        let text = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or((Status::unauthenticated("the authorization header must be `Bearer <token>`"), "malformed"))?;
        let token = CapabilityToken::from_text(text.trim())
            .map_err(|e| (Status::unauthenticated(format!("the token is malformed: {e}")), "malformed"))?;
        if token.domain.as_str() != SERVICE_DOMAIN {
            return Err((
                Status::unauthenticated(format!("the token is for domain {}, not this service", token.domain)),
                "forged",
            ));
        }
        token.verify_chain(&self.key).map_err(|_| {
            (
                Status::unauthenticated("the token was not minted with this server's service key (forged or altered)"),
                "forged",
            )
        })?;
        if let Some(caveat) = token.caveats.iter().find(|c| !c.narrows_service_tokens()) {
            return Err((
                Status::permission_denied(format!(
                    "the token carries a `{}` caveat, which a service token cannot honour (only jobs, domains and \
                     expires narrow one): it grants nothing here",
                    caveat.kind_name()
                )),
                "unhonoured_caveat",
            ));
        }
        let permissions = Permissions::of_caveats(&token.caveats);
        if let Some(expiry) = permissions.expires_at {
            let now = crate::batch::file::now();
            if now >= expiry {
                return Err((
                    Status::unauthenticated(format!("the token expired at {expiry} (Unix seconds; now {now})")),
                    "expired",
                ));
            }
        }
        Ok(Grant(Some(permissions)))
    }
}

/// The interceptor on every call of the API.
#[derive(Clone)]
pub struct Interceptor {
    pub auth: Option<Arc<Authenticator>>,
    pub metrics: Arc<Core>,
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if request.extensions().get::<UdsConnectInfo>().is_some() {
            // The owner-only socket: the server's own user.
            request.extensions_mut().insert(Grant(None));
            return Ok(request);
        }
        let Some(auth) = &self.auth else {
            self.metrics.metrics.auth_rejected("no_tcp");
            return Err(Status::unauthenticated("this server takes calls on its Unix socket only"));
        };
        match auth.verify(request.metadata()) {
            Ok(grant) => {
                request.extensions_mut().insert(grant);
                Ok(request)
            }
            Err((status, reason)) => {
                self.metrics.metrics.auth_rejected(reason);
                Err(status)
            }
        }
    }
}
