//! The instruction set: registers, opcodes, and one typed `Instruction` per
//! opcode. Every instruction encodes to exactly [`INSTRUCTION_SIZE`] bytes:
//! `[opcode, a, b, c, imm (u32 little-endian)]`; operand bytes an opcode does
//! not use must be zero, so every program has exactly one encoding.

use std::fmt;

/// Bytes per encoded instruction. Jump targets and the pc are byte offsets
/// into the code section and always multiples of this.
pub const INSTRUCTION_SIZE: usize = 8;

/// Number of general-purpose 64-bit registers.
pub const REGISTER_COUNT: usize = 16;

/// A register index, always below [`REGISTER_COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(u8);

impl Reg {
    /// r0 … r15.
    pub const ALL: [Reg; REGISTER_COUNT] = {
        let mut all = [Reg(0); REGISTER_COUNT];
        let mut i = 0;
        while i < REGISTER_COUNT {
            all[i] = Reg(i as u8);
            i += 1;
        }
        all
    };

    pub const fn new(index: u8) -> Option<Reg> {
        if (index as usize) < REGISTER_COUNT {
            Some(Reg(index))
        } else {
            None
        }
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn byte(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Two-register arithmetic, bitwise and comparison operations. Arithmetic is
/// checked: overflow, underflow and division by zero trap. Comparisons are
/// unsigned and write 1 or 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub const ALL: [BinOp; 14] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Mod,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
    ];

    pub fn mnemonic(self) -> &'static str {
        match self {
            BinOp::Add => "ADD",
            BinOp::Sub => "SUB",
            BinOp::Mul => "MUL",
            BinOp::Div => "DIV",
            BinOp::Mod => "MOD",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Xor => "XOR",
            BinOp::Eq => "EQ",
            BinOp::Ne => "NE",
            BinOp::Lt => "LT",
            BinOp::Le => "LE",
            BinOp::Gt => "GT",
            BinOp::Ge => "GE",
        }
    }

    /// Apply the operation; `None` means the arithmetic trapped.
    pub fn apply(self, a: u64, b: u64) -> Option<u64> {
        match self {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            BinOp::Div => a.checked_div(b),
            BinOp::Mod => a.checked_rem(b),
            BinOp::And => Some(a & b),
            BinOp::Or => Some(a | b),
            BinOp::Xor => Some(a ^ b),
            BinOp::Eq => Some((a == b) as u64),
            BinOp::Ne => Some((a != b) as u64),
            BinOp::Lt => Some((a < b) as u64),
            BinOp::Le => Some((a <= b) as u64),
            BinOp::Gt => Some((a > b) as u64),
            BinOp::Ge => Some((a >= b) as u64),
        }
    }

    fn index(self) -> u8 {
        BinOp::ALL.iter().position(|op| *op == self).unwrap_or(0) as u8
    }
}

/// The comparisons `CMPI` makes against an immediate (format 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Compare {
    pub const ALL: [Compare; 6] = [Compare::Eq, Compare::Ne, Compare::Lt, Compare::Le, Compare::Gt, Compare::Ge];

    /// The two-register operation this compares like.
    pub fn bin_op(self) -> BinOp {
        match self {
            Compare::Eq => BinOp::Eq,
            Compare::Ne => BinOp::Ne,
            Compare::Lt => BinOp::Lt,
            Compare::Le => BinOp::Le,
            Compare::Gt => BinOp::Gt,
            Compare::Ge => BinOp::Ge,
        }
    }

    /// Whether `a <cmp> b` holds (unsigned).
    pub fn holds(self, a: u64, b: u64) -> bool {
        // A comparison never traps and gives 1 or 0.
        self.bin_op().apply(a, b) == Some(1)
    }

    /// The comparison a two-register operation makes, if it is one.
    pub fn of(op: BinOp) -> Option<Compare> {
        Compare::ALL.into_iter().find(|c| c.bin_op() == op)
    }

    /// The comparison that holds exactly when this one does not.
    pub fn negated(self) -> Compare {
        match self {
            Compare::Eq => Compare::Ne,
            Compare::Ne => Compare::Eq,
            Compare::Lt => Compare::Ge,
            Compare::Le => Compare::Gt,
            Compare::Gt => Compare::Le,
            Compare::Ge => Compare::Lt,
        }
    }

    /// The comparison with its operands swapped: `a < b` is `b > a`.
    pub fn swapped(self) -> Compare {
        match self {
            Compare::Lt => Compare::Gt,
            Compare::Le => Compare::Ge,
            Compare::Gt => Compare::Lt,
            Compare::Ge => Compare::Le,
            same => same,
        }
    }

    pub fn mnemonic(self) -> &'static str {
        match self {
            Compare::Eq => "EQI",
            Compare::Ne => "NEI",
            Compare::Lt => "LTI",
            Compare::Le => "LEI",
            Compare::Gt => "GTI",
            Compare::Ge => "GEI",
        }
    }

    fn index(self) -> u8 {
        Compare::ALL.iter().position(|c| *c == self).unwrap_or(0) as u8
    }
}

/// Opcode bytes. Gaps are reserved and fail decoding.
pub mod opcode {
    pub const NOP: u8 = 0x00;
    pub const ACCEPT: u8 = 0x01;
    pub const REJECT: u8 = 0x02;
    pub const LDI: u8 = 0x10;
    pub const LDHI: u8 = 0x11;
    pub const STR: u8 = 0x12;
    pub const MOV: u8 = 0x13;
    pub const LOAD: u8 = 0x20;
    pub const LOADR: u8 = 0x21;
    pub const LOADB: u8 = 0x22;
    pub const STORE: u8 = 0x28;
    pub const STORER: u8 = 0x29;
    pub const STOREB: u8 = 0x2A;
    /// First of the 14 [`super::BinOp`] opcodes, in `BinOp::ALL` order.
    pub const BIN_FIRST: u8 = 0x30;
    pub const BIN_LAST: u8 = 0x3D;
    pub const ADDI: u8 = 0x3E;
    pub const NOT: u8 = 0x3F;
    pub const SEQ: u8 = 0x40;
    /// Format 2: `SEQ` against a string of the data section.
    pub const SEQD: u8 = 0x41;
    /// Format 2: the six [`super::Compare`] opcodes, in `Compare::ALL` order.
    pub const CMPI_FIRST: u8 = 0x42;
    pub const CMPI_LAST: u8 = 0x47;
    pub const JMP: u8 = 0x50;
    pub const JZ: u8 = 0x51;
    pub const JNZ: u8 = 0x52;
    /// Format 2: the six branches on a [`super::Compare`] with an 8-bit
    /// immediate, in `Compare::ALL` order.
    pub const JCMPI_FIRST: u8 = 0x53;
    pub const JCMPI_LAST: u8 = 0x58;
    pub const HASH: u8 = 0x60;
    pub const ASSERT_DIGEST: u8 = 0x61;
    /// Format 3: a Poseidon request, numbered with the HASH requests.
    pub const POSEIDON: u8 = 0x62;
    pub const ENV: u8 = 0x70;
}

/// The most field elements one `POSEIDON` hashes (eight permutations).
pub const MAX_POSEIDON_INPUTS: usize = 16;

/// One VM instruction. Addresses are 32-bit (see [`super::memory`]); a
/// *slice* is a register holding `address << 32 | length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    /// Do nothing.
    Nop,
    /// Stop and accept the operation.
    Accept,
    /// Stop and reject the operation with `code`; `reason` holds a slice of
    /// the reason text (0 for none).
    Reject { reason: Reg, code: u32 },
    /// `rd = imm` (zero-extended).
    LoadImm { rd: Reg, imm: u32 },
    /// `rd = (rd & 0xffff_ffff) | imm << 32`: with `LoadImm`, any 64-bit constant.
    LoadHigh { rd: Reg, imm: u32 },
    /// `rd` = slice of the length-prefixed string at `offset` in the data section.
    Str { rd: Reg, offset: u32 },
    /// `rd = ra`.
    Mov { rd: Reg, ra: Reg },
    /// `rd` = u64 (little-endian) at the absolute address `addr`.
    Load { rd: Reg, addr: u32 },
    /// `rd` = u64 at `base + offset`.
    LoadR { rd: Reg, base: Reg, offset: u32 },
    /// `rd` = byte at `base + offset`.
    LoadByte { rd: Reg, base: Reg, offset: u32 },
    /// u64 at the absolute address `addr` = `src` (scratch only).
    Store { src: Reg, addr: u32 },
    /// u64 at `base + offset` = `src` (scratch only).
    StoreR { src: Reg, base: Reg, offset: u32 },
    /// byte at `base + offset` = low byte of `src` (scratch only).
    StoreByte { src: Reg, base: Reg, offset: u32 },
    /// `rd = ra <op> rb`.
    Bin { op: BinOp, rd: Reg, ra: Reg, rb: Reg },
    /// `rd = ra + imm` (checked).
    AddImm { rd: Reg, ra: Reg, imm: u32 },
    /// `rd = (ra == 0) as u64`: logical not.
    Not { rd: Reg, ra: Reg },
    /// `rd` = 1 when the bytes of slices `ra` and `rb` are equal, else 0.
    SliceEq { rd: Reg, ra: Reg, rb: Reg },
    /// Format 2: `rd` = 1 when the bytes of slice `ra` equal the
    /// length-prefixed string at data offset `offset` (`STR` then `SEQ`).
    SliceEqData { rd: Reg, ra: Reg, offset: u32 },
    /// Format 2: `rd = ra <cmp> imm` (unsigned, imm zero-extended; `LDI`
    /// then a comparison).
    CmpImm { cmp: Compare, rd: Reg, ra: Reg, imm: u32 },
    /// Jump to the code byte offset `target`.
    Jmp { target: u32 },
    /// Jump when `cond` is zero.
    Jz { cond: Reg, target: u32 },
    /// Jump when `cond` is not zero.
    Jnz { cond: Reg, target: u32 },
    /// Format 2: jump when `ra <cmp> imm` (unsigned; a compare with a small
    /// constant and `JNZ` in one).
    JumpCmpImm { cmp: Compare, ra: Reg, imm: u8, target: u32 },
    /// File a BLAKE3 request for the bytes of slice `ra` in the hash pool;
    /// `rd` = the request's handle: its number among this run's requests
    /// (0, 1, …), whatever else the pool holds. Nothing is hashed here.
    Hash { rd: Reg, ra: Reg },
    /// Format 3: file a Poseidon request (BN254, the prover's sponge, the
    /// logic domain) over slice `ra`, read as 1 to
    /// [`MAX_POSEIDON_INPUTS`] canonical little-endian 32-byte field
    /// elements; `rd` = its handle, numbered with the run's HASH requests
    /// (0, 1, …). Nothing is hashed here.
    Poseidon { rd: Reg, ra: Reg },
    /// Record that the digest of handle `handle` (a BLAKE3 digest, or a
    /// Poseidon value's canonical little-endian bytes) must equal the 32
    /// bytes of slice `expected`; checked when the pool flushes.
    AssertDigest { handle: Reg, expected: Reg },
    /// `rd` = slice of the environment value named by slice `key`
    /// (an empty slice when the key is absent).
    Env { rd: Reg, key: Reg },
}

impl Instruction {
    /// The program format that introduced this instruction: 3 for
    /// `POSEIDON`, 2 for the fused instructions the optimizing TEL compiler
    /// emits, 1 for the rest.
    pub fn format(&self) -> u16 {
        match self {
            Instruction::Poseidon { .. } => 3,
            Instruction::SliceEqData { .. } | Instruction::CmpImm { .. } | Instruction::JumpCmpImm { .. } => 2,
            _ => 1,
        }
    }

    /// The jump target, for instructions that have one.
    pub fn jump_target(&self) -> Option<u32> {
        match *self {
            Instruction::Jmp { target }
            | Instruction::Jz { target, .. }
            | Instruction::Jnz { target, .. }
            | Instruction::JumpCmpImm { target, .. } => Some(target),
            _ => None,
        }
    }

    /// `[opcode, a, b, c, imm]` as encoded.
    pub fn encode(&self) -> [u8; INSTRUCTION_SIZE] {
        use opcode::*;
        let (op, a, b, c, imm): (u8, u8, u8, u8, u32) = match *self {
            Instruction::Nop => (NOP, 0, 0, 0, 0),
            Instruction::Accept => (ACCEPT, 0, 0, 0, 0),
            Instruction::Reject { reason, code } => (REJECT, reason.byte(), 0, 0, code),
            Instruction::LoadImm { rd, imm } => (LDI, rd.byte(), 0, 0, imm),
            Instruction::LoadHigh { rd, imm } => (LDHI, rd.byte(), 0, 0, imm),
            Instruction::Str { rd, offset } => (STR, rd.byte(), 0, 0, offset),
            Instruction::Mov { rd, ra } => (MOV, rd.byte(), ra.byte(), 0, 0),
            Instruction::Load { rd, addr } => (LOAD, rd.byte(), 0, 0, addr),
            Instruction::LoadR { rd, base, offset } => (LOADR, rd.byte(), base.byte(), 0, offset),
            Instruction::LoadByte { rd, base, offset } => (LOADB, rd.byte(), base.byte(), 0, offset),
            Instruction::Store { src, addr } => (STORE, src.byte(), 0, 0, addr),
            Instruction::StoreR { src, base, offset } => (STORER, src.byte(), base.byte(), 0, offset),
            Instruction::StoreByte { src, base, offset } => (STOREB, src.byte(), base.byte(), 0, offset),
            Instruction::Bin { op, rd, ra, rb } => (BIN_FIRST + op.index(), rd.byte(), ra.byte(), rb.byte(), 0),
            Instruction::AddImm { rd, ra, imm } => (ADDI, rd.byte(), ra.byte(), 0, imm),
            Instruction::Not { rd, ra } => (NOT, rd.byte(), ra.byte(), 0, 0),
            Instruction::SliceEq { rd, ra, rb } => (SEQ, rd.byte(), ra.byte(), rb.byte(), 0),
            Instruction::SliceEqData { rd, ra, offset } => (SEQD, rd.byte(), ra.byte(), 0, offset),
            Instruction::CmpImm { cmp, rd, ra, imm } => (CMPI_FIRST + cmp.index(), rd.byte(), ra.byte(), 0, imm),
            Instruction::Jmp { target } => (JMP, 0, 0, 0, target),
            Instruction::Jz { cond, target } => (JZ, cond.byte(), 0, 0, target),
            Instruction::Jnz { cond, target } => (JNZ, cond.byte(), 0, 0, target),
            Instruction::JumpCmpImm { cmp, ra, imm, target } => (JCMPI_FIRST + cmp.index(), ra.byte(), 0, imm, target),
            Instruction::Hash { rd, ra } => (HASH, rd.byte(), ra.byte(), 0, 0),
            Instruction::Poseidon { rd, ra } => (POSEIDON, rd.byte(), ra.byte(), 0, 0),
            Instruction::AssertDigest { handle, expected } => (ASSERT_DIGEST, handle.byte(), expected.byte(), 0, 0),
            Instruction::Env { rd, key } => (ENV, rd.byte(), key.byte(), 0, 0),
        };
        let i = imm.to_le_bytes();
        [op, a, b, c, i[0], i[1], i[2], i[3]]
    }

    /// Decode one instruction's operand shape. Semantic checks (jump targets,
    /// addresses, data offsets) are the program decoder's job.
    pub fn decode(raw: [u8; INSTRUCTION_SIZE]) -> Result<Instruction, String> {
        use opcode::*;
        let [op, a, b, c, i0, i1, i2, i3] = raw;
        let imm = u32::from_le_bytes([i0, i1, i2, i3]);
        let reg = |byte: u8, slot: &str| {
            Reg::new(byte).ok_or_else(|| {
                format!("operand {slot} names register r{byte}, but there are only {REGISTER_COUNT} (r0..r15)")
            })
        };
        // Operands an opcode does not use must be zero (one encoding per program).
        let unused = |slots: &[(&str, u32)]| -> Result<(), String> {
            match slots.iter().find(|(_, v)| *v != 0) {
                Some((slot, v)) => {
                    Err(format!("opcode 0x{op:02x} does not use operand {slot}, which must be 0 (is {v})"))
                }
                None => Ok(()),
            }
        };
        let (ua, ub, uc, ui) = (("a", a as u32), ("b", b as u32), ("c", c as u32), ("imm", imm));
        let instruction = match op {
            NOP => {
                unused(&[ua, ub, uc, ui])?;
                Instruction::Nop
            }
            ACCEPT => {
                unused(&[ua, ub, uc, ui])?;
                Instruction::Accept
            }
            REJECT => {
                unused(&[ub, uc])?;
                Instruction::Reject { reason: reg(a, "a")?, code: imm }
            }
            LDI | LDHI | STR | LOAD | STORE => {
                unused(&[ub, uc])?;
                let r = reg(a, "a")?;
                match op {
                    LDI => Instruction::LoadImm { rd: r, imm },
                    LDHI => Instruction::LoadHigh { rd: r, imm },
                    STR => Instruction::Str { rd: r, offset: imm },
                    LOAD => Instruction::Load { rd: r, addr: imm },
                    _ => Instruction::Store { src: r, addr: imm },
                }
            }
            MOV | NOT | HASH | POSEIDON | ASSERT_DIGEST | ENV => {
                unused(&[uc, ui])?;
                let (x, y) = (reg(a, "a")?, reg(b, "b")?);
                match op {
                    MOV => Instruction::Mov { rd: x, ra: y },
                    NOT => Instruction::Not { rd: x, ra: y },
                    HASH => Instruction::Hash { rd: x, ra: y },
                    POSEIDON => Instruction::Poseidon { rd: x, ra: y },
                    ASSERT_DIGEST => Instruction::AssertDigest { handle: x, expected: y },
                    _ => Instruction::Env { rd: x, key: y },
                }
            }
            LOADR | LOADB | STORER | STOREB | ADDI | SEQD | CMPI_FIRST..=CMPI_LAST => {
                unused(&[uc])?;
                let (x, y) = (reg(a, "a")?, reg(b, "b")?);
                match op {
                    SEQD => Instruction::SliceEqData { rd: x, ra: y, offset: imm },
                    CMPI_FIRST..=CMPI_LAST => {
                        Instruction::CmpImm { cmp: Compare::ALL[(op - CMPI_FIRST) as usize], rd: x, ra: y, imm }
                    }
                    LOADR => Instruction::LoadR { rd: x, base: y, offset: imm },
                    LOADB => Instruction::LoadByte { rd: x, base: y, offset: imm },
                    STORER => Instruction::StoreR { src: x, base: y, offset: imm },
                    STOREB => Instruction::StoreByte { src: x, base: y, offset: imm },
                    _ => Instruction::AddImm { rd: x, ra: y, imm },
                }
            }
            BIN_FIRST..=BIN_LAST | SEQ => {
                unused(&[ui])?;
                let (rd, ra, rb) = (reg(a, "a")?, reg(b, "b")?, reg(c, "c")?);
                if op == SEQ {
                    Instruction::SliceEq { rd, ra, rb }
                } else {
                    Instruction::Bin { op: BinOp::ALL[(op - BIN_FIRST) as usize], rd, ra, rb }
                }
            }
            JMP => {
                unused(&[ua, ub, uc])?;
                Instruction::Jmp { target: imm }
            }
            JCMPI_FIRST..=JCMPI_LAST => {
                unused(&[ub])?;
                let cmp = Compare::ALL[(op - JCMPI_FIRST) as usize];
                Instruction::JumpCmpImm { cmp, ra: reg(a, "a")?, imm: c, target: imm }
            }
            JZ | JNZ => {
                unused(&[ub, uc])?;
                let cond = reg(a, "a")?;
                if op == JZ {
                    Instruction::Jz { cond, target: imm }
                } else {
                    Instruction::Jnz { cond, target: imm }
                }
            }
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        };
        Ok(instruction)
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Instruction::Nop => write!(f, "NOP"),
            Instruction::Accept => write!(f, "ACCEPT"),
            Instruction::Reject { reason, code } => write!(f, "REJECT {reason}, {code}"),
            Instruction::LoadImm { rd, imm } => write!(f, "LDI {rd}, {imm}"),
            Instruction::LoadHigh { rd, imm } => write!(f, "LDHI {rd}, {imm}"),
            Instruction::Str { rd, offset } => write!(f, "STR {rd}, data+{offset}"),
            Instruction::Mov { rd, ra } => write!(f, "MOV {rd}, {ra}"),
            Instruction::Load { rd, addr } => write!(f, "LOAD {rd}, [0x{addr:08x}]"),
            Instruction::LoadR { rd, base, offset } => write!(f, "LOADR {rd}, [{base}+0x{offset:x}]"),
            Instruction::LoadByte { rd, base, offset } => write!(f, "LOADB {rd}, [{base}+0x{offset:x}]"),
            Instruction::Store { src, addr } => write!(f, "STORE [0x{addr:08x}], {src}"),
            Instruction::StoreR { src, base, offset } => write!(f, "STORER [{base}+0x{offset:x}], {src}"),
            Instruction::StoreByte { src, base, offset } => write!(f, "STOREB [{base}+0x{offset:x}], {src}"),
            Instruction::Bin { op, rd, ra, rb } => write!(f, "{} {rd}, {ra}, {rb}", op.mnemonic()),
            Instruction::AddImm { rd, ra, imm } => write!(f, "ADDI {rd}, {ra}, {imm}"),
            Instruction::Not { rd, ra } => write!(f, "NOT {rd}, {ra}"),
            Instruction::SliceEq { rd, ra, rb } => write!(f, "SEQ {rd}, {ra}, {rb}"),
            Instruction::SliceEqData { rd, ra, offset } => write!(f, "SEQD {rd}, {ra}, data+{offset}"),
            Instruction::CmpImm { cmp, rd, ra, imm } => write!(f, "{} {rd}, {ra}, {imm}", cmp.mnemonic()),
            Instruction::Jmp { target } => write!(f, "JMP 0x{target:04x}"),
            Instruction::Jz { cond, target } => write!(f, "JZ {cond}, 0x{target:04x}"),
            Instruction::Jnz { cond, target } => write!(f, "JNZ {cond}, 0x{target:04x}"),
            Instruction::JumpCmpImm { cmp, ra, imm, target } => {
                // JEQI … JGEI: the jump on CMPI's comparison.
                write!(f, "J{} {ra}, {imm}, 0x{target:04x}", cmp.mnemonic())
            }
            Instruction::Hash { rd, ra } => write!(f, "HASH {rd}, {ra}"),
            Instruction::Poseidon { rd, ra } => write!(f, "POSEIDON {rd}, {ra}"),
            Instruction::AssertDigest { handle, expected } => write!(f, "ASSERT_DIGEST {handle}, {expected}"),
            Instruction::Env { rd, key } => write!(f, "ENV {rd}, {key}"),
        }
    }
}
