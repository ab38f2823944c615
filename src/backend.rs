//! Backend selection shared by the hash pool and the MSM engine.
//!
//! `Auto` uses a GPU when a usable adapter exists and otherwise warns and uses
//! the CPU; `Gpu` fails with a clear error when there is none, never silently
//! running on the CPU.

use std::fmt;
use std::str::FromStr;

/// The environment variable that picks a backend when none is given explicitly.
pub const BACKEND_ENV: &str = "CVM_BACKEND";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

/// What actually runs once `Auto` has been resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedBackend {
    Cpu,
    Gpu,
}

impl Backend {
    /// The backend named by `CVM_BACKEND`, or `Auto` when it is unset.
    pub fn from_env() -> Result<Self, ParseBackendError> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            _ => Ok(Backend::Auto),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

impl fmt::Display for ResolvedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolvedBackend::Cpu => "cpu",
            ResolvedBackend::Gpu => "gpu",
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown backend {given:?}: expected one of auto, cpu, gpu")]
pub struct ParseBackendError {
    pub given: String,
}

impl FromStr for Backend {
    type Err = ParseBackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            _ => Err(ParseBackendError { given: s.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("GPU".parse::<Backend>(), Ok(Backend::Gpu));
        assert_eq!(" cpu ".parse::<Backend>(), Ok(Backend::Cpu));
        assert_eq!("auto".parse::<Backend>(), Ok(Backend::Auto));
        assert!("cuda".parse::<Backend>().is_err());
    }
}
