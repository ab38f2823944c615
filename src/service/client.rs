//! A typed async client of the accelerator API (what `cvm submit`, `cvm
//! jobs` and `cvm status --server` use).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use causality_vm::service::client::{Client, ClientOptions, Endpoint};
//! use causality_vm::service::proto::{job_payload, HashJob, HashMessage, JobPayload};
//!
//! let endpoint: Endpoint = "unix:/var/lib/cvm/cvm.sock".parse()?;
//! let mut client = Client::connect(&endpoint, &ClientOptions::default()).await?;
//! let messages = vec![HashMessage { data: b"hello".to_vec(), mode: None }];
//! let payload = JobPayload { kind: Some(job_payload::Kind::Hash(HashJob { messages, ..HashJob::default() })) };
//! // Submit returns once the job is durably recorded; wait follows it to its end.
//! let accepted = client.submit("my-request-1", payload.clone(), 0, None).await?;
//! let job = client.wait(accepted.job_id).await?;
//! println!("{:?}", job.result);
//! // Or both in one call: the same request id names the same job.
//! let again = client.run("my-request-1", payload, 0, None).await?;
//! assert_eq!(again.job_id, job.job_id);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Status, Streaming};

use super::proto::accelerator_client::AcceleratorClient;
use super::proto::*;

/// Where a server listens: `unix:PATH`, `http://HOST:PORT` (also written
/// `tcp://HOST:PORT` or `HOST:PORT`), or `https://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { uri: String, tls: bool },
}

impl Endpoint {
    /// The Unix socket of the server on `data_dir`.
    pub fn local(data_dir: &Path) -> Endpoint {
        Endpoint::Unix(super::server::socket_in(data_dir))
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix://").or_else(|| s.strip_prefix("unix:")) {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let (tls, rest) = match s.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http" | "tcp", rest)) => (false, rest),
            Some((scheme, _)) => {
                return Err(format!("unknown scheme {scheme:?}: use unix:, http://, https:// or tcp://"))
            }
            None => (false, s),
        };
        let uri = format!("{}://{rest}", if tls { "https" } else { "http" });
        let parsed = uri.parse::<tonic::codegen::http::Uri>().map_err(|e| format!("{s:?} is not an address: {e}"))?;
        // Read from the text: the URI parser drops a port past 65535.
        let authority = parsed.authority().map_or("", |a| a.as_str());
        match authority.rsplit_once(':').map(|(_, port)| port).filter(|port| !port.contains(']')) {
            None | Some("") => return Err(format!("{s:?} has no port (HOST:PORT)")),
            Some(port) if !matches!(port.parse::<u16>(), Ok(1..)) => {
                return Err(format!("{s:?}: port {port} is not a TCP port (1 to 65535)"))
            }
            Some(_) => {}
        }
        Ok(Endpoint::Tcp { uri, tls })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp { uri, .. } => f.write_str(uri),
        }
    }
}

/// Credentials and TLS for TCP.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// A service token (`cvmcap1…`), sent as `authorization: Bearer …`.
    pub token: Option<String>,
    /// The CA that signed the server's certificate (PEM), for https.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key (PEM), for mutual TLS.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate carries, if not the host's.
    pub tls_domain: Option<String>,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the token cannot be sent as a header: {0}")]
    Token(String),
    #[error(transparent)]
    Status(#[from] Status),
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[derive(Clone)]
pub struct Client {
    inner: AcceleratorClient<InterceptedService<Channel, Bearer>>,
}

impl Client {
    pub async fn connect(endpoint: &Endpoint, options: &ClientOptions) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect { endpoint: endpoint.to_string(), source };
        let mut builder = match endpoint {
            Endpoint::Unix(path) => tonic::transport::Endpoint::from_shared(format!("unix:{}", path.display())),
            Endpoint::Tcp { uri, .. } => tonic::transport::Endpoint::from_shared(uri.clone()),
        }
        .map_err(connect_error)?;
        builder = builder.connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)));
        if matches!(endpoint, Endpoint::Tcp { tls: true, .. }) {
            let read =
                |path: &Path| std::fs::read(path).map_err(|source| ClientError::Read { path: path.into(), source });
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &options.tls_ca {
                let pem = read(ca)?;
                // rustls would skip it and report only an unknown issuer later.
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "it holds no PEM certificate");
                    return Err(ClientError::Read { path: ca.clone(), source });
                }
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &options.tls_identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            if let Some(domain) = &options.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            builder = builder.tls_config(tls).map_err(connect_error)?;
        }
        let channel = builder.connect().await.map_err(connect_error)?;
        let token = match &options.token {
            Some(token) => Some(
                format!("Bearer {}", token.trim())
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|e| ClientError::Token(e.to_string()))?,
            ),
            None => None,
        };
        let inner = AcceleratorClient::with_interceptor(channel, Bearer(token))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Ok(Client { inner })
    }

    /// Submit a job; `deadline` is a Unix time in milliseconds.
    pub async fn submit(
        &mut self,
        request_id: &str,
        payload: JobPayload,
        priority: i32,
        deadline_unix_ms: Option<u64>,
    ) -> Result<SubmitResponse, Status> {
        let request = submit_request(request_id, payload, priority, deadline_unix_ms);
        Ok(self.inner.submit(request).await?.into_inner())
    }

    /// Submit a job and wait for it to end, in one call (the job, with its
    /// result); for short jobs. See [`Client::submit`].
    pub async fn run(
        &mut self,
        request_id: &str,
        payload: JobPayload,
        priority: i32,
        deadline_unix_ms: Option<u64>,
    ) -> Result<Job, Status> {
        let request = submit_request(request_id, payload, priority, deadline_unix_ms);
        Ok(self.inner.run(request).await?.into_inner())
    }

    /// The job's events until it ends.
    pub async fn events(&mut self, job_id: u64) -> Result<Streaming<JobEvent>, Status> {
        Ok(self.inner.r#await(AwaitRequest { job_id }).await?.into_inner())
    }

    /// Wait for the job to end and return it (with its result).
    pub async fn wait(&mut self, job_id: u64) -> Result<Job, Status> {
        let mut events = self.events(job_id).await?;
        while let Some(event) = events.message().await? {
            if let Some(job) = event.job {
                return Ok(job);
            }
        }
        // The stream ended early (the server stopped): read the job as it stands.
        self.get(job_id).await
    }

    pub async fn get(&mut self, job_id: u64) -> Result<Job, Status> {
        Ok(self.inner.get(GetRequest { job_id }).await?.into_inner())
    }

    pub async fn cancel(&mut self, job_id: u64) -> Result<Job, Status> {
        Ok(self.inner.cancel(CancelRequest { job_id }).await?.into_inner())
    }

    pub async fn list(&mut self, request: ListRequest) -> Result<Vec<Job>, Status> {
        Ok(self.inner.list(request).await?.into_inner().jobs)
    }

    pub async fn status(&mut self) -> Result<StatusResponse, Status> {
        Ok(self.inner.status(StatusRequest {}).await?.into_inner())
    }

    /// Drop an uploaded base set; false when the server did not have it.
    pub async fn remove_bases(&mut self, base_set_id: &str) -> Result<bool, Status> {
        let request = RemoveBasesRequest { base_set_id: base_set_id.to_string() };
        Ok(self.inner.remove_bases(request).await?.into_inner().removed)
    }

    pub async fn upload_bases(&mut self, group: Group, points: Vec<Vec<u8>>) -> Result<UploadBasesResponse, Status> {
        let request = UploadBasesRequest { group: group as i32, bases: Some(PointList { points }) };
        Ok(self.inner.upload_bases(request).await?.into_inner())
    }

    /// Load a compliance key set or an uploaded zkey ahead of its jobs.
    pub async fn preload(&mut self, request: PreloadRequest) -> Result<KeySetStatus, Status> {
        Ok(self.inner.preload(request).await?.into_inner())
    }

    /// Drop a resident key set or zkey from memory.
    pub async fn evict(&mut self, request: EvictRequest) -> Result<KeySetStatus, Status> {
        Ok(self.inner.evict(request).await?.into_inner())
    }

    /// Keep a snarkjs key on the server (with the circuit's R1CS, or empty);
    /// its id names it in Groth16 jobs.
    pub async fn upload_zkey(&mut self, zkey: Vec<u8>, r1cs: Vec<u8>) -> Result<UploadZkeyResponse, Status> {
        Ok(self.inner.upload_zkey(UploadZkeyRequest { zkey, r1cs }).await?.into_inner())
    }
}

fn submit_request(
    request_id: &str,
    payload: JobPayload,
    priority: i32,
    deadline_unix_ms: Option<u64>,
) -> SubmitRequest {
    SubmitRequest {
        request_id: request_id.to_string(),
        payload: Some(payload),
        priority,
        deadline_unix_ms: deadline_unix_ms.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn endpoints_parse() {
        assert_eq!("unix:/a/b.sock".parse(), Ok(Endpoint::Unix("/a/b.sock".into())));
        assert_eq!(
            "tcp://127.0.0.1:7000".parse(),
            Ok(Endpoint::Tcp { uri: "http://127.0.0.1:7000".into(), tls: false })
        );
        assert_eq!("localhost:7000".parse(), Ok(Endpoint::Tcp { uri: "http://localhost:7000".into(), tls: false }));
        assert_eq!("https://h:1".parse(), Ok(Endpoint::Tcp { uri: "https://h:1".into(), tls: true }));
        assert!("ftp://h:1".parse::<Endpoint>().unwrap_err().contains("unknown scheme"));
        assert!("localhost".parse::<Endpoint>().unwrap_err().contains("no port"));
        for port in ["99999", "0", "65536"] {
            let err = format!("tcp://127.0.0.1:{port}").parse::<Endpoint>().unwrap_err();
            assert!(err.contains("is not a TCP port"), "{port}: {err}");
        }
    }
}
