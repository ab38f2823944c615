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

/// An error and its causes, "a: b: c" (tokio-postgres and tonic name only
/// an error's kind, "error performing TLS handshake", and keep the why in
/// its causes).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = next.source();
    }
    text
}
