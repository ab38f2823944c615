//! What both code generators share: the instruction list, the data section
//! with its strings stored once, labels and the jumps patched to them.

use std::collections::HashMap;

use super::error::{Pos, TelError};
use crate::vm::{Instruction, Program, Reg, INSTRUCTION_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(pub usize);

#[derive(Default)]
pub struct Emitter {
    code: Vec<Instruction>,
    data: Vec<u8>,
    strings: HashMap<String, u32>,
    /// Label → instruction index, once placed.
    labels: Vec<Option<usize>>,
    /// (instruction index, label) of jumps to patch.
    fixups: Vec<(usize, Label)>,
}

impl Emitter {
    pub fn emit(&mut self, instruction: Instruction) {
        self.code.push(instruction);
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn place(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    pub fn is_placed(&self, label: Label) -> bool {
        self.labels[label.0].is_some()
    }

    /// Emit the jump `make(target)`, its target patched once `to` is placed.
    pub fn jump(&mut self, make: impl Fn(u32) -> Instruction, to: Label) {
        self.fixups.push((self.code.len(), to));
        self.emit(make(0));
    }

    /// The data offset of `text`, stored (length-prefixed) on first use.
    pub fn string_offset(&mut self, text: &str) -> u32 {
        if let Some(offset) = self.strings.get(text) {
            return *offset;
        }
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.data.extend_from_slice(text.as_bytes());
        self.strings.insert(text.to_string(), offset);
        offset
    }

    pub fn string(&mut self, rd: Reg, text: &str) {
        let offset = self.string_offset(text);
        self.emit(Instruction::Str { rd, offset });
    }

    /// Any u64 constant: `LDI`, and `LDHI` when it needs the high half.
    pub fn constant(&mut self, rd: Reg, value: u64) {
        self.emit(Instruction::LoadImm { rd, imm: value as u32 });
        if value >> 32 != 0 {
            self.emit(Instruction::LoadHigh { rd, imm: (value >> 32) as u32 });
        }
    }

    /// Patch the jumps and validate the program.
    pub fn finish(mut self) -> Result<Program, TelError> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let index = self.labels[label.0].unwrap_or(self.code.len());
            let target = (index * INSTRUCTION_SIZE) as u32;
            self.code[at] = match self.code[at] {
                Instruction::Jmp { .. } => Instruction::Jmp { target },
                Instruction::Jz { cond, .. } => Instruction::Jz { cond, target },
                Instruction::Jnz { cond, .. } => Instruction::Jnz { cond, target },
                Instruction::JumpCmpImm { cmp, ra, imm, .. } => Instruction::JumpCmpImm { cmp, ra, imm, target },
                other => other,
            };
        }
        let size = (self.code.len(), self.data.len());
        Program::new(self.code, self.data).map_err(|e| {
            TelError::at(
                Pos { line: 1, col: 1 },
                format!(
                    "the compiled program ({} instructions, {} bytes of strings) is more than the VM accepts: {e}; \
                     shorten the string literals or split the rules",
                    size.0, size.1
                ),
            )
        })
    }
}
