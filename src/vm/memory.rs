//! The VM's memory: one 32-bit address space cut into regions, read through
//! views of the resources and the context (nothing is copied up front), plus
//! a small writable scratch area.
//!
//! ```text
//! 0x0000_0000  SUBJECT   the resource whose logic runs        read-only
//! 0x0100_0000  CONTEXT   timestamp, operation, role, env...  read-only
//! 0x0200_0000  DATA      the program's data section           read-only
//! 0x0300_0000  SCRATCH   SCRATCH_SIZE bytes                   read-write
//! 0x1000_0000  OTHERS    other resource i at OTHERS_BASE + i * RESOURCE_SPAN,
//!                        read-only, and only when the operation's
//!                        capabilities make the others readable
//! ```
//!
//! A resource image is a header of u64 fields at offset 0 followed by one
//! 64 KiB window per byte field; the header holds a *slice*
//! (`address << 32 | length`) for each byte field so programs never compute
//! field addresses themselves. Byte fields longer than a window are visible
//! up to the window size. Everything else is unmapped: touching it is a
//! MemoryAccessViolation.

use crate::context::ExecutionContext;
use crate::resource::{OperationKind, ResourceRegister};

use super::Role;

pub const SUBJECT_BASE: u32 = 0x0000_0000;
pub const CONTEXT_BASE: u32 = 0x0100_0000;
pub const DATA_BASE: u32 = 0x0200_0000;
pub const SCRATCH_BASE: u32 = 0x0300_0000;
pub const OTHERS_BASE: u32 = 0x1000_0000;

/// Address space of one resource image (and of the context region).
pub const RESOURCE_SPAN: u32 = 0x0010_0000;
/// Size of one byte-field window inside an image.
pub const WINDOW: u32 = 0x1_0000;
/// Size of the writable scratch area.
pub const SCRATCH_SIZE: u32 = 4096;
/// Largest data section a program may carry (its region's span).
pub const DATA_MAX: u32 = 0x0100_0000;
/// How many other resources are addressable.
pub const MAX_OTHERS: u32 = (u32::MAX - OTHERS_BASE) / RESOURCE_SPAN;

/// Byte offsets of the u64 fields in a resource image header.
pub mod field {
    pub const QUANTITY: u32 = 0x00;
    pub const VERSION: u32 = 0x08;
    pub const STATE: u32 = 0x10;
    pub const ID: u32 = 0x18;
    pub const LOGIC: u32 = 0x20;
    pub const NULLIFIER_KEY_COMMITMENT: u32 = 0x28;
    pub const CONTROLLER: u32 = 0x30;
    pub const FUNGIBILITY_DOMAIN: u32 = 0x38;
    pub const DOMAIN: u32 = 0x40;
    pub const CONTENTS: u32 = 0x48;
    /// Size of the header.
    pub const HEADER_SIZE: u32 = 0x50;
}

/// Byte offsets of the u64 fields in the context header.
pub mod ctx_field {
    pub const TIMESTAMP: u32 = 0x00;
    pub const OPERATION: u32 = 0x08;
    pub const ROLE: u32 = 0x10;
    pub const OTHERS_COUNT: u32 = 0x18;
    pub const OTHERS_READABLE: u32 = 0x20;
    pub const DOMAIN: u32 = 0x28;
    pub const TRACE_ID: u32 = 0x30;
    pub const ENV_COUNT: u32 = 0x38;
    pub const HEADER_SIZE: u32 = 0x40;
}

/// Context windows: 1 domain, 2 trace id, then environment entry j's key at
/// window `ENV_FIRST_WINDOW + 2j` and its value at the next one.
const CTX_DOMAIN_WINDOW: u32 = 1;
const CTX_TRACE_WINDOW: u32 = 2;
const ENV_FIRST_WINDOW: u32 = 3;
/// Span of the context region, and how many environment entries it shows.
pub const CONTEXT_SPAN: u32 = DATA_BASE - CONTEXT_BASE;
pub const MAX_ENV_ENTRIES: usize = ((CONTEXT_SPAN / WINDOW - ENV_FIRST_WINDOW) / 2) as usize;
const RESOURCE_WINDOWS: u32 = 8;

/// `address << 32 | length`.
pub fn slice(address: u32, length: u32) -> u64 {
    (address as u64) << 32 | length as u64
}

pub fn slice_parts(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

/// The region an address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Subject,
    Context,
    Data,
    Scratch,
    Other(u32),
}

impl Region {
    /// The region containing `address`, or `None` when it is unmapped.
    pub fn of(address: u32) -> Option<(Region, u32)> {
        match address {
            a if a < CONTEXT_BASE => (a < RESOURCE_SPAN).then_some((Region::Subject, a)),
            a if a < DATA_BASE => Some((Region::Context, a - CONTEXT_BASE)),
            a if a < SCRATCH_BASE => Some((Region::Data, a - DATA_BASE)),
            a if a < SCRATCH_BASE + SCRATCH_SIZE => Some((Region::Scratch, a - SCRATCH_BASE)),
            a if a >= OTHERS_BASE => {
                let index = (a - OTHERS_BASE) / RESOURCE_SPAN;
                (index < MAX_OTHERS).then_some((Region::Other(index), (a - OTHERS_BASE) % RESOURCE_SPAN))
            }
            _ => None,
        }
    }

    pub fn name(self) -> String {
        match self {
            Region::Subject => "the subject resource".into(),
            Region::Context => "the context".into(),
            Region::Data => "the program's data".into(),
            Region::Scratch => "scratch".into(),
            Region::Other(i) => format!("other resource {i}"),
        }
    }
}

/// Why an access failed; the interpreter adds the pc and the access kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub address: u32,
    pub reason: String,
}

fn fault(address: u32, reason: impl Into<String>) -> Fault {
    Fault { address, reason: reason.into() }
}

/// Everything a program can address during one run.
pub struct Memory<'a> {
    pub subject: &'a ResourceRegister,
    pub others: &'a [&'a ResourceRegister],
    pub readable_others: bool,
    pub ctx: &'a ExecutionContext,
    pub operation: OperationKind,
    pub role: Role,
    pub data: &'a [u8],
    /// Allocated on the first write; reads of untouched scratch are zero.
    scratch: Option<Box<[u8]>>,
    /// The environment's keys in order, for ENV lookups.
    env_keys: std::cell::OnceCell<Vec<&'a str>>,
}

impl<'a> Memory<'a> {
    pub fn new(
        subject: &'a ResourceRegister,
        others: &'a [&'a ResourceRegister],
        readable_others: bool,
        ctx: &'a ExecutionContext,
        operation: OperationKind,
        role: Role,
        data: &'a [u8],
    ) -> Self {
        let env_keys = std::cell::OnceCell::new();
        Memory { subject, others, readable_others, ctx, operation, role, data, scratch: None, env_keys }
    }

    /// Call `f` with the `len` bytes at `address`; the range must lie inside
    /// one readable field, window or area. Nothing is copied (headers are
    /// built on the stack), so loads cost no allocation.
    pub fn with_bytes<R>(&self, address: u32, len: u32, f: impl FnOnce(&[u8]) -> R) -> Result<R, Fault> {
        let (region, offset) =
            Region::of(address).ok_or_else(|| fault(address, "address is not mapped to any region"))?;
        match region {
            Region::Subject => resource_read(self.subject, SUBJECT_BASE, address, offset, len, f),
            Region::Other(i) => {
                if !self.readable_others {
                    return Err(fault(
                        address,
                        format!("{}: the operation's capabilities do not allow reading other resources", region.name()),
                    ));
                }
                let other = self.others.get(i as usize).ok_or_else(|| {
                    fault(
                        address,
                        format!("{}: the operation has only {} other resources", region.name(), self.others.len()),
                    )
                })?;
                resource_read(other, OTHERS_BASE + i * RESOURCE_SPAN, address, offset, len, f)
            }
            Region::Context => self.context_read(address, offset, len, f),
            Region::Data => bounded(self.data, address, offset, len, "the program's data section").map(f),
            Region::Scratch => match &self.scratch {
                Some(bytes) => bounded(bytes, address, offset, len, "scratch").map(f),
                None => {
                    check_range(offset, len, SCRATCH_SIZE, address, "scratch")?;
                    Ok(f(&ZEROS[..len as usize]))
                }
            },
        }
    }

    /// A copy of the `len` bytes at `address`.
    pub fn read(&self, address: u32, len: u32) -> Result<Vec<u8>, Fault> {
        self.with_bytes(address, len, <[u8]>::to_vec)
    }

    /// A little-endian u64 at `address`.
    pub fn read_u64(&self, address: u32) -> Result<u64, Fault> {
        self.with_bytes(address, 8, le_word)
    }

    /// Call `f` with the bytes a slice value points at.
    pub fn with_slice<R>(&self, value: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R, Fault> {
        let (address, len) = slice_parts(value);
        if len == 0 {
            return Ok(f(&[]));
        }
        self.with_bytes(address, len, f)
    }

    /// Write `bytes` at `address`; only scratch is writable.
    pub fn write(&mut self, address: u32, bytes: &[u8]) -> Result<(), Fault> {
        let (region, offset) =
            Region::of(address).ok_or_else(|| fault(address, "address is not mapped to any region"))?;
        if region != Region::Scratch {
            return Err(fault(address, format!("{} is read-only; only scratch is writable", region.name())));
        }
        check_range(offset, bytes.len() as u32, SCRATCH_SIZE, address, "scratch")?;
        let scratch = self.scratch.get_or_insert_with(|| vec![0u8; SCRATCH_SIZE as usize].into_boxed_slice());
        let start = offset as usize;
        scratch[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// The slice of environment value `key`, or an empty slice when absent.
    /// Entries are found by binary search over their sorted keys (listed
    /// once per run, on its first lookup).
    pub fn env_lookup(&self, key: &[u8]) -> u64 {
        let Ok(key) = std::str::from_utf8(key) else { return 0 };
        let keys = self.env_keys.get_or_init(|| self.ctx.environment.keys().map(String::as_str).collect());
        let Ok(j) = keys.binary_search(&key) else { return 0 };
        if j >= MAX_ENV_ENTRIES {
            return 0;
        }
        let window = ENV_FIRST_WINDOW + 2 * j as u32 + 1;
        let len = self.ctx.environment.get(key).map_or(0, |v| window_len(v.len()));
        slice(CONTEXT_BASE + window * WINDOW, len)
    }

    fn context_header(&self) -> [u8; ctx_field::HEADER_SIZE as usize] {
        let ctx = self.ctx;
        let words = [
            ctx.timestamp,
            self.operation.code() as u64,
            self.role.code() as u64,
            self.others.len() as u64,
            self.readable_others as u64,
            slice(CONTEXT_BASE + CTX_DOMAIN_WINDOW * WINDOW, window_len(ctx.domain_id.as_str().len())),
            slice(CONTEXT_BASE + CTX_TRACE_WINDOW * WINDOW, window_len(ctx.trace_id.len())),
            ctx.environment.len() as u64,
        ];
        words_to_bytes(words)
    }

    fn context_read<R>(&self, address: u32, offset: u32, len: u32, f: impl FnOnce(&[u8]) -> R) -> Result<R, Fault> {
        let window = offset / WINDOW;
        let within = offset % WINDOW;
        if window == 0 {
            let header = self.context_header();
            return bounded(&header, address, within, len, "the context header").map(f);
        }
        let bytes: &[u8] = match window {
            CTX_DOMAIN_WINDOW => self.ctx.domain_id.as_str().as_bytes(),
            CTX_TRACE_WINDOW => self.ctx.trace_id.as_bytes(),
            w => {
                let entry = (w - ENV_FIRST_WINDOW) / 2;
                let (k, v) = self
                    .ctx
                    .environment
                    .iter()
                    .nth(entry as usize)
                    .ok_or_else(|| fault(address, format!("the context has no environment entry {entry}")))?;
                if (w - ENV_FIRST_WINDOW).is_multiple_of(2) {
                    k.as_bytes()
                } else {
                    v.as_bytes()
                }
            }
        };
        bounded(clip(bytes), address, within, len, "the context field").map(f)
    }
}

/// Untouched scratch reads as zeros without allocating it.
static ZEROS: [u8; SCRATCH_SIZE as usize] = [0; SCRATCH_SIZE as usize];

/// The first (up to) 8 bytes as a little-endian number.
pub fn le_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

fn window_len(len: usize) -> u32 {
    len.min(WINDOW as usize) as u32
}

fn clip(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(WINDOW as usize)]
}

fn words_to_bytes<const W: usize, const B: usize>(words: [u64; W]) -> [u8; B] {
    let mut out = [0u8; B];
    for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The byte fields of a resource image, in window order (window 1 onwards).
fn byte_fields(r: &ResourceRegister) -> [&[u8]; RESOURCE_WINDOWS as usize - 1] {
    [
        r.id.as_bytes(),
        r.logic.as_bytes(),
        &r.nullifier_key_commitment,
        r.controller.as_bytes(),
        r.fungibility_domain.as_bytes(),
        r.domain.as_str().as_bytes(),
        &r.contents,
    ]
}

/// Header word `k` of a resource image at `base`.
fn resource_word(r: &ResourceRegister, base: u32, k: usize) -> u64 {
    match k {
        0 => r.quantity,
        1 => r.version,
        2 => r.state.code() as u64,
        _ => {
            let field = k - 3;
            let len = byte_fields(r).get(field).map_or(0, |bytes| window_len(bytes.len()));
            slice(base + (field as u32 + 1) * WINDOW, len)
        }
    }
}

fn resource_header(r: &ResourceRegister, base: u32) -> [u8; field::HEADER_SIZE as usize] {
    words_to_bytes(std::array::from_fn::<u64, { field::HEADER_SIZE as usize / 8 }, _>(|k| resource_word(r, base, k)))
}

fn resource_read<R>(
    r: &ResourceRegister,
    base: u32,
    address: u32,
    offset: u32,
    len: u32,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, Fault> {
    let window = offset / WINDOW;
    let within = offset % WINDOW;
    if window == 0 {
        // The common case, an aligned field load, builds only that word.
        if len == 8 && within.is_multiple_of(8) && within < field::HEADER_SIZE {
            return Ok(f(&resource_word(r, base, within as usize / 8).to_le_bytes()));
        }
        let header = resource_header(r, base);
        return bounded(&header, address, within, len, "the resource header").map(f);
    }
    if window >= RESOURCE_WINDOWS {
        return Err(fault(address, "past the last field of the resource image"));
    }
    let bytes = clip(byte_fields(r)[window as usize - 1]);
    bounded(bytes, address, within, len, "the resource field").map(f)
}

fn check_range(offset: u32, len: u32, size: u32, address: u32, what: &str) -> Result<(), Fault> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(fault(address, format!("{len} bytes at offset {offset} run past the end of {what} ({size} bytes)"))),
    }
}

fn bounded<'b>(bytes: &'b [u8], address: u32, offset: u32, len: u32, what: &str) -> Result<&'b [u8], Fault> {
    check_range(offset, len, bytes.len() as u32, address, what)?;
    Ok(&bytes[offset as usize..(offset + len) as usize])
}
