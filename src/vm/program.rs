//! Programs: the canonical binary encoding, its fully validating decoder and
//! the disassembler.
//!
//! ```text
//! offset 0   magic  "CVMP"
//!        4   format version (u16 LE): the newest format any instruction
//!            of the code needs (see `Instruction::format`): 1, 2 or 3
//!        6   flags (u16 LE) = 0
//!        8   instruction count (u32 LE)
//!       12   data length in bytes (u32 LE)
//!       16   code: count x 8-byte instructions
//!        …   data: strings and constants the code refers to
//! ```
//!
//! Anything else (a trailing byte, a set flag, an unused operand that is not
//! zero) fails decoding, so `decode(encode(p)) == p` and `encode(decode(b)) == b`:
//! a program has exactly one encoding and so exactly one ContentId. The
//! version is the program's own format, not this VM's newest, so a program
//! that uses no newer instruction keeps the bytes (and id) it always had.

use std::fmt::Write as _;

use crate::error::ExecutionError;

use super::isa::{Instruction, INSTRUCTION_SIZE};
use super::memory::{Region, DATA_MAX};

pub const MAGIC: [u8; 4] = *b"CVMP";
/// The newest program format this VM runs.
pub const FORMAT_VERSION: u16 = 3;
pub const HEADER_SIZE: usize = 16;
/// The most instructions a program may have.
pub const MAX_INSTRUCTIONS: usize = 1 << 20;

/// A decoded, validated logic program. The only ways to get one are
/// [`Program::new`] and [`Program::decode`], which check the same rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Program {
    code: Vec<Instruction>,
    data: Vec<u8>,
}

fn invalid(offset: usize, reason: impl Into<String>) -> ExecutionError {
    ExecutionError::InvalidInstruction { offset, reason: reason.into() }
}

impl Program {
    /// Validate and build a program. Errors name the byte offset the
    /// instruction would have in the encoding.
    pub fn new(code: Vec<Instruction>, data: Vec<u8>) -> Result<Program, ExecutionError> {
        let program = Program { code, data };
        program.validate()?;
        Ok(program)
    }

    pub fn instructions(&self) -> &[Instruction] {
        &self.code
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Size of the code section in bytes (the end of the pc range).
    pub fn code_size(&self) -> usize {
        self.code.len() * INSTRUCTION_SIZE
    }

    /// The instruction at code byte offset `pc`.
    pub fn at(&self, pc: usize) -> Option<&Instruction> {
        if !pc.is_multiple_of(INSTRUCTION_SIZE) {
            return None;
        }
        self.code.get(pc / INSTRUCTION_SIZE)
    }

    /// The program's format: the newest that any of its instructions needs.
    pub fn format(&self) -> u16 {
        self.code.iter().map(Instruction::format).max().unwrap_or(1)
    }

    /// The canonical encoding; its BLAKE3 is the program's ContentId.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + self.code_size() + self.data.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.format().to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.code.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        for instruction in &self.code {
            out.extend_from_slice(&instruction.encode());
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Decode and fully validate an encoding. Every failure is
    /// `InvalidInstruction { offset, reason }` with the byte offset in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Program, ExecutionError> {
        if bytes.len() < HEADER_SIZE {
            return Err(invalid(
                bytes.len(),
                format!("truncated header: {} bytes, a program starts with {HEADER_SIZE}", bytes.len()),
            ));
        }
        if bytes[0..4] != MAGIC {
            return Err(invalid(
                0,
                "not a causality-vm program: it does not start with the magic \"CVMP\" (TEL sources need the .tel extension)".to_string(),
            ));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(invalid(
                4,
                format!("unsupported program format version {version} (this VM runs formats 1 to {FORMAT_VERSION})"),
            ));
        }
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if flags != 0 {
            return Err(invalid(6, format!("unknown flags 0x{flags:04x} (must be 0)")));
        }
        let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if count > MAX_INSTRUCTIONS {
            return Err(invalid(8, format!("{count} instructions: more than the limit of {MAX_INSTRUCTIONS}")));
        }
        let data_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        if data_len > DATA_MAX as usize {
            return Err(invalid(12, format!("data section of {data_len} bytes: more than the limit of {DATA_MAX}")));
        }
        let code_end = HEADER_SIZE + count * INSTRUCTION_SIZE;
        let expected = code_end + data_len;
        if bytes.len() < expected {
            return Err(invalid(
                bytes.len(),
                format!(
                    "truncated: the header announces {count} instructions and {data_len} data bytes \
                     ({expected} bytes in all) but the program has {} bytes",
                    bytes.len()
                ),
            ));
        }
        if bytes.len() > expected {
            return Err(invalid(expected, format!("{} trailing bytes after the data section", bytes.len() - expected)));
        }
        let mut code = Vec::with_capacity(count);
        for (index, chunk) in bytes[HEADER_SIZE..code_end].chunks_exact(INSTRUCTION_SIZE).enumerate() {
            let mut raw = [0u8; INSTRUCTION_SIZE];
            raw.copy_from_slice(chunk);
            let at = HEADER_SIZE + index * INSTRUCTION_SIZE;
            let instruction = Instruction::decode(raw).map_err(|reason| invalid(at, reason))?;
            if instruction.format() > version {
                return Err(invalid(
                    at,
                    format!(
                        "{instruction} needs program format {}, but the header says {version}",
                        instruction.format()
                    ),
                ));
            }
            code.push(instruction);
        }
        let program = Program::new(code, bytes[code_end..].to_vec())?;
        if program.format() != version {
            // One encoding per program: a format-2 header on format-1 code would
            // give the same program a second ContentId.
            return Err(invalid(
                4,
                format!(
                    "format version {version}, but the code uses only format-{} instructions, so its version must be {}",
                    program.format(),
                    program.format()
                ),
            ));
        }
        Ok(program)
    }

    /// The checks that need the whole program: jump targets, absolute
    /// addresses, data offsets, sizes.
    fn validate(&self) -> Result<(), ExecutionError> {
        let code_size = self.code_size();
        if self.code.len() > MAX_INSTRUCTIONS {
            return Err(invalid(
                8,
                format!("{} instructions: more than the limit of {MAX_INSTRUCTIONS}", self.code.len()),
            ));
        }
        if self.data.len() > DATA_MAX as usize {
            return Err(invalid(12, format!("data section of {} bytes: more than {DATA_MAX}", self.data.len())));
        }
        for (index, instruction) in self.code.iter().enumerate() {
            let offset = HEADER_SIZE + index * INSTRUCTION_SIZE;
            let pc = index * INSTRUCTION_SIZE;
            if let Some(target) = instruction.jump_target() {
                let target = target as usize;
                if !target.is_multiple_of(INSTRUCTION_SIZE) {
                    return Err(invalid(
                        offset,
                        format!("{instruction} at pc 0x{pc:04x}: jump target 0x{target:04x} is not a multiple of {INSTRUCTION_SIZE}"),
                    ));
                }
                if target >= code_size {
                    return Err(invalid(
                        offset,
                        format!("{instruction} at pc 0x{pc:04x}: jump target 0x{target:04x} is outside the code (0x{code_size:04x} bytes)"),
                    ));
                }
            }
            match *instruction {
                Instruction::Load { addr, .. } | Instruction::Store { addr, .. } if Region::of(addr).is_none() => {
                    return Err(invalid(
                        offset,
                        format!("{instruction} at pc 0x{pc:04x}: address 0x{addr:08x} is in no memory region"),
                    ));
                }
                Instruction::Str { offset: at, .. } | Instruction::SliceEqData { offset: at, .. } => {
                    self.check_string(at, offset, pc, instruction)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_string(&self, at: u32, offset: usize, pc: usize, instruction: &Instruction) -> Result<(), ExecutionError> {
        let at = at as usize;
        let len = self
            .data
            .get(at..at.saturating_add(4))
            .filter(|b| b.len() == 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| {
                invalid(
                    offset,
                    format!(
                        "{instruction} at pc 0x{pc:04x}: no string length at data offset {at} (data has {} bytes)",
                        self.data.len()
                    ),
                )
            })?;
        if at + 4 + len > self.data.len() {
            return Err(invalid(
                offset,
                format!("{instruction} at pc 0x{pc:04x}: string of {len} bytes at data offset {at} runs past the data section ({} bytes)", self.data.len()),
            ));
        }
        Ok(())
    }

    /// The string `Str` at data offset `at` refers to (lossy UTF-8), if valid.
    pub fn string_at(&self, at: u32) -> Option<&[u8]> {
        let at = at as usize;
        let head = self.data.get(at..at.checked_add(4)?)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        self.data.get(at + 4..(at + 4).checked_add(len)?)
    }

    /// One line per instruction: code offset, encoding, mnemonic, and the
    /// text of strings the instruction loads; then the data section in hex.
    pub fn disassemble(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "; causality-vm program, format {}: {} instructions, {} data bytes",
            self.format(),
            self.code.len(),
            self.data.len()
        );
        for (index, instruction) in self.code.iter().enumerate() {
            let pc = index * INSTRUCTION_SIZE;
            let hex: String = instruction.encode().iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(out, "{pc:04x}:  {hex}  {instruction}");
            if let Instruction::Str { offset, .. } | Instruction::SliceEqData { offset, .. } = instruction {
                if let Some(text) = self.string_at(*offset) {
                    let _ = write!(out, "    ; {:?}", String::from_utf8_lossy(text));
                }
            }
            out.push('\n');
        }
        if !self.data.is_empty() {
            let _ = writeln!(out, "; data");
            for (row, chunk) in self.data.chunks(16).enumerate() {
                let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(out, "data+{:04x}:  {}", row * 16, hex.join(" "));
            }
        }
        out
    }
}
