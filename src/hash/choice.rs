//! Which CPU kernel a pool uses by default: the one the embedding program
//! prefers ([`Kernel::prefer`]), otherwise the one this processor runs
//! fastest, measured once per process. A wider instruction set is not always
//! faster (AVX-512 executed as two 256-bit halves, or a lower clock while
//! it runs), so the choice is timed rather than assumed.

use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::cpu;
use super::lanes::Kernel;

static CHOSEN: OnceLock<Kernel> = OnceLock::new();

/// Messages per timing: 128 KiB of 64-byte messages (in cache, well under a
/// millisecond on any SIMD kernel).
const PROBE_MESSAGES: usize = 2048;
const PROBE_ROUNDS: usize = 5;
/// A narrower kernel must be this much faster to be chosen over a wider one
/// (timing noise must not flip the choice between near-equal kernels).
const MARGIN: f64 = 1.05;

impl Kernel {
    /// The default kernel: the preferred one if [`Kernel::prefer`] was
    /// called first, otherwise the fastest supported one, measured on first
    /// use.
    pub fn detect() -> Kernel {
        *CHOSEN.get_or_init(Kernel::fastest)
    }

    /// Make `kernel` the default for every pool created from now on (the
    /// `cvm` binary maps `CVM_HASH_KERNEL` here, to compare kernels). Fails
    /// if the processor cannot run it, or if a different default was
    /// already in use.
    pub fn prefer(kernel: Kernel) -> Result<(), String> {
        if !kernel.is_supported() {
            return Err(format!("this processor cannot run the {kernel} hash kernel"));
        }
        let chosen = *CHOSEN.get_or_init(|| kernel);
        if chosen == kernel {
            Ok(())
        } else {
            Err(format!("the {chosen} hash kernel is already in use"))
        }
    }

    /// Time every supported SIMD kernel on one thread and return the
    /// fastest (the widest unless a narrower one wins by [`MARGIN`]).
    pub fn fastest() -> Kernel {
        let candidates: Vec<Kernel> = Kernel::supported().into_iter().filter(|k| *k != Kernel::Portable).collect();
        if candidates.len() < 2 {
            return candidates.first().copied().unwrap_or(Kernel::Portable);
        }
        let data: Vec<u8> = (0..PROBE_MESSAGES * 64).map(|i| i as u8).collect();
        let mut out = vec![MaybeUninit::uninit(); PROBE_MESSAGES];
        let mut best = vec![Duration::MAX; candidates.len()];
        for _ in 0..PROBE_ROUNDS {
            for (kernel, best) in candidates.iter().zip(best.iter_mut()) {
                let started = Instant::now();
                cpu::hash_contiguous(*kernel, &data, 64, &mut out);
                *best = (*best).min(started.elapsed());
            }
        }
        let fastest = best.iter().copied().min().unwrap_or(Duration::MAX);
        // `candidates` is widest first: take the first within the margin.
        let chosen = candidates
            .iter()
            .zip(&best)
            .find(|(_, t)| t.as_secs_f64() <= fastest.as_secs_f64() * MARGIN)
            .map_or(candidates[0], |(k, _)| *k);
        tracing::debug!(
            timings = ?candidates.iter().zip(&best).map(|(k, t)| format!("{k} {t:?}")).collect::<Vec<_>>(),
            %chosen,
            "hash kernel measured"
        );
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_kernel_is_supported_and_stable() {
        let kernel = Kernel::fastest();
        assert!(kernel.is_supported());
        assert_eq!(Kernel::detect(), Kernel::detect());
        assert!(Kernel::prefer(Kernel::detect()).is_ok(), "preferring the kernel in use is no change");
    }

    #[test]
    fn kernels_parse_by_name() {
        for kernel in [Kernel::Avx512, Kernel::Avx2, Kernel::Sse41, Kernel::Portable] {
            assert_eq!(kernel.to_string().parse::<Kernel>(), Ok(kernel));
        }
        assert!("avx1024".parse::<Kernel>().unwrap_err().contains("avx1024"));
    }
}
