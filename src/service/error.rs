//! Why the server could not start or stopped badly.

use super::journal::JournalError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("the GPU: {0}")]
    Backend(String),
    #[error("the gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// An I/O error, with what was being done.
pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}
