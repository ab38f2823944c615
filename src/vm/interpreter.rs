//! The interpreter: runs one logic program for one resource of an operation,
//! under an instruction budget, over the memory of [`super::memory`].

use ark_bn254::Fr;

use crate::context::ExecutionContext;
use crate::crypto::field::field_from_bytes;
use crate::crypto::poseidon::{HashDomain, RATE};
use crate::error::ExecutionError;
use crate::hash::HashPool;
use crate::resource::{OperationKind, ResourceRegister};

use super::deferred::{DeferredAssertion, Request};
use super::isa::{Instruction, Reg, INSTRUCTION_SIZE, MAX_POSEIDON_INPUTS, REGISTER_COUNT};
use super::memory::{self, Fault, Memory, DATA_BASE};
use super::program::{Program, HEADER_SIZE};
use super::trace::{Access, ExecutionTrace, RegisterWrite, TraceStep, MAX_TRACED_STEPS};

/// Why the subject's logic runs: its part in the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// An input the operation consumes (Transfer, Delete).
    Consumed,
    /// An output the operation creates (Create, Transfer).
    Created,
    /// The resource a Read returns.
    Read,
    /// An Update's resource as it was.
    UpdatedBefore,
    /// An Update's resource as it would become.
    UpdatedAfter,
    /// The resource a Verify checks.
    Verified,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Consumed, Role::Created, Role::Read, Role::UpdatedBefore, Role::UpdatedAfter, Role::Verified];

    /// The number programs see in the context's role field.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What one logic run sees.
pub struct LogicInput<'a> {
    pub operation: OperationKind,
    pub role: Role,
    /// The resource whose logic runs.
    pub subject: &'a ResourceRegister,
    /// The other resources of the operation (its inputs and outputs).
    pub others: &'a [&'a ResourceRegister],
    /// Whether the operation's capabilities allow reading the others' fields;
    /// false makes every access to their region a MemoryAccessViolation.
    pub readable_others: bool,
    pub ctx: &'a ExecutionContext,
}

/// The result of an accepting run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogicOutcome {
    /// Instructions executed.
    pub instructions: u64,
    /// Digest-dependent assertions to check once the hash pool flushes.
    pub deferred: Vec<DeferredAssertion>,
    /// The instruction-level trace, when the interpreter traces (Debug mode).
    pub trace: Option<ExecutionTrace>,
}

/// A run's result together with its trace, which is kept even when the run
/// fails (what Debug mode shows).
pub struct TracedRun {
    pub result: Result<LogicOutcome, ExecutionError>,
    pub trace: ExecutionTrace,
    pub filings: Filings,
}

/// What a run filed that outlives it until the hash pool flushes: its
/// `HASH` and `POSEIDON` requests and its digest assertions, whether it
/// accepted or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filings {
    pub count: usize,
    /// The run stopped because one more filing would pass
    /// [`Interpreter::allowance`].
    pub over_allowance: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interpreter {
    /// Instructions a run may execute; one more is a Timeout.
    pub budget: u64,
    /// Record an [`ExecutionTrace`] (Debug mode).
    pub trace: bool,
    /// Requests and digest assertions a run may file (see [`Filings`]); one
    /// more stops it with an `InvalidInstruction`. A batch sets it to what
    /// its logic programs may still file, since everything they file stays
    /// in memory until the batch's flush.
    pub allowance: usize,
    /// Steps a traced run keeps ([`ExecutionTrace::keeping`]).
    pub trace_steps: usize,
}

/// The budget batch execution uses unless told otherwise.
pub const DEFAULT_BUDGET: u64 = 100_000;

/// Longest rejection reason carried into an error, in characters.
const MAX_REASON_CHARS: usize = 256;

/// Budget beyond the instruction itself: one unit for each this many bytes
/// a HASH, SLICEEQ or ENV reads, so a run's work is bounded by its budget
/// however long the slices it names.
pub const BYTES_PER_UNIT: u64 = 64;

/// Budget a `POSEIDON` costs beyond the instruction itself, per permutation
/// its sponge runs (one per two inputs): a permutation is about as much
/// work as BLAKE3 over 16 KB.
pub const UNITS_PER_PERMUTATION: u64 = 256;

impl Default for Interpreter {
    fn default() -> Self {
        Interpreter::new(DEFAULT_BUDGET)
    }
}

impl Interpreter {
    pub fn new(budget: u64) -> Self {
        Interpreter { budget, trace: false, allowance: usize::MAX, trace_steps: MAX_TRACED_STEPS }
    }

    pub fn with_trace(self) -> Self {
        Interpreter { trace: true, ..self }
    }

    /// Run `program` as the logic of `input.subject`. Accepting returns the
    /// outcome; everything else is an error (see the module docs of
    /// [`crate::vm`] for which variant means what). Hash requests go to
    /// `pool`; nothing is hashed here.
    pub fn run(
        &self,
        program: &Program,
        input: &LogicInput,
        pool: &mut HashPool,
    ) -> Result<LogicOutcome, ExecutionError> {
        self.run_metered(program, input, pool).0
    }

    /// [`Interpreter::run`], with what the run filed.
    pub fn run_metered(
        &self,
        program: &Program,
        input: &LogicInput,
        pool: &mut HashPool,
    ) -> (Result<LogicOutcome, ExecutionError>, Filings) {
        if !self.trace {
            let mut machine = Machine::new(program, input, self, None);
            let result = machine.run(pool);
            return (result, machine.filings);
        }
        let traced = self.run_traced(program, input, pool);
        (traced.result.map(|outcome| LogicOutcome { trace: Some(traced.trace), ..outcome }), traced.filings)
    }

    /// Run with a trace whatever `self.trace` says, keeping the trace of a
    /// failing run too.
    pub fn run_traced(&self, program: &Program, input: &LogicInput, pool: &mut HashPool) -> TracedRun {
        let mut trace = ExecutionTrace::keeping(self.trace_steps);
        let mut machine = Machine::new(program, input, self, Some(&mut trace));
        let result = machine.run(pool);
        let filings = machine.filings;
        trace.finish();
        TracedRun { result, trace, filings }
    }
}

/// The state of one run.
struct Machine<'a, 't> {
    program: &'a Program,
    input: &'a LogicInput<'a>,
    budget: u64,
    allowance: usize,
    filings: Filings,
    regs: [u64; REGISTER_COUNT],
    memory: Memory<'a>,
    pc: usize,
    executed: u64,
    /// Requests this run filed, by their number in the run: only these may
    /// be asserted on.
    handles: Vec<Request>,
    deferred: Vec<DeferredAssertion>,
    trace: Option<&'t mut ExecutionTrace>,
    step: Option<TraceStep>,
}

enum Flow {
    Next,
    Jump(usize),
    Accept,
}

impl<'a, 't> Machine<'a, 't> {
    fn new(
        program: &'a Program,
        input: &'a LogicInput<'a>,
        interpreter: &Interpreter,
        trace: Option<&'t mut ExecutionTrace>,
    ) -> Self {
        let memory = Memory::new(
            input.subject,
            input.others,
            input.readable_others,
            input.ctx,
            input.operation,
            input.role,
            program.data(),
        );
        Machine {
            program,
            input,
            budget: interpreter.budget,
            allowance: interpreter.allowance,
            filings: Filings::default(),
            regs: [0; REGISTER_COUNT],
            memory,
            pc: 0,
            executed: 0,
            handles: Vec::new(),
            deferred: Vec::new(),
            trace,
            step: None,
        }
    }

    fn run(&mut self, pool: &mut HashPool) -> Result<LogicOutcome, ExecutionError> {
        loop {
            let Some(&instruction) = self.program.at(self.pc) else {
                return Err(self.rejection(None, "the program ended without ACCEPT".into()));
            };
            if self.executed >= self.budget {
                return Err(self.timeout());
            }
            if self.trace.is_some() {
                self.step = Some(TraceStep::new(self.executed, self.pc, instruction));
            }
            self.executed += 1;
            let flow = self.execute(instruction, pool);
            if let (Some(trace), Some(step)) = (self.trace.as_deref_mut(), self.step.take()) {
                trace.push(step);
            }
            match flow? {
                Flow::Next => self.pc += INSTRUCTION_SIZE,
                Flow::Jump(target) => self.pc = target,
                Flow::Accept => {
                    let deferred = std::mem::take(&mut self.deferred);
                    return Ok(LogicOutcome { instructions: self.executed, deferred, trace: None });
                }
            }
        }
    }

    fn execute(&mut self, instruction: Instruction, pool: &mut HashPool) -> Result<Flow, ExecutionError> {
        use Instruction::*;
        match instruction {
            Nop => {}
            Accept => {
                self.note("accept");
                return Ok(Flow::Accept);
            }
            Reject { reason, code } => {
                let text = match self.get(reason) {
                    0 => String::new(),
                    value => {
                        // Only as many bytes as the reason can show are read.
                        let (address, len) = memory::slice_parts(value);
                        let shown = len.min(4 * MAX_REASON_CHARS as u32);
                        let bytes = self.read_slice(memory::slice(address, shown))?;
                        String::from_utf8_lossy(&bytes).chars().take(MAX_REASON_CHARS).collect()
                    }
                };
                self.note(&format!("reject code {code}"));
                return Err(self.rejection(Some(code), text));
            }
            LoadImm { rd, imm } => self.set(rd, imm as u64),
            LoadHigh { rd, imm } => self.set(rd, (self.get(rd) & 0xffff_ffff) | (imm as u64) << 32),
            Str { rd, offset } => {
                let text = self.data_string(offset)?;
                self.set(rd, text);
            }
            Mov { rd, ra } => self.set(rd, self.get(ra)),
            Load { rd, addr } => {
                let value = self.load(addr, 8)?;
                self.set(rd, value);
            }
            LoadR { rd, base, offset } => {
                let addr = self.address(base, offset, Access::Read)?;
                let value = self.load(addr, 8)?;
                self.set(rd, value);
            }
            LoadByte { rd, base, offset } => {
                let addr = self.address(base, offset, Access::Read)?;
                let value = self.load(addr, 1)?;
                self.set(rd, value);
            }
            Store { src, addr } => self.store(addr, &self.get(src).to_le_bytes())?,
            StoreR { src, base, offset } => {
                let addr = self.address(base, offset, Access::Write)?;
                self.store(addr, &self.get(src).to_le_bytes())?;
            }
            StoreByte { src, base, offset } => {
                let addr = self.address(base, offset, Access::Write)?;
                self.store(addr, &[self.get(src) as u8])?;
            }
            Bin { op, rd, ra, rb } => {
                let (a, b) = (self.get(ra), self.get(rb));
                let value = op.apply(a, b).ok_or_else(|| self.arithmetic_trap(instruction, a, b))?;
                self.set(rd, value);
            }
            AddImm { rd, ra, imm } => {
                let a = self.get(ra);
                let value =
                    a.checked_add(imm as u64).ok_or_else(|| self.arithmetic_trap(instruction, a, imm as u64))?;
                self.set(rd, value);
            }
            Not { rd, ra } => self.set(rd, (self.get(ra) == 0) as u64),
            SliceEq { rd, ra, rb } => {
                let equal = self.compare_slices(self.get(ra), self.get(rb))?;
                self.set(rd, equal as u64);
            }
            SliceEqData { rd, ra, offset } => {
                let text = self.data_string(offset)?;
                let equal = self.compare_slices(self.get(ra), text)?;
                self.set(rd, equal as u64);
            }
            CmpImm { cmp, rd, ra, imm } => self.set(rd, cmp.holds(self.get(ra), imm as u64) as u64),
            Jmp { target } => return Ok(Flow::Jump(target as usize)),
            Jz { cond, target } if self.get(cond) == 0 => return Ok(Flow::Jump(target as usize)),
            Jnz { cond, target } if self.get(cond) != 0 => return Ok(Flow::Jump(target as usize)),
            Jz { .. } | Jnz { .. } => {}
            JumpCmpImm { cmp, ra, imm, target } if cmp.holds(self.get(ra), imm as u64) => {
                return Ok(Flow::Jump(target as usize));
            }
            JumpCmpImm { .. } => {}
            Hash { rd, ra } => {
                self.file()?;
                self.charge_bytes(memory::slice_parts(self.get(ra)).1 as u64)?;
                let bytes = self.read_slice(self.get(ra))?;
                self.filed(rd, Request::Blake3(pool.hash(bytes)), "hash");
            }
            Poseidon { rd, ra } => self.poseidon(rd, ra, pool)?,
            AssertDigest { handle, expected } => self.assert_digest(handle, expected)?,
            Env { rd, key } => {
                self.charge_bytes(memory::slice_parts(self.get(key)).1 as u64)?;
                let key_bytes = self.read_slice(self.get(key))?;
                let value = self.memory.env_lookup(&key_bytes);
                self.set(rd, value);
            }
        }
        Ok(Flow::Next)
    }

    /// `POSEIDON rd, ra`: the slice's elements checked and filed under the
    /// logic domain; `rd` = the request's number in this run.
    fn poseidon(&mut self, rd: Reg, ra: Reg, pool: &mut HashPool) -> Result<(), ExecutionError> {
        let len = memory::slice_parts(self.get(ra)).1 as usize;
        if len == 0 || !len.is_multiple_of(32) || len > 32 * MAX_POSEIDON_INPUTS {
            return Err(self.trap(format!(
                "the inputs are {len} bytes; POSEIDON takes 1 to {MAX_POSEIDON_INPUTS} field elements of 32 bytes"
            )));
        }
        let permutations = (len / 32).div_ceil(RATE) as u64;
        self.file()?;
        self.charge_bytes(len as u64)?;
        self.charge_units(permutations * UNITS_PER_PERMUTATION)?;
        let bytes = self.read_slice(self.get(ra))?;
        let inputs = bytes
            .chunks_exact(32)
            .enumerate()
            .map(|(i, chunk)| {
                field_from_bytes(chunk.try_into().expect("32 bytes")).ok_or_else(|| {
                    self.trap(format!(
                        "input element {i} is not a canonical BN254 scalar (little-endian, below the modulus)"
                    ))
                })
            })
            .collect::<Result<Vec<Fr>, _>>()?;
        let handle = pool.poseidon(HashDomain::Logic, &inputs).map_err(|e| self.trap(e.to_string()))?;
        self.filed(rd, Request::Poseidon(handle), "Poseidon");
        Ok(())
    }

    /// Keep a request this run filed and give the program its number. The
    /// program sees the request's number within this run, never the pool's
    /// handle: where the operation sits in its batch (and on which thread it
    /// ran) must not change what its logic does.
    fn filed(&mut self, rd: Reg, request: Request, kind: &str) {
        let number = self.handles.len() as u64;
        self.handles.push(request);
        self.note(&format!("{kind} request filed: handle {number}"));
        self.set(rd, number);
    }

    fn assert_digest(&mut self, handle: Reg, expected: Reg) -> Result<(), ExecutionError> {
        let value = self.get(handle);
        let number = usize::try_from(value).ok().filter(|&n| n < self.handles.len());
        let handle = number
            .map(|n| self.handles[n])
            .ok_or_else(|| self.trap(format!("{value} is not a handle this run's HASH or POSEIDON returned")))?;
        let bytes = self.read_slice(self.get(expected))?;
        let expected: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| self.trap(format!("the expected digest is {} bytes; a digest is 32", bytes.len())))?;
        self.file()?;
        self.note(&format!("deferred assertion on handle {value}"));
        let (logic, resource, pc) = (self.input.subject.logic, self.input.subject.id, self.pc as u32);
        self.deferred.push(DeferredAssertion { handle, expected, logic, resource, pc });
        Ok(())
    }

    /// Count one more request or assertion, unless it would pass the
    /// allowance (checked before the work it is charged for).
    fn file(&mut self) -> Result<(), ExecutionError> {
        if self.filings.count >= self.allowance {
            self.filings.over_allowance = true;
            return Err(self.trap(format!(
                "this run may file {} hash requests and digest assertions (what its batch may still hold until its \
                 hashes are resolved), and this is one more",
                self.allowance
            )));
        }
        self.filings.count += 1;
        Ok(())
    }

    /// Charge `bytes` of work to the budget (see [`BYTES_PER_UNIT`]).
    fn charge_bytes(&mut self, bytes: u64) -> Result<(), ExecutionError> {
        self.charge_units(bytes.div_ceil(BYTES_PER_UNIT))
    }

    /// Charge `units` of work beyond the instruction to the budget.
    fn charge_units(&mut self, units: u64) -> Result<(), ExecutionError> {
        self.executed = self.executed.saturating_add(units);
        if self.executed > self.budget {
            return Err(self.timeout());
        }
        Ok(())
    }

    fn timeout(&self) -> ExecutionError {
        ExecutionError::Timeout { program: self.input.subject.logic.to_string(), budget: self.budget }
    }

    fn get(&self, r: Reg) -> u64 {
        self.regs[r.index()]
    }

    fn set(&mut self, r: Reg, value: u64) {
        self.regs[r.index()] = value;
        if let Some(step) = self.step.as_mut() {
            step.register_writes.push(RegisterWrite { register: r.byte(), value });
        }
    }

    fn note(&mut self, text: &str) {
        if let Some(step) = self.step.as_mut() {
            step.note = Some(text.to_string());
        }
    }

    /// `base + offset` as an address; past 2^32 is a violation.
    fn address(&self, base: Reg, offset: u32, access: Access) -> Result<u32, ExecutionError> {
        let sum = self.get(base).checked_add(offset as u64).filter(|a| *a <= u32::MAX as u64);
        sum.map(|a| a as u32).ok_or_else(|| ExecutionError::MemoryAccessViolation {
            pc: self.pc,
            address: u32::MAX,
            access: access.to_string(),
            reason: format!("address {} + {offset} is beyond the 32-bit address space", self.get(base)),
        })
    }

    fn load(&mut self, addr: u32, len: u32) -> Result<u64, ExecutionError> {
        let step = &mut self.step;
        let value = self
            .memory
            .with_bytes(addr, len, |bytes| {
                if let Some(step) = step.as_mut() {
                    step.memory(Access::Read, addr, bytes);
                }
                memory::le_word(bytes)
            })
            .map_err(|f| violation(self.pc, Access::Read, f))?;
        Ok(value)
    }

    fn store(&mut self, addr: u32, bytes: &[u8]) -> Result<(), ExecutionError> {
        self.memory.write(addr, bytes).map_err(|f| violation(self.pc, Access::Write, f))?;
        if let Some(step) = self.step.as_mut() {
            step.memory(Access::Write, addr, bytes);
        }
        Ok(())
    }

    /// The bytes of a slice value, recorded in the trace.
    fn read_slice(&mut self, value: u64) -> Result<Vec<u8>, ExecutionError> {
        let bytes = self.memory.with_slice(value, <[u8]>::to_vec).map_err(|f| violation(self.pc, Access::Read, f))?;
        self.trace_read(value, &bytes);
        Ok(bytes)
    }

    /// The slice of the length-prefixed string at data offset `offset`.
    fn data_string(&self, offset: u32) -> Result<u64, ExecutionError> {
        let len = self.program.string_at(offset).map(|s| s.len() as u32);
        let len = len.ok_or_else(|| self.trap(format!("no string at data offset {offset}")))?;
        Ok(memory::slice(DATA_BASE + offset + 4, len))
    }

    /// `SEQ`'s comparison: slices of equal length cost their bytes in budget.
    fn compare_slices(&mut self, a: u64, b: u64) -> Result<bool, ExecutionError> {
        let len = memory::slice_parts(a).1;
        if len == memory::slice_parts(b).1 {
            self.charge_bytes(len as u64)?;
        }
        self.slices_equal(a, b)
    }

    /// Whether the bytes of two slices are equal, compared in place.
    fn slices_equal(&mut self, a: u64, b: u64) -> Result<bool, ExecutionError> {
        let memory = &self.memory;
        let equal = memory
            .with_slice(a, |x| memory.with_slice(b, |y| x == y))
            .and_then(|inner| inner)
            .map_err(|f| violation(self.pc, Access::Read, f))?;
        if self.step.is_some() {
            // Only when tracing, and only what the trace keeps: a copy of
            // each whole slice would cost its length at every compare,
            // uncharged (a 16 MiB slice compared in a loop).
            for value in [a, b] {
                let (address, len) = memory::slice_parts(value);
                let kept = memory
                    .with_slice(value, |x| x[..x.len().min(super::trace::TRACED_BYTES)].to_vec())
                    .map_err(|f| violation(self.pc, Access::Read, f))?;
                if let Some(step) = self.step.as_mut() {
                    step.memory_of(Access::Read, address, len, &kept);
                }
            }
        }
        Ok(equal)
    }

    fn trace_read(&mut self, value: u64, bytes: &[u8]) {
        if let Some(step) = self.step.as_mut() {
            step.memory(Access::Read, memory::slice_parts(value).0, bytes);
        }
    }

    fn trap(&self, reason: String) -> ExecutionError {
        let instruction = self.program.at(self.pc).map(|i| i.to_string()).unwrap_or_default();
        ExecutionError::InvalidInstruction {
            offset: HEADER_SIZE + self.pc,
            reason: format!("{instruction} at pc 0x{:04x}: {reason}", self.pc),
        }
    }

    fn arithmetic_trap(&self, instruction: Instruction, a: u64, b: u64) -> ExecutionError {
        let what = match instruction {
            Instruction::Bin { op: super::isa::BinOp::Div | super::isa::BinOp::Mod, .. } => "division by zero",
            _ => "arithmetic overflow",
        };
        self.trap(format!("{what} (operands {a} and {b})"))
    }

    /// A rejection by the logic: `InvalidResourceState` naming the program,
    /// the pc, the code and the reason.
    fn rejection(&self, code: Option<u32>, reason: String) -> ExecutionError {
        let subject = self.input.subject;
        let code = code.map(|c| format!(": code {c}")).unwrap_or_default();
        let reason = if reason.is_empty() { String::new() } else { format!(": {reason}") };
        ExecutionError::InvalidResourceState {
            id: subject.id,
            state: subject.state,
            reason: format!("rejected by logic {} at pc 0x{:04x}{code}{reason}", subject.logic, self.pc),
        }
    }
}

fn violation(pc: usize, access: Access, fault: Fault) -> ExecutionError {
    ExecutionError::MemoryAccessViolation {
        pc,
        address: fault.address,
        access: access.to_string(),
        reason: fault.reason,
    }
}
