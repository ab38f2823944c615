//! The Debug-mode execution trace: every executed instruction with the
//! registers it wrote and the memory it touched, in order, so a run can be
//! printed or stepped through after the fact.

use std::fmt;

use serde::Serialize;

use super::isa::Instruction;

/// At most this many bytes of each memory effect are kept in the trace.
pub const TRACED_BYTES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryEffect {
    pub access: Access,
    pub address: u32,
    /// Length of the whole access.
    pub len: u32,
    /// The bytes read or written (the first [`TRACED_BYTES`] of them).
    pub bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterWrite {
    pub register: u8,
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// Step number, from 0.
    pub step: u64,
    /// Code byte offset of the instruction.
    pub pc: usize,
    #[serde(serialize_with = "as_text")]
    pub instruction: Instruction,
    pub register_writes: Vec<RegisterWrite>,
    pub memory: Vec<MemoryEffect>,
    /// Hash requests filed, assertions recorded, the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn as_text<S: serde::Serializer>(instruction: &Instruction, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(instruction)
}

impl TraceStep {
    pub fn new(step: u64, pc: usize, instruction: Instruction) -> Self {
        TraceStep { step, pc, instruction, register_writes: Vec::new(), memory: Vec::new(), note: None }
    }

    pub fn memory(&mut self, access: Access, address: u32, bytes: &[u8]) {
        self.memory_of(access, address, bytes.len() as u32, bytes);
    }

    /// An access of `len` bytes, of which `bytes` holds at least the first
    /// [`TRACED_BYTES`] (or all, when fewer).
    pub fn memory_of(&mut self, access: Access, address: u32, len: u32, bytes: &[u8]) {
        let kept = &bytes[..bytes.len().min(TRACED_BYTES)];
        self.memory.push(MemoryEffect { access, address, len, bytes: kept.to_vec() });
    }
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<5} {:04x}: {:<32}", self.step, self.pc, self.instruction.to_string())?;
        for w in &self.register_writes {
            write!(f, " r{}={:#x}", w.register, w.value)?;
        }
        for m in &self.memory {
            let hex: String = m.bytes.iter().map(|b| format!("{b:02x}")).collect();
            let more = if (m.len as usize) > m.bytes.len() { "…" } else { "" };
            write!(f, " {}[{:#010x};{}]={hex}{more}", m.access, m.address, m.len)?;
        }
        if let Some(note) = &self.note {
            write!(f, " ; {note}")?;
        }
        Ok(())
    }
}

/// Steps a trace keeps of one run unless told fewer: the first half of
/// them and the last half; those between are counted, not kept (a looping
/// program's trace would otherwise take megabytes per operation).
pub const MAX_TRACED_STEPS: usize = 4096;

/// The steps of one run, in execution order (see [`MAX_TRACED_STEPS`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecutionTrace {
    pub steps: Vec<TraceStep>,
    /// Steps executed but not kept, between `steps[omitted_at - 1]` and
    /// `steps[omitted_at]`.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: u64,
    #[serde(skip_serializing_if = "is_omitted_nowhere")]
    pub omitted_at: usize,
    /// The last steps of a long run while it runs ([`ExecutionTrace::finish`]
    /// moves them into `steps`), at most this many.
    #[serde(skip)]
    tail: std::collections::VecDeque<TraceStep>,
    #[serde(skip)]
    head_len: usize,
    #[serde(skip)]
    tail_len: usize,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_omitted_nowhere(at: &usize) -> bool {
    *at == 0
}

impl Default for ExecutionTrace {
    fn default() -> Self {
        ExecutionTrace::keeping(MAX_TRACED_STEPS)
    }
}

impl ExecutionTrace {
    /// A trace that keeps at most `steps` steps (at least 2: the first and
    /// the last), half from the start and half from the end.
    pub fn keeping(steps: usize) -> Self {
        let steps = steps.max(2);
        ExecutionTrace {
            steps: Vec::new(),
            omitted: 0,
            omitted_at: 0,
            tail: std::collections::VecDeque::new(),
            head_len: steps - steps / 2,
            tail_len: steps / 2,
        }
    }

    /// Record the next step, keeping the first and last steps of a long run.
    pub fn push(&mut self, step: TraceStep) {
        if self.steps.len() < self.head_len {
            self.steps.push(step);
            return;
        }
        if self.tail.len() == self.tail_len {
            self.tail.pop_front();
            self.omitted += 1;
        }
        self.tail.push_back(step);
    }

    /// The run has ended: its last steps join the first ones.
    pub fn finish(&mut self) {
        if self.omitted > 0 {
            self.omitted_at = self.steps.len();
        }
        self.steps.extend(self.tail.drain(..));
    }

    /// The register file as it was after step `n` (for stepping through a run).
    pub fn registers_after(&self, n: usize) -> [u64; super::isa::REGISTER_COUNT] {
        let mut regs = [0u64; super::isa::REGISTER_COUNT];
        for step in self.steps.iter().take(n.saturating_add(1)) {
            for w in &step.register_writes {
                if let Some(slot) = regs.get_mut(w.register as usize) {
                    *slot = w.value;
                }
            }
        }
        regs
    }
}

impl fmt::Display for ExecutionTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, step) in self.steps.iter().enumerate() {
            if self.omitted > 0 && n == self.omitted_at {
                writeln!(f, "… {} steps not kept …", self.omitted)?;
            }
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}
