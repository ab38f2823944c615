//! One seed policy for randomized tests: a fresh seed every run (so CI keeps
//! exploring), printed when the test fails, and `CVM_TEST_SEED=<n>` to
//! replay one.
#![allow(dead_code)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub const SEED_ENV: &str = "CVM_TEST_SEED";

/// Prints the seed if the test panics while it is alive.
pub struct SeedGuard {
    test: &'static str,
    seed: u64,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}: failed with seed {}; replay with {SEED_ENV}={}", self.test, self.seed, self.seed);
        }
    }
}

/// This run's seed for `test` and the guard that reports it on failure.
pub fn seed(test: &'static str) -> (u64, SeedGuard) {
    let seed = match std::env::var(SEED_ENV) {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| panic!("{SEED_ENV}={value:?} is not a u64")),
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            // Mixed with the test's name so tests starting together differ.
            let name = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            (nanos as u64) ^ name
        }
    };
    (seed, SeedGuard { test, seed })
}

/// A ChaCha8 generator for this run's seed.
pub fn rng(test: &'static str) -> (ChaCha8Rng, SeedGuard) {
    let (seed, guard) = seed(test);
    (ChaCha8Rng::seed_from_u64(seed), guard)
}

/// CPU features this machine is declared to have (`CVM_REQUIRE_CPU_FEATURES`,
/// comma-separated `is_x86_feature_detected!` names such as
/// `avx512f,avx512ifma`): a suite that would skip a kernel for lack of one
/// fails instead.
pub fn require_cpu_features() {
    let Ok(list) = std::env::var("CVM_REQUIRE_CPU_FEATURES") else { return };
    for feature in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        assert!(cpu_has(feature), "CVM_REQUIRE_CPU_FEATURES names {feature}, which this processor lacks");
    }
}

fn cpu_has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512ifma" => std::arch::is_x86_feature_detected!("avx512ifma"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "adx" => std::arch::is_x86_feature_detected!("adx"),
            other => panic!("CVM_REQUIRE_CPU_FEATURES: unknown feature {other}"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        false
    }
}
