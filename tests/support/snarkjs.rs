//! Running snarkjs 0.7.6 (tests/snarkjs) on exported proof directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The snarkjs verifier script, or None (with the reason) when it cannot run.
/// With CVM_REQUIRE_SNARKJS=1 a missing node or install is a failure.
pub fn snarkjs_script() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snarkjs");
    let installed = root.join("node_modules/snarkjs/package.json").is_file();
    let node = Command::new("node").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if installed && node {
        return Some(root.join("verify.js"));
    }
    let reason = format!(
        "snarkjs check not run: node {}, snarkjs {} (install with `npm ci --prefix tests/snarkjs`)",
        if node { "found" } else { "missing" },
        if installed { "installed" } else { "not installed" }
    );
    if std::env::var("CVM_REQUIRE_SNARKJS").as_deref() == Ok("1") {
        panic!("{reason}, and CVM_REQUIRE_SNARKJS=1");
    }
    eprintln!("{reason}");
    None
}

/// snarkjs's exit code and output for the proof in `dir`.
pub fn run_snarkjs(script: &Path, dir: &Path) -> (Option<i32>, String) {
    let out = Command::new("node").arg(script).arg(dir).output().expect("running node");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
