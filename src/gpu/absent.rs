//! A build without the `gpu` feature: no adapter ever exists, so `Auto`
//! resolves to the CPU and `Gpu` fails with this build's reason. The
//! context cannot be made, so nothing that needs one can run.

use std::convert::Infallible;
use std::sync::Arc;

use super::GpuError;

/// Never constructed in this build.
pub struct GpuContext {
    never: Infallible,
}

impl GpuContext {
    pub fn shared() -> Result<Arc<GpuContext>, GpuError> {
        GpuContext::new().map(Arc::new)
    }

    /// As with the `gpu` feature: here always the error, no adapter exists.
    pub fn shared_hardware() -> Result<Result<Arc<GpuContext>, String>, GpuError> {
        GpuContext::new().map(|ctx| Ok(Arc::new(ctx)))
    }

    pub fn new() -> Result<GpuContext, GpuError> {
        Err(GpuError::NoAdapter("this build of causality-vm has no GPU support (the `gpu` feature is off)".into()))
    }

    pub fn describe(&self) -> String {
        match self.never {}
    }

    pub fn is_software(&self) -> bool {
        match self.never {}
    }

    pub fn is_lost(&self) -> bool {
        match self.never {}
    }
}
