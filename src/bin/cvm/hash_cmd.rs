//! `cvm hash`: BLAKE3 of files, printed as b3sum prints them, or verifying
//! such a list with `--check`. Small files go through the hash pool
//! together (the GPU's job when there is one); a large file is hashed as it
//! is read, in chunks across the cores: mapped into memory (each chunk let
//! go once hashed) or, with `--no-mmap`, read into one buffer, so memory
//! stays the same whatever the file's size. Standard input is streamed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use causality_vm::hash::{HashHandle, HashPool};

use crate::output::OutputError;
use crate::{progress, Globals};

#[derive(clap::Args)]
pub struct HashArgs {
    /// Keyed hashing: the 32-byte key is read from standard input (32 raw
    /// bytes, as b3sum takes it, or 64 hex digits), never from the command line.
    #[arg(long, conflicts_with = "derive_key")]
    pub keyed: bool,
    /// Key derivation with this context string (the files are the key material).
    #[arg(long, value_name = "CONTEXT")]
    pub derive_key: Option<String>,
    /// Read `<hex>  <name>` lines from each FILE and verify them.
    #[arg(long, short = 'c')]
    pub check: bool,
    /// Output this many bytes of extended output (default 32; at most 64 MiB, held in memory).
    #[arg(long, short = 'l', default_value_t = 32, value_name = "LEN", value_parser = output_length)]
    pub length: usize,
    /// Print the hashes without the file names.
    #[arg(long)]
    pub no_names: bool,
    /// Write the raw output bytes, no hex and no name (one input only).
    #[arg(long)]
    pub raw: bool,
    /// BSD-style lines: `BLAKE3 (name) = hex`.
    #[arg(long)]
    pub tag: bool,
    /// Hash with at most this many threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub num_threads: Option<usize>,
    /// Read large files instead of mapping them into memory.
    #[arg(long)]
    pub no_mmap: bool,
    /// Files to hash (`-` is standard input); with --check, the lists to verify.
    #[arg(value_name = "FILE", default_value = "-")]
    pub files: Vec<String>,
}

/// Files up to this size go through the hash pool together.
const SMALL: u64 = 1 << 20;
/// A large file is hashed this much at a time.
const CHUNK: usize = 16 << 20;
/// Inputs at least this large show progress (on a terminal).
const SHOW_PROGRESS: u64 = 256 << 20;

/// How each input is hashed.
#[derive(Clone)]
enum Mode {
    Hash,
    Keyed([u8; 32]),
    DeriveKey(String),
}

impl Mode {
    fn from_args(args: &HashArgs) -> anyhow::Result<Mode> {
        if args.keyed {
            if args.files.iter().any(|f| f == "-") || args.files.is_empty() {
                bail!("--keyed reads the key from standard input, so the files to hash must be named");
            }
            let mut key = Vec::new();
            std::io::stdin().lock().take(4096).read_to_end(&mut key).context("reading the key from standard input")?;
            return Ok(Mode::Keyed(parse_key(&key)?));
        }
        Ok(match &args.derive_key {
            Some(context) => Mode::DeriveKey(context.clone()),
            None => Mode::Hash,
        })
    }

    fn hasher(&self) -> blake3::Hasher {
        match self {
            Mode::Hash => blake3::Hasher::new(),
            Mode::Keyed(key) => blake3::Hasher::new_keyed(key),
            Mode::DeriveKey(context) => blake3::Hasher::new_derive_key(context),
        }
    }

    fn file(&self, pool: &mut HashPool, data: &[u8]) -> HashHandle {
        match self {
            Mode::Hash => pool.hash(data),
            Mode::Keyed(key) => pool.keyed_hash(key, data),
            Mode::DeriveKey(context) => pool.derive_key(context, data),
        }
    }
}

/// A key given on standard input: 32 raw bytes, or 64 hex digits (a
/// trailing newline allowed).
fn parse_key(given: &[u8]) -> anyhow::Result<[u8; 32]> {
    if given.len() == 32 {
        return Ok(given.try_into().expect("32 bytes"));
    }
    let text = std::str::from_utf8(given).map(str::trim).unwrap_or_default();
    parse_hex32(text).with_context(|| {
        format!("the key on standard input: {} bytes, neither 32 raw bytes nor 64 hex digits", given.len())
    })
}

/// The most extended output `--length` asks for: each hash's output is
/// held in memory (and printed as hex, twice its size).
const MAX_OUTPUT_LENGTH: usize = 64 << 20;

fn output_length(text: &str) -> Result<usize, String> {
    let length: usize = text.parse().map_err(|e| format!("{e}"))?;
    if length > MAX_OUTPUT_LENGTH {
        return Err(format!("at most {MAX_OUTPUT_LENGTH} bytes of output"));
    }
    Ok(length)
}

pub fn run(globals: &Globals, args: HashArgs) -> anyhow::Result<i32> {
    if args.raw && (args.files.len() != 1 || args.check) {
        bail!("--raw writes the bytes of one hash: give exactly one input (and no --check)");
    }
    if args.check && args.length != 32 {
        bail!("--check verifies 32-byte hashes: --length does not go with it");
    }
    let mode = Mode::from_args(&args)?;
    let threads = match args.num_threads {
        Some(0) => bail!("--num-threads must be at least 1"),
        Some(n) => Some(rayon::ThreadPoolBuilder::new().num_threads(n).build().context("starting the threads")?),
        None => None,
    };
    let work = || -> anyhow::Result<i32> {
        let mut pool = HashPool::with_backend(globals.backend)?;
        match args.check {
            true => check_lists(globals, &args, &mode, &mut pool),
            false => hash_files(globals, &args, &mode, &mut pool),
        }
    };
    match threads {
        Some(threads) => threads.install(work),
        None => work(),
    }
}

/// An input's output bytes: from the pool (small files, 32 bytes) or hashed here.
enum Digest {
    Pooled(HashHandle),
    Done(Vec<u8>),
}

/// Hash one input: a small file into the pool, anything else streamed.
fn digest_input(
    globals: &Globals,
    args: &HashArgs,
    mode: &Mode,
    pool: &mut HashPool,
    name: &str,
) -> std::io::Result<Digest> {
    if name == "-" {
        let mut hasher = mode.hasher();
        hasher.update_reader(std::io::stdin().lock())?;
        return Ok(Digest::Done(output(&hasher, args.length)));
    }
    let mut file = File::open(name)?;
    let meta = file.metadata()?;
    // A device, FIFO or pipe says 0 bytes and may never end: streamed, in
    // bounded memory, as standard input is (never read whole, nor mapped).
    if !meta.is_file() {
        let mut hasher = mode.hasher();
        stream(&mut hasher, file, None)?;
        return Ok(Digest::Done(output(&hasher, args.length)));
    }
    let size = meta.len();
    if size <= SMALL && args.length == 32 {
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data)?;
        return Ok(Digest::Pooled(mode.file(pool, &data)));
    }
    let bar = (size >= SHOW_PROGRESS).then(|| progress::bar(globals, size, name, true)).flatten();
    let mut hasher = mode.hasher();
    let streamed = match args.no_mmap || size == 0 {
        true => stream(&mut hasher, file, bar.as_ref()),
        false => mapped(&mut hasher, &file, size, bar.as_ref()),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    streamed?;
    Ok(Digest::Done(output(&hasher, args.length)))
}

/// Where the pool hashed the small files (large files and standard input
/// are streamed on the CPU).
fn pooled_on(pool: &HashPool) -> &'static str {
    match (pool.gpu_hashed(), pool.gpu_fallbacks()) {
        (0, _) => "cpu",
        (_, 0) => "gpu",
        // Some flushes failed on the GPU and were recomputed.
        _ => "mixed",
    }
}

/// Hash a file read one chunk at a time into one buffer.
fn stream(hasher: &mut blake3::Hasher, mut file: File, bar: Option<&indicatif::ProgressBar>) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return Ok(());
        }
        hasher.update_rayon(&buf[..filled]);
        if let Some(bar) = bar {
            bar.inc(filled as u64);
        }
    }
}

/// Hash a file mapped into memory, a chunk at a time, each chunk's pages
/// let go once hashed (resident memory stays about one chunk).
fn mapped(
    hasher: &mut blake3::Hasher,
    file: &File,
    size: u64,
    bar: Option<&indicatif::ProgressBar>,
) -> std::io::Result<()> {
    // SAFETY: the mapping is read-only; a file changed under it by another
    // process gives a hash of mixed contents, as any read would.
    let map = unsafe { memmap2::Mmap::map(file)? };
    let len = map.len().min(size as usize);
    let mut at = 0;
    while at < len {
        let end = (at + CHUNK).min(len);
        hasher.update_rayon(&map[at..end]);
        // SAFETY: the range lies in a read-only file mapping: dropping its
        // pages only makes later reads fetch them again from the file.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, at, end - at) };
        if let Some(bar) = bar {
            bar.inc((end - at) as u64);
        }
        at = end;
    }
    Ok(())
}

fn output(hasher: &blake3::Hasher, length: usize) -> Vec<u8> {
    let mut out = vec![0u8; length];
    hasher.finalize_xof().fill(&mut out);
    out
}

/// Hash every input and print a line per input (or the raw bytes).
fn hash_files(globals: &Globals, args: &HashArgs, mode: &Mode, pool: &mut HashPool) -> anyhow::Result<i32> {
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    let mut failed = false;
    for name in &args.files {
        match digest_input(globals, args, mode, pool, name) {
            Ok(digest) => entries.push((name, digest)),
            Err(err) => {
                if globals.json {
                    failures.push(serde_json::json!({ "file": name, "error": err.to_string(), "kind": "io" }));
                } else {
                    note!("cvm hash: {name}: {err}");
                }
                failed = true;
            }
        }
    }
    pool.flush()?;
    let pooled_on = pooled_on(pool);
    let mut json = Vec::new();
    for (name, digest) in entries {
        let (bytes, backend) = match digest {
            Digest::Pooled(handle) => (pool.digest(handle)?.to_vec(), pooled_on),
            Digest::Done(bytes) => (bytes, "cpu"),
        };
        if args.raw {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes).and_then(|()| stdout.flush()).map_err(OutputError)?;
            continue;
        }
        let hex = to_hex(&bytes);
        if globals.json {
            json.push(serde_json::json!({ "file": name, "blake3": hex, "backend": backend }));
        } else if args.no_names {
            out!("{hex}")?;
        } else if args.tag {
            out!("BLAKE3 ({name}) = {hex}")?;
        } else {
            out!("{}", b3sum_line(&hex, name))?;
        }
    }
    if globals.json {
        // Failed inputs are listed too, after the hashed ones.
        json.extend(failures);
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
fn check_lists(globals: &Globals, args: &HashArgs, mode: &Mode, pool: &mut HashPool) -> anyhow::Result<i32> {
    struct Entry {
        name: String,
        expected: [u8; 32],
        outcome: Result<Digest, String>,
    }
    let mut entries = Vec::new();
    let mut improper = Vec::new();
    let mut malformed = 0usize;
    for list in &args.files {
        let text = read_list(list).with_context(|| format!("reading checksum list {list}"))?;
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match parse_line(line) {
                Ok((expected, name)) => {
                    let outcome = digest_input(globals, args, mode, pool, &name).map_err(|e| e.to_string());
                    entries.push(Entry { name, expected, outcome });
                }
                Err(err) => {
                    let error = crate::output::error_text(&err);
                    if globals.json {
                        let line = number + 1;
                        improper.push(serde_json::json!({ "list": list, "line": line, "ok": false, "error": error }));
                    } else {
                        note!("cvm hash: {list}:{}: {error}", number + 1);
                    }
                    malformed += 1;
                }
            }
        }
    }
    pool.flush()?;
    let pooled_on = pooled_on(pool);
    let mut failures = 0usize;
    let mut json = Vec::new();
    for entry in entries {
        let (ok, backend) = match &entry.outcome {
            Ok(Digest::Pooled(handle)) => (pool.digest(*handle)? == entry.expected, Some(pooled_on)),
            Ok(Digest::Done(bytes)) => (bytes.as_slice() == entry.expected, Some("cpu")),
            Err(_) => (false, None),
        };
        failures += usize::from(!ok);
        if globals.json {
            let error = entry.outcome.as_ref().err();
            json.push(serde_json::json!({ "file": entry.name, "ok": ok, "error": error, "backend": backend }));
        } else if let Err(err) = &entry.outcome {
            out!("{}: FAILED ({err})", entry.name)?;
        } else if !ok {
            out!("{}: FAILED", entry.name)?;
        } else if !globals.quiet {
            out!("{}: OK", entry.name)?;
        }
    }
    if globals.json {
        // Improperly formatted lines are listed too, after the files checked.
        json.extend(improper);
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

/// The most a checksum list may hold (about 2.8 million lines), read
/// whole: a device or endless pipe named as a list stops here.
const MAX_LIST_BYTES: u64 = 256 << 20;

fn read_list(name: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let limit = MAX_LIST_BYTES + 1;
    match name {
        "-" => std::io::stdin().lock().take(limit).read_to_end(&mut bytes)?,
        path => File::open(Path::new(path))?.take(limit).read_to_end(&mut bytes)?,
    };
    if bytes.len() as u64 > MAX_LIST_BYTES {
        bail!("larger than {MAX_LIST_BYTES} bytes: not a checksum list");
    }
    String::from_utf8(bytes).context("not UTF-8 text")
}

/// 64 hex digits as 32 bytes; any other text is an error (never a panic:
/// the text is checked to be ASCII hex before it is cut into pairs).
fn parse_hex32(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    if let Some((at, c)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        bail!("{c:?} at position {at} is not a hex digit");
    }
    if hex.len() != 64 {
        bail!("expected 64 hex digits (32 bytes), got {} characters", hex.len());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
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
        // Non-ASCII text of 64 bytes: an error, not a panic.
        assert!(parse_hex32(&"é".repeat(32)).is_err());
        assert!(parse_line(&format!("{}  f", "ü".repeat(32))).is_err());
        assert!(parse_key(&[7; 32]).is_ok());
        assert!(parse_key(format!("{hex}\n").as_bytes()).is_ok());
        assert!(parse_key("é".repeat(32).as_bytes()).is_err());
    }
}
