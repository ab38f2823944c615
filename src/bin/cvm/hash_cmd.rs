//! `cvm hash`: BLAKE3 files through the hash pool, printing b3sum-compatible
//! lines (`<hex>  <name>`), or verifying such a list with `--check`.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use causality_vm::hash::{HashHandle, HashPool};

use crate::Globals;

#[derive(clap::Args)]
pub struct HashArgs {
    /// Keyed hashing with this 32-byte key (64 hex digits).
    #[arg(long, value_name = "KEYHEX", conflicts_with = "derive_key")]
    pub keyed: Option<String>,
    /// Key derivation with this context string (the files are the key material).
    #[arg(long, value_name = "CONTEXT")]
    pub derive_key: Option<String>,
    /// Read `<hex>  <name>` lines from each FILE and verify them.
    #[arg(long, short = 'c')]
    pub check: bool,
    /// Files to hash (`-` is standard input); with --check, the lists to verify.
    #[arg(value_name = "FILE", default_value = "-")]
    pub files: Vec<String>,
}

/// How each input is hashed.
enum Mode {
    Hash,
    Keyed([u8; 32]),
    DeriveKey(String),
}

impl Mode {
    fn from_args(args: &HashArgs) -> anyhow::Result<Mode> {
        if let Some(hex) = &args.keyed {
            let key = parse_hex32(hex).with_context(|| format!("--keyed {hex:?}"))?;
            return Ok(Mode::Keyed(key));
        }
        Ok(match &args.derive_key {
            Some(context) => Mode::DeriveKey(context.clone()),
            None => Mode::Hash,
        })
    }

    fn file(&self, pool: &mut HashPool, data: &[u8]) -> HashHandle {
        match self {
            Mode::Hash => pool.hash(data),
            Mode::Keyed(key) => pool.keyed_hash(key, data),
            Mode::DeriveKey(context) => pool.derive_key(context, data),
        }
    }
}

pub fn run(globals: &Globals, args: HashArgs) -> anyhow::Result<i32> {
    let mode = Mode::from_args(&args)?;
    let mut pool = HashPool::with_backend(globals.backend)?;
    if args.check {
        check_lists(globals, &args.files, &mode, &mut pool)
    } else {
        hash_files(globals, &args.files, &mode, &mut pool)
    }
}

fn read_input(name: &str) -> std::io::Result<Vec<u8>> {
    if name == "-" {
        let mut data = Vec::new();
        std::io::stdin().lock().read_to_end(&mut data)?;
        Ok(data)
    } else {
        std::fs::read(Path::new(name))
    }
}

/// Hash every file in one flush and print a line per file.
fn hash_files(globals: &Globals, files: &[String], mode: &Mode, pool: &mut HashPool) -> anyhow::Result<i32> {
    let mut entries = Vec::new();
    let mut failed = false;
    for name in files {
        match read_input(name) {
            Ok(data) => entries.push((name, mode.file(pool, &data))),
            Err(err) => {
                note!("cvm hash: {name}: {err}");
                failed = true;
            }
        }
    }
    pool.flush()?;
    let mut json = Vec::new();
    for (name, handle) in entries {
        let hex = to_hex(&pool.digest(handle)?);
        if globals.json {
            json.push(serde_json::json!({ "file": name, "blake3": hex }));
        } else {
            out!("{}", b3sum_line(&hex, name))?;
        }
    }
    if globals.json {
        out!("{}", serde_json::to_string_pretty(&json)?)?;
    }
    Ok(i32::from(failed))
}

/// One checksum line as b3sum writes it: names with a backslash or newline
/// are escaped and the line starts with a backslash.
fn b3sum_line(hex: &str, name: &str) -> String {
    if name.contains('\\') || name.contains('\n') {
        format!("\\{hex}  {}", name.replace('\\', "\\\\").replace('\n', "\\n"))
    } else {
        format!("{hex}  {name}")
    }
}

/// Parse a b3sum line into (expected digest, file name).
fn parse_line(line: &str) -> anyhow::Result<([u8; 32], String)> {
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let Some((hex, name)) = line.split_once("  ") else {
        bail!("expected `<64 hex digits>  <file name>`");
    };
    let digest = parse_hex32(hex)?;
    let name = if escaped { unescape(name)? } else { name.to_string() };
    Ok((digest, name))
}

fn unescape(name: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => bail!("invalid escape \\{} in file name", other.map(String::from).unwrap_or_default()),
        }
    }
    Ok(out)
}

/// Verify every line of every list; prints `<name>: OK` or `<name>: FAILED`.
fn check_lists(globals: &Globals, lists: &[String], mode: &Mode, pool: &mut HashPool) -> anyhow::Result<i32> {
    struct Entry {
        name: String,
        expected: [u8; 32],
        outcome: Result<HashHandle, String>,
    }
    let mut entries = Vec::new();
    let mut malformed = 0usize;
    for list in lists {
        let text = read_input(list).with_context(|| format!("reading checksum list {list}"))?;
        let text = String::from_utf8(text).with_context(|| format!("checksum list {list} is not UTF-8"))?;
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match parse_line(line) {
                Ok((expected, name)) => {
                    let outcome = read_input(&name).map(|data| mode.file(pool, &data)).map_err(|e| e.to_string());
                    entries.push(Entry { name, expected, outcome });
                }
                Err(err) => {
                    note!("cvm hash: {list}:{}: {err:#}", number + 1);
                    malformed += 1;
                }
            }
        }
    }
    pool.flush()?;
    let mut failures = 0usize;
    let mut json = Vec::new();
    for entry in entries {
        let ok = match &entry.outcome {
            Ok(handle) => pool.digest(*handle)? == entry.expected,
            Err(_) => false,
        };
        failures += usize::from(!ok);
        if globals.json {
            json.push(serde_json::json!({ "file": entry.name, "ok": ok, "error": entry.outcome.as_ref().err() }));
        } else if let Err(err) = &entry.outcome {
            out!("{}: FAILED ({err})", entry.name)?;
        } else if !ok {
            out!("{}: FAILED", entry.name)?;
        } else if !globals.quiet {
            out!("{}: OK", entry.name)?;
        }
    }
    if globals.json {
        out!("{}", serde_json::to_string_pretty(&json)?)?;
    }
    if failures > 0 {
        note!("cvm hash: WARNING: {failures} computed checksum(s) did NOT match");
    }
    if malformed > 0 {
        note!("cvm hash: WARNING: {malformed} line(s) are improperly formatted");
    }
    Ok(i32::from(failures > 0 || malformed > 0))
}

fn parse_hex32(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        bail!("expected 64 hex digits (32 bytes), got {} characters", hex.len());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| anyhow::anyhow!("{:?} at position {} is not a hex byte", &hex[2 * i..2 * i + 2], 2 * i))?;
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_b3sum_escaping() {
        let hex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        for name in ["plain.txt", "with space", "back\\slash", "new\nline"] {
            let (digest, parsed) = parse_line(&b3sum_line(hex, name)).unwrap();
            assert_eq!(parsed, name);
            assert_eq!(to_hex(&digest), hex);
        }
        assert!(parse_line("nothex  file").is_err());
        assert!(parse_line(hex).is_err());
        assert!(parse_hex32(&"zz".repeat(32)).is_err());
    }
}
