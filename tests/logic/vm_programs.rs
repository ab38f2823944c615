//! The VM: decoding (each malformed class), the interpreter's outcomes and
//! errors, deferred hashing, the Debug trace, and "never panics".

use crate::vm_support;

use causality_vm::hash::HashPool;
use causality_vm::resource::OperationKind;
use causality_vm::vm::memory::{
    self, ctx_field, field, CONTEXT_BASE, DATA_BASE, OTHERS_BASE, SCRATCH_BASE, SCRATCH_SIZE,
};
use causality_vm::vm::{BinOp, Compare, Instruction as I, Interpreter, Program, Reg, Role, HEADER_SIZE};
use causality_vm::ExecutionError;
use proptest::prelude::*;
use vm_support::{resource, strings, Case};

fn r(n: u8) -> Reg {
    Reg::new(n).expect("test register")
}

fn program(code: Vec<I>) -> Program {
    Program::new(code, Vec::new()).expect("valid test program")
}

fn invalid_offset(result: Result<Program, ExecutionError>) -> (usize, String) {
    match result {
        Err(ExecutionError::InvalidInstruction { offset, reason }) => (offset, reason),
        other => panic!("expected InvalidInstruction, got {other:?}"),
    }
}

fn every_instruction() -> Program {
    let (data, offs) = strings(&[b"alice"]);
    let code = vec![
        I::Nop,
        I::LoadImm { rd: r(1), imm: 5 },
        I::LoadHigh { rd: r(1), imm: 1 },
        I::Str { rd: r(2), offset: offs[0] },
        I::Mov { rd: r(3), ra: r(2) },
        I::Load { rd: r(4), addr: field::QUANTITY },
        I::LoadR { rd: r(5), base: r(0), offset: field::VERSION },
        I::LoadByte { rd: r(6), base: r(0), offset: 0 },
        I::Store { src: r(1), addr: SCRATCH_BASE },
        I::StoreR { src: r(1), base: r(0), offset: SCRATCH_BASE + 8 },
        I::StoreByte { src: r(1), base: r(0), offset: SCRATCH_BASE + 16 },
        I::Bin { op: BinOp::Add, rd: r(7), ra: r(4), rb: r(5) },
        I::Bin { op: BinOp::Ge, rd: r(7), ra: r(4), rb: r(5) },
        I::AddImm { rd: r(7), ra: r(7), imm: 1 },
        I::Not { rd: r(8), ra: r(7) },
        I::SliceEq { rd: r(9), ra: r(2), rb: r(3) },
        I::Jz { cond: r(8), target: 0x88 },
        I::Jnz { cond: r(8), target: 0x88 },
        I::Hash { rd: r(10), ra: r(2) },
        I::Env { rd: r(11), key: r(2) },
        I::Jmp { target: 0xa8 },
        I::AssertDigest { handle: r(10), expected: r(2) },
        I::Accept,
        I::Reject { reason: r(2), code: 9 },
    ];
    Program::new(code, data).expect("valid")
}

// ---------------------------------------------------------------- decoding

#[test]
fn encode_decode_round_trips_and_is_canonical() {
    let p = every_instruction();
    let bytes = p.encode();
    assert_eq!(&bytes[..4], b"CVMP");
    let decoded = Program::decode(&bytes).expect("decodes");
    assert_eq!(decoded, p);
    assert_eq!(decoded.encode(), bytes);
    assert!(p.disassemble().contains("ASSERT_DIGEST r10, r2"), "{}", p.disassemble());
    assert!(p.disassemble().contains("\"alice\""));
}

#[test]
fn truncated_header_is_rejected_at_its_end() {
    let bytes = every_instruction().encode();
    for len in [0, 1, 4, 15] {
        let (offset, reason) = invalid_offset(Program::decode(&bytes[..len]));
        assert_eq!(offset, len);
        assert!(reason.contains("truncated header"), "{reason}");
    }
}

#[test]
fn bad_magic_version_and_flags_are_rejected_where_they_are() {
    let good = every_instruction().encode();
    let mut bytes = good.clone();
    bytes[0] = b'X';
    assert_eq!(invalid_offset(Program::decode(&bytes)).0, 0);
    let mut bytes = good.clone();
    bytes[4] = 2;
    let (offset, reason) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, 4);
    assert!(reason.contains("version 2"), "{reason}");
    let mut bytes = good;
    bytes[6] = 1;
    assert_eq!(invalid_offset(Program::decode(&bytes)).0, 6);
}

#[test]
fn truncated_body_and_trailing_bytes_are_rejected() {
    let good = every_instruction().encode();
    for cut in [HEADER_SIZE, HEADER_SIZE + 3, good.len() - 1] {
        let (offset, reason) = invalid_offset(Program::decode(&good[..cut]));
        assert_eq!(offset, cut);
        assert!(reason.contains("truncated"), "{reason}");
    }
    let mut long = good.clone();
    long.push(0);
    let (offset, reason) = invalid_offset(Program::decode(&long));
    assert_eq!(offset, good.len());
    assert!(reason.contains("1 trailing bytes"), "{reason}");
}

/// Encode `code` and patch instruction `index` with `patch`.
fn patched(code: Vec<I>, index: usize, patch: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut bytes = program(code).encode();
    let at = HEADER_SIZE + index * 8;
    patch(&mut bytes[at..at + 8]);
    bytes
}

#[test]
fn unknown_opcode_is_rejected_at_its_instruction() {
    let bytes = patched(vec![I::Nop, I::Nop, I::Accept], 2, |ins| ins[0] = 0xEE);
    let (offset, reason) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, HEADER_SIZE + 16);
    assert!(reason.contains("unknown opcode 0xee"), "{reason}");
}

#[test]
fn register_out_of_range_is_rejected() {
    let bytes = patched(vec![I::Nop, I::Mov { rd: r(1), ra: r(2) }, I::Accept], 1, |ins| ins[2] = 16);
    let (offset, reason) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, HEADER_SIZE + 8);
    assert!(reason.contains("r16"), "{reason}");
}

#[test]
fn unused_operands_must_be_zero() {
    let bytes = patched(vec![I::Accept], 0, |ins| ins[5] = 1);
    let (offset, reason) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, HEADER_SIZE);
    assert!(reason.contains("does not use operand imm"), "{reason}");
}

#[test]
fn jump_targets_must_be_aligned_and_inside_the_code() {
    let code = vec![I::Nop, I::Jmp { target: 0 }, I::Accept];
    let misaligned = patched(code.clone(), 1, |ins| ins[4] = 4);
    let (offset, reason) = invalid_offset(Program::decode(&misaligned));
    assert_eq!(offset, HEADER_SIZE + 8);
    assert!(reason.contains("not a multiple of 8"), "{reason}");
    let outside = patched(code, 1, |ins| ins[4] = 24);
    let (offset, reason) = invalid_offset(Program::decode(&outside));
    assert_eq!(offset, HEADER_SIZE + 8);
    assert!(reason.contains("outside the code"), "{reason}");
    // Program::new applies the same rules.
    assert!(Program::new(vec![I::Jz { cond: r(0), target: 8 }], Vec::new()).is_err());
}

#[test]
fn absolute_addresses_must_name_a_region() {
    let code = vec![I::Load { rd: r(0), addr: 0 }, I::Accept];
    let bytes = patched(code, 0, |ins| ins[4..8].copy_from_slice(&0x0400_0000u32.to_le_bytes()));
    let (offset, reason) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, HEADER_SIZE);
    assert!(reason.contains("no memory region"), "{reason}");
}

#[test]
fn string_operands_must_lie_in_the_data_section() {
    let (data, _) = strings(&[b"abc"]);
    let p = Program::new(vec![I::Str { rd: r(0), offset: 0 }, I::Accept], data.clone()).expect("valid");
    let mut bytes = p.encode();
    bytes[HEADER_SIZE + 4] = 1; // offset 1: the length prefix reads garbage
    let (offset, _) = invalid_offset(Program::decode(&bytes));
    assert_eq!(offset, HEADER_SIZE);
    let past = Program::new(vec![I::Str { rd: r(0), offset: data.len() as u32 }], data);
    assert!(past.is_err());
}

#[test]
fn every_truncation_fails_and_every_single_byte_change_stays_canonical() {
    let good = every_instruction().encode();
    for len in 0..good.len() {
        assert!(Program::decode(&good[..len]).is_err(), "prefix of {len} bytes decoded");
    }
    for i in 0..good.len() {
        for delta in [1u8, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[i] = bytes[i].wrapping_add(delta);
            if let Ok(p) = Program::decode(&bytes) {
                assert_eq!(p.encode(), bytes, "byte {i} changed: a second encoding of one program");
            }
        }
    }
}

// ------------------------------------------------------------- interpreter

fn rejection_reason(result: Result<causality_vm::vm::LogicOutcome, ExecutionError>) -> String {
    match result {
        Err(ExecutionError::InvalidResourceState { reason, .. }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn accept_counts_instructions() {
    let outcome = Case::new().run(&program(vec![I::Nop, I::Nop, I::Accept])).expect("accepts");
    assert_eq!(outcome.instructions, 3);
    assert!(outcome.deferred.is_empty());
    assert!(outcome.trace.is_none());
}

#[test]
fn reject_names_program_pc_code_and_reason() {
    let (data, offs) = strings(&[b"too big"]);
    let p = Program::new(vec![I::Nop, I::Str { rd: r(3), offset: offs[0] }, I::Reject { reason: r(3), code: 7 }], data)
        .expect("valid");
    let case = Case::new();
    let err = case.run(&p).unwrap_err();
    let ExecutionError::InvalidResourceState { id, reason, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*id, case.subject.id);
    assert_eq!(*reason, format!("rejected by logic {} at pc 0x0010: code 7: too big", case.subject.logic));
}

#[test]
fn running_off_the_end_rejects() {
    let reason = rejection_reason(Case::new().run(&program(vec![I::Nop])));
    assert!(reason.contains("ended without ACCEPT"), "{reason}");
    assert!(reason.contains("at pc 0x0008"), "{reason}");
    let reason = rejection_reason(Case::new().run(&program(Vec::new())));
    assert!(reason.contains("ended without ACCEPT"), "{reason}");
}

#[test]
fn budget_exhaustion_is_a_timeout() {
    let mut case = Case::new();
    case.budget = 1000;
    let err = case.run(&program(vec![I::Nop, I::Jmp { target: 0 }])).unwrap_err();
    assert_eq!(err, ExecutionError::Timeout { program: case.subject.logic.to_string(), budget: 1000 });
    // Exactly the budget is enough; one fewer is not.
    let three = program(vec![I::Nop, I::Nop, I::Accept]);
    case.budget = 3;
    assert!(case.run(&three).is_ok());
    case.budget = 2;
    assert!(matches!(case.run(&three), Err(ExecutionError::Timeout { budget: 2, .. })));
}

#[test]
fn reading_others_needs_permission() {
    let p = program(vec![I::Nop, I::Load { rd: r(0), addr: OTHERS_BASE + field::QUANTITY }, I::Accept]);
    let mut case = Case::new();
    case.others = vec![resource(42, "bob")];
    case.readable_others = false;
    match case.run(&p).unwrap_err() {
        ExecutionError::MemoryAccessViolation { pc, address, access, reason } => {
            assert_eq!((pc, address, access.as_str()), (8, OTHERS_BASE, "read"));
            assert!(reason.contains("do not allow reading other resources"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    case.readable_others = true;
    assert!(case.run(&p).is_ok());
    // The count of others is context, readable either way.
    let count = program(vec![
        I::Load { rd: r(0), addr: CONTEXT_BASE + ctx_field::OTHERS_COUNT },
        I::LoadImm { rd: r(1), imm: 1 },
        I::Bin { op: BinOp::Eq, rd: r(0), ra: r(0), rb: r(1) },
        I::Jz { cond: r(0), target: 0x28 },
        I::Accept,
        I::Nop,
    ]);
    case.readable_others = false;
    assert!(case.run(&count).is_ok());
}

#[test]
fn others_loads_see_their_fields_and_missing_others_fault() {
    let p = program(vec![
        I::LoadImm { rd: r(1), imm: OTHERS_BASE + memory::RESOURCE_SPAN },
        I::LoadR { rd: r(0), base: r(1), offset: field::QUANTITY },
        I::LoadImm { rd: r(2), imm: 42 },
        I::Bin { op: BinOp::Eq, rd: r(0), ra: r(0), rb: r(2) },
        I::Jz { cond: r(0), target: 0x30 },
        I::Accept,
        I::Nop,
    ]);
    let mut case = Case::new();
    case.others = vec![resource(1, "x"), resource(42, "bob")];
    assert!(case.run(&p).is_ok());
    case.others.pop();
    match case.run(&p).unwrap_err() {
        ExecutionError::MemoryAccessViolation { pc: 8, reason, .. } => {
            assert!(reason.contains("only 1 other"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_outside_scratch_are_violations() {
    let case = Case::new();
    for (addr, region) in [(0u32, "subject"), (CONTEXT_BASE, "context"), (DATA_BASE, "data"), (OTHERS_BASE, "other")] {
        match case.run(&program(vec![I::Store { src: r(0), addr }, I::Accept])).unwrap_err() {
            ExecutionError::MemoryAccessViolation { pc: 0, address, access, reason } => {
                assert_eq!((address, access.as_str()), (addr, "write"));
                assert!(reason.contains("read-only") && reason.contains(region), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A store straddling the end of scratch, and one past it through a register.
    let straddle = program(vec![I::Store { src: r(0), addr: SCRATCH_BASE + SCRATCH_SIZE - 4 }, I::Accept]);
    assert!(matches!(case.run(&straddle), Err(ExecutionError::MemoryAccessViolation { .. })));
    let beyond = program(vec![
        I::LoadImm { rd: r(1), imm: u32::MAX },
        I::StoreByte { src: r(0), base: r(1), offset: 1 },
        I::Accept,
    ]);
    match case.run(&beyond).unwrap_err() {
        ExecutionError::MemoryAccessViolation { pc: 8, reason, .. } => assert!(reason.contains("32-bit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scratch_is_writable_and_reads_back() {
    let p = program(vec![
        I::LoadImm { rd: r(1), imm: 0xdead_beef },
        I::Store { src: r(1), addr: SCRATCH_BASE + 100 },
        I::Load { rd: r(2), addr: SCRATCH_BASE + 100 },
        I::Bin { op: BinOp::Eq, rd: r(3), ra: r(1), rb: r(2) },
        I::Load { rd: r(4), addr: SCRATCH_BASE + 200 },
        I::Bin { op: BinOp::Add, rd: r(3), ra: r(3), rb: r(4) },
        I::Jz { cond: r(3), target: 0x40 },
        I::Accept,
        I::Nop,
    ]);
    assert!(Case::new().run(&p).is_ok());
}

#[test]
fn unmapped_reads_are_violations() {
    let p = program(vec![
        I::LoadImm { rd: r(1), imm: 0x0500_0000 },
        I::LoadR { rd: r(0), base: r(1), offset: 0 },
        I::Accept,
    ]);
    match Case::new().run(&p).unwrap_err() {
        ExecutionError::MemoryAccessViolation { pc: 8, address: 0x0500_0000, reason, .. } => {
            assert!(reason.contains("not mapped"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// `rd = (ra == expected)`, then accept when true.
fn accept_if_equal(load: I, expected: u64) -> Program {
    program(vec![
        load,
        I::LoadImm { rd: r(1), imm: expected as u32 },
        I::LoadHigh { rd: r(1), imm: (expected >> 32) as u32 },
        I::Bin { op: BinOp::Eq, rd: r(0), ra: r(0), rb: r(1) },
        I::Jz { cond: r(0), target: 0x30 },
        I::Accept,
        I::Nop,
    ])
}

#[test]
fn fields_and_context_are_where_the_layout_says() {
    let mut case = Case::new();
    case.operation = OperationKind::Update;
    case.role = Role::UpdatedAfter;
    case.others = vec![resource(5, "b"), resource(6, "c")];
    let checks = [
        (field::QUANTITY, 100),
        (field::VERSION, 3),
        (field::STATE, case.subject.state.code() as u64),
        (CONTEXT_BASE + ctx_field::TIMESTAMP, 1_700_000_000),
        (CONTEXT_BASE + ctx_field::OPERATION, OperationKind::Update.code() as u64),
        (CONTEXT_BASE + ctx_field::ROLE, Role::UpdatedAfter.code() as u64),
        (CONTEXT_BASE + ctx_field::OTHERS_COUNT, 2),
        (CONTEXT_BASE + ctx_field::OTHERS_READABLE, 1),
        (OTHERS_BASE + memory::RESOURCE_SPAN + field::QUANTITY, 6),
    ];
    for (addr, expected) in checks {
        assert!(case.run(&accept_if_equal(I::Load { rd: r(0), addr }, expected)).is_ok(), "address {addr:#x}");
        assert!(case.run(&accept_if_equal(I::Load { rd: r(0), addr }, expected + 1)).is_err());
    }
}

#[test]
fn slices_compare_strings_and_env_looks_up_values() {
    let (data, offs) = strings(&[b"alice", b"tier", b"gold", b"bob"]);
    let p = |want: u32, load: I| {
        Program::new(
            vec![
                load,
                I::Str { rd: r(1), offset: want },
                I::SliceEq { rd: r(0), ra: r(0), rb: r(1) },
                I::Jz { cond: r(0), target: 0x28 },
                I::Accept,
                I::Nop,
            ],
            data.clone(),
        )
        .expect("valid")
    };
    let mut case = Case::new();
    let controller = I::Load { rd: r(0), addr: field::CONTROLLER };
    assert!(case.run(&p(offs[0], controller)).is_ok());
    assert!(case.run(&p(offs[3], controller)).is_err());
    case.ctx.environment.insert("tier".into(), "gold".into());
    case.ctx.environment.insert("a-first-key".into(), "x".into());
    let env = Program::new(
        vec![
            I::Str { rd: r(2), offset: offs[1] },
            I::Env { rd: r(0), key: r(2) },
            I::Str { rd: r(1), offset: offs[2] },
            I::SliceEq { rd: r(0), ra: r(0), rb: r(1) },
            I::Jz { cond: r(0), target: 0x30 },
            I::Accept,
            I::Nop,
        ],
        data.clone(),
    )
    .expect("valid");
    assert!(case.run(&env).is_ok());
    case.ctx.environment.insert("tier".into(), "silver".into());
    assert!(case.run(&env).is_err());
    case.ctx.environment.clear();
    assert!(case.run(&env).is_err());
}

#[test]
fn arithmetic_traps_on_overflow_underflow_and_division_by_zero() {
    let cases = [
        (BinOp::Add, u64::MAX, 1u64, "arithmetic overflow"),
        (BinOp::Sub, 0, 1, "arithmetic overflow"),
        (BinOp::Mul, 1 << 32, 1 << 32, "arithmetic overflow"),
        (BinOp::Div, 5, 0, "division by zero"),
        (BinOp::Mod, 5, 0, "division by zero"),
    ];
    for (op, a, b, what) in cases {
        let p = program(vec![
            I::LoadImm { rd: r(1), imm: a as u32 },
            I::LoadHigh { rd: r(1), imm: (a >> 32) as u32 },
            I::LoadImm { rd: r(2), imm: b as u32 },
            I::LoadHigh { rd: r(2), imm: (b >> 32) as u32 },
            I::Bin { op, rd: r(0), ra: r(1), rb: r(2) },
            I::Accept,
        ]);
        match Case::new().run(&p).unwrap_err() {
            ExecutionError::InvalidInstruction { offset, reason } => {
                assert_eq!(offset, HEADER_SIZE + 32, "{op:?}");
                assert!(reason.contains(what) && reason.contains("pc 0x0020"), "{reason}");
            }
            other => panic!("{op:?}: {other:?}"),
        }
    }
    let addi = program(vec![
        I::LoadImm { rd: r(1), imm: 1 },
        I::LoadHigh { rd: r(1), imm: u32::MAX },
        I::AddImm { rd: r(1), ra: r(1), imm: u32::MAX },
    ]);
    assert!(matches!(Case::new().run(&addi), Err(ExecutionError::InvalidInstruction { .. })));
    // The largest values that do not overflow are fine.
    let fine = program(vec![
        I::LoadImm { rd: r(1), imm: u32::MAX },
        I::LoadHigh { rd: r(1), imm: u32::MAX - 1 },
        I::LoadImm { rd: r(2), imm: 0 },
        I::LoadHigh { rd: r(2), imm: 1 },
        I::Bin { op: BinOp::Add, rd: r(0), ra: r(1), rb: r(2) },
        I::Accept,
    ]);
    assert!(Case::new().run(&fine).is_ok());
}

/// Write "abc" to scratch, HASH it, ASSERT_DIGEST against `expected`.
fn hash_and_assert(expected: [u8; 32]) -> Program {
    let (data, offs) = strings(&[&expected]);
    Program::new(
        vec![
            I::LoadImm { rd: r(1), imm: u32::from_le_bytes(*b"abc\0") },
            I::Store { src: r(1), addr: SCRATCH_BASE },
            I::LoadImm { rd: r(2), imm: 3 },
            I::LoadHigh { rd: r(2), imm: SCRATCH_BASE },
            I::Hash { rd: r(3), ra: r(2) },
            I::Str { rd: r(4), offset: offs[0] },
            I::AssertDigest { handle: r(3), expected: r(4) },
            I::Accept,
        ],
        data,
    )
    .expect("valid")
}

#[test]
fn deferred_assertion_passes_at_flush() {
    let mut pool = HashPool::new();
    let outcome = Case::new()
        .run_in(&hash_and_assert(*blake3::hash(b"abc").as_bytes()), Interpreter::new(100), &mut pool)
        .expect("accepts");
    assert_eq!(outcome.deferred.len(), 1);
    // Nothing was hashed inline: the request waits in the pool.
    assert_eq!(pool.pending_len(), 1);
    let assertion = &outcome.deferred[0];
    let err = assertion.check(&pool).unwrap_err();
    assert!(
        matches!(&err, ExecutionError::StateCommitmentError { reason } if reason.contains("not resolved")),
        "{err}"
    );
    pool.flush().expect("flush");
    assertion.check(&pool).expect("the digest matches");
}

#[test]
fn deferred_assertion_fails_at_flush() {
    let mut pool = HashPool::new();
    let wrong = *blake3::hash(b"abd").as_bytes();
    let outcome = Case::new().run_in(&hash_and_assert(wrong), Interpreter::new(100), &mut pool).expect("accepts");
    pool.flush().expect("flush");
    match outcome.deferred[0].check(&pool).unwrap_err() {
        ExecutionError::StateCommitmentError { reason } => {
            assert!(reason.contains(&blake3::hash(b"abc").to_hex().to_string()), "{reason}");
            assert!(reason.contains(&blake3::hash(b"abd").to_hex().to_string()), "{reason}");
            assert!(reason.contains("pc 0x0030"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// A run files no more requests and assertions than its allowance (what
/// its batch may still hold until the flush): the hash and the assertion
/// fit an allowance of 2; with 1, the assertion stops the run, and the run
/// says so, whatever the error's text.
#[test]
fn a_run_files_at_most_its_allowance() {
    let program = hash_and_assert(*blake3::hash(b"abc").as_bytes());
    let allowed = |allowance| Interpreter { allowance, ..Interpreter::new(100) };
    let mut pool = HashPool::new();
    let (result, filings) = Case::new().run_metered(&program, allowed(2), &mut pool);
    assert_eq!(result.expect("accepts").deferred.len(), 1);
    assert_eq!((filings.count, filings.over_allowance), (2, false));

    let mut pool = HashPool::new();
    let (result, filings) = Case::new().run_metered(&program, allowed(1), &mut pool);
    match result.unwrap_err() {
        ExecutionError::InvalidInstruction { offset, reason } => {
            assert_eq!(offset, HEADER_SIZE + 0x30, "the assertion");
            assert!(reason.contains("this run may file 1 hash requests"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((filings.count, filings.over_allowance), (1, true));
    assert_eq!(pool.pending_len(), 1, "the hash was filed, the assertion not");

    let (result, filings) = Case::new().run_metered(&program, allowed(0), &mut HashPool::new());
    assert!(result.is_err());
    assert_eq!((filings.count, filings.over_allowance), (0, true));
}

#[test]
fn asserting_on_a_forged_handle_traps() {
    let (data, offs) = strings(&[&[0u8; 32]]);
    let p = Program::new(
        vec![
            I::LoadImm { rd: r(3), imm: 0 },
            I::Str { rd: r(4), offset: offs[0] },
            I::AssertDigest { handle: r(3), expected: r(4) },
            I::Accept,
        ],
        data,
    )
    .expect("valid");
    let mut pool = HashPool::new();
    pool.hash(b"someone else's request");
    match Case::new().run_in(&p, Interpreter::new(100), &mut pool).unwrap_err() {
        ExecutionError::InvalidInstruction { offset, reason } => {
            assert_eq!(offset, HEADER_SIZE + 16);
            assert!(reason.contains("not a handle"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_trace_records_every_step() {
    let p = program(vec![
        I::Load { rd: r(1), addr: field::QUANTITY },
        I::Store { src: r(1), addr: SCRATCH_BASE },
        I::AddImm { rd: r(1), ra: r(1), imm: 1 },
        I::Accept,
    ]);
    let mut pool = HashPool::new();
    let outcome = Case::new().run_in(&p, Interpreter::new(100).with_trace(), &mut pool).expect("accepts");
    let trace = outcome.trace.expect("traced");
    assert_eq!(trace.steps.len(), 4);
    assert_eq!(trace.steps.iter().map(|s| s.pc).collect::<Vec<_>>(), vec![0, 8, 16, 24]);
    let load = &trace.steps[0];
    assert_eq!(load.register_writes[0].register, 1);
    assert_eq!(load.register_writes[0].value, 100);
    assert_eq!(load.memory[0].address, field::QUANTITY);
    assert_eq!(load.memory[0].bytes, 100u64.to_le_bytes());
    let store = &trace.steps[1];
    assert_eq!(store.memory[0].access, causality_vm::vm::Access::Write);
    assert_eq!(store.memory[0].address, SCRATCH_BASE);
    assert_eq!(trace.registers_after(2)[1], 101);
    assert_eq!(trace.steps[3].note.as_deref(), Some("accept"));
    let text = trace.to_string();
    assert!(text.contains("LOAD r1, [0x00000000]") && text.contains("r1=0x64"), "{text}");
    assert!(serde_json::to_string(&trace).expect("json").contains("\"STORE [0x03000000], r1\""));
}

#[test]
fn traced_runs_keep_the_trace_of_a_failure() {
    let mut case = Case::new();
    case.readable_others = false;
    case.others = vec![resource(1, "b")];
    let p = program(vec![I::Nop, I::Load { rd: r(0), addr: OTHERS_BASE }, I::Accept]);
    let input_others: Vec<_> = case.others.iter().collect();
    let input = causality_vm::vm::LogicInput {
        operation: case.operation,
        role: case.role,
        subject: &case.subject,
        others: &input_others,
        readable_others: false,
        ctx: &case.ctx,
    };
    let traced = Interpreter::new(100).run_traced(&p, &input, &mut HashPool::new());
    assert!(matches!(traced.result, Err(ExecutionError::MemoryAccessViolation { pc: 8, .. })));
    assert_eq!(traced.trace.steps.len(), 2);
}

// ------------------------------------------------------------ never panics

/// Operands that hit interesting cases: register bounds, region bases,
/// aligned and misaligned jumps, the top of the address space.
fn instruction_bytes() -> impl Strategy<Value = [u8; 8]> {
    let opcodes = prop::sample::select(vec![
        0x00u8, 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x28, 0x29, 0x2A, 0x30, 0x31, 0x32, 0x33, 0x34,
        0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x50, 0x51, 0x52, 0x60, 0x61, 0x70,
        0xFF,
    ]);
    let imm = prop_oneof![
        0u32..64,
        Just(SCRATCH_BASE),
        Just(SCRATCH_BASE + SCRATCH_SIZE - 4),
        Just(CONTEXT_BASE + 0x10000),
        Just(DATA_BASE),
        Just(OTHERS_BASE),
        Just(OTHERS_BASE + memory::RESOURCE_SPAN),
        Just(u32::MAX),
        any::<u32>(),
    ];
    (opcodes, 0u8..17, 0u8..17, 0u8..17, imm).prop_map(|(op, a, b, c, imm)| {
        let i = imm.to_le_bytes();
        [op, a, b, c, i[0], i[1], i[2], i[3]]
    })
}

fn run_any(bytes: &[u8], readable: bool) {
    if let Ok(p) = Program::decode(bytes) {
        let mut case = Case::new();
        case.budget = 300;
        case.readable_others = readable;
        case.others = vec![resource(3, "b")];
        case.ctx.environment.insert("k".into(), "v".into());
        let mut pool = HashPool::new();
        let _ = case.run_in(&p, Interpreter::new(300).with_trace(), &mut pool);
        let _ = case.run(&p);
        let _ = p.disassemble();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        run_any(&bytes, true);
        let mut framed = b"CVMP\x01\x00\x00\x00".to_vec();
        framed.extend_from_slice(&((bytes.len() / 8) as u32).to_le_bytes());
        framed.extend_from_slice(&((bytes.len() % 8) as u32).to_le_bytes());
        framed.extend_from_slice(&bytes);
        run_any(&framed, false);
    }

    #[test]
    fn random_programs_never_panic(code in prop::collection::vec(instruction_bytes(), 0..40), data in prop::collection::vec(any::<u8>(), 0..48), readable: bool) {
        let mut bytes = b"CVMP\x01\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&(code.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        for ins in &code {
            bytes.extend_from_slice(ins);
        }
        bytes.extend_from_slice(&data);
        if let Ok(p) = Program::decode(&bytes) {
            prop_assert_eq!(p.encode(), bytes.clone());
        }
        run_any(&bytes, readable);
    }

    /// Well-formed programs (the decoder accepts nearly all of them) run
    /// without panicking, and the runs are deterministic.
    #[test]
    fn valid_programs_never_panic(shapes in prop::collection::vec((0usize..27, 0u8..16, 0u8..16, 0u8..16, any::<u32>(), 0usize..64), 1..48), readable: bool) {
        let len = shapes.len();
        let (data, _) = strings(&[b"alice", b"k", &[9u8; 32]]);
        let addrs = [0u32, field::CONTROLLER, CONTEXT_BASE, CONTEXT_BASE + 0x30000, DATA_BASE, SCRATCH_BASE, SCRATCH_BASE + SCRATCH_SIZE - 8, OTHERS_BASE, OTHERS_BASE + memory::RESOURCE_SPAN];
        let code: Vec<I> = shapes.iter().map(|&(kind, a, b, c, imm, pick)| {
            let (a, b, c) = (r(a), r(b), r(c));
            let target = ((pick % len) * 8) as u32;
            let addr = addrs[pick % addrs.len()];
            let op = BinOp::ALL[pick % BinOp::ALL.len()];
            match kind {
                0 => I::Nop,
                1 => if pick % 4 == 0 { I::Accept } else { I::Nop },
                2 => I::Reject { reason: a, code: imm },
                3 => I::LoadImm { rd: a, imm: if pick % 2 == 0 { imm } else { addr } },
                4 => I::LoadHigh { rd: a, imm: if pick % 2 == 0 { imm } else { addr } },
                5 => I::Str { rd: a, offset: [0, 9, 14][pick % 3] },
                6 => I::Mov { rd: a, ra: b },
                7 => I::Load { rd: a, addr },
                8 => I::LoadR { rd: a, base: b, offset: imm % 256 },
                9 => I::LoadByte { rd: a, base: b, offset: addr },
                10 => I::Store { src: a, addr },
                11 => I::StoreR { src: a, base: b, offset: addr },
                12 => I::StoreByte { src: a, base: b, offset: imm },
                13..=15 => I::Bin { op, rd: a, ra: b, rb: c },
                16 => I::AddImm { rd: a, ra: b, imm },
                17 => I::Not { rd: a, ra: b },
                18 => I::SliceEq { rd: a, ra: b, rb: c },
                19 => I::Jmp { target },
                20 => I::Jz { cond: a, target },
                21 => I::Jnz { cond: a, target },
                22 => match pick % 3 {
                    0 => I::Hash { rd: a, ra: b },
                    1 => I::Poseidon { rd: a, ra: b },
                    _ => I::AssertDigest { handle: a, expected: b },
                },
                23 => I::SliceEqData { rd: a, ra: b, offset: [0, 9, 14][pick % 3] },
                24 => I::CmpImm { cmp: Compare::ALL[pick % Compare::ALL.len()], rd: a, ra: b, imm },
                25 => I::JumpCmpImm { cmp: Compare::ALL[pick % Compare::ALL.len()], ra: a, imm: imm as u8, target },
                _ => I::Env { rd: a, key: b },
            }
        }).collect();
        let p = Program::new(code, data).expect("well-formed");
        let bytes = p.encode();
        prop_assert_eq!(Program::decode(&bytes).expect("decodes"), p.clone());
        let mut case = Case::new();
        case.readable_others = readable;
        case.others = vec![resource(3, "b")];
        case.budget = 500;
        let first = case.run(&p);
        prop_assert_eq!(case.run(&p), first);
        let _ = case.run_in(&p, Interpreter::new(500).with_trace(), &mut HashPool::new());
    }
}

/// HASH gives the program its request's number within the run, not the
/// pool's handle: what other operations filed before must not change what a
/// program does (nor may the thread its operation ran on).
#[test]
fn a_hash_handle_is_the_runs_request_number_whatever_the_pool_holds() {
    let (data, offs) = strings(&[b"not the first"]);
    let p = Program::new(
        vec![
            I::LoadImm { rd: r(2), imm: 0 },
            I::LoadHigh { rd: r(2), imm: SCRATCH_BASE },
            I::Hash { rd: r(3), ra: r(2) },
            I::Hash { rd: r(4), ra: r(2) },
            I::LoadImm { rd: r(7), imm: 1 },
            I::Bin { op: BinOp::Xor, rd: r(5), ra: r(4), rb: r(7) },
            I::Bin { op: BinOp::Or, rd: r(5), ra: r(5), rb: r(3) },
            I::Jnz { cond: r(5), target: 8 * 9 },
            I::Accept,
            I::Str { rd: r(6), offset: offs[0] },
            I::Reject { reason: r(6), code: 1 },
        ],
        data,
    )
    .expect("valid");
    for earlier in [0, 1, 1000] {
        let mut pool = HashPool::new();
        for i in 0..earlier {
            pool.hash(format!("another operation's request {i}"));
        }
        let outcome = Case::new().run_in(&p, Interpreter::new(100), &mut pool);
        assert!(outcome.is_ok(), "{earlier} requests filed before: {outcome:?}");
        assert_eq!(pool.pending_len(), earlier + 2);
    }
}
