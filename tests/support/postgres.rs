//! A database of its own for each cluster test, on the throwaway PostgreSQL
//! cluster `.ci/run` starts (scripts/test_postgres.sh) and names in
//! `CVM_TEST_POSTGRES`. Without it the tests skip, unless
//! `CVM_REQUIRE_POSTGRES=1` (as in CI) makes that a failure.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, empty database's URL; None (the test skips) when no server is named.
pub fn database(test: &str) -> Option<String> {
    let Ok(server) = std::env::var("CVM_TEST_POSTGRES") else {
        if std::env::var("CVM_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("CVM_REQUIRE_POSTGRES=1 but CVM_TEST_POSTGRES names no server (scripts/test_postgres.sh start DIR)");
        }
        eprintln!("skipping {test}: no PostgreSQL (set CVM_TEST_POSTGRES; scripts/test_postgres.sh start DIR)");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("cvm_{}_{}_{}", test, std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    psql(&server, &format!("CREATE DATABASE {name}"));
    let (base, _) = server.rsplit_once('/').expect("a URL ending in /DATABASE");
    Some(format!("{base}/{name}"))
}

/// Run one SQL command with psql, panicking with its output on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The CA that signed the test server's certificate (`CVM_TEST_POSTGRES_CA`,
/// which `.ci/run` sets from scripts/test_postgres.sh's DIR/tls/ca.pem);
/// None (the test skips) when it is not named, unless PostgreSQL is required.
pub fn server_ca(test: &str) -> Option<std::path::PathBuf> {
    match std::env::var_os("CVM_TEST_POSTGRES_CA") {
        Some(path) => Some(path.into()),
        None if std::env::var("CVM_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("CVM_REQUIRE_POSTGRES=1 but CVM_TEST_POSTGRES_CA names no CA (DIR/tls/ca.pem)")
        }
        None => {
            eprintln!("skipping {test}: no CVM_TEST_POSTGRES_CA");
            None
        }
    }
}
