//! `POSEIDON`: a logic program's Poseidon requests go to the hash pool,
//! numbered with its HASH requests, resolved at the flush to exactly the
//! native hash under the logic domain, and every malformed input traps
//! before anything is filed.

use crate::vm_support;

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field, UniformRand};
use causality_vm::crypto::field::field_to_bytes;
use causality_vm::crypto::poseidon::{hash, reference_hash, HashDomain};
use causality_vm::hash::HashPool;
use causality_vm::vm::{Compare, Instruction as I, Interpreter, Program, Reg, HEADER_SIZE, MAX_POSEIDON_INPUTS};
use causality_vm::ExecutionError;
use rand::SeedableRng;
use vm_support::{strings, Case};

fn r(n: u8) -> Reg {
    Reg::new(n).expect("test register")
}

fn encoded(inputs: &[Fr]) -> Vec<u8> {
    inputs.iter().flat_map(field_to_bytes).collect()
}

/// POSEIDON over the data string `input`, then ASSERT_DIGEST against `expected`.
fn poseidon_and_assert(input: &[u8], expected: [u8; 32]) -> Program {
    let (data, offs) = strings(&[input, &expected]);
    Program::new(
        vec![
            I::Str { rd: r(2), offset: offs[0] },
            I::Poseidon { rd: r(3), ra: r(2) },
            I::Str { rd: r(4), offset: offs[1] },
            I::AssertDigest { handle: r(3), expected: r(4) },
            I::Accept,
        ],
        data,
    )
    .expect("valid")
}

fn trap_reason(result: Result<causality_vm::vm::LogicOutcome, ExecutionError>) -> (usize, String) {
    match result {
        Err(ExecutionError::InvalidInstruction { offset, reason }) => (offset, reason),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn values_equal_the_native_and_reference_hash_at_the_flush() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
    let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
    for n in [1, 2, 3, 4, 15, MAX_POSEIDON_INPUTS] {
        let random: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let edge: Vec<Fr> = (0..n).map(|i| edges[i % 3]).collect();
        for inputs in [random, edge] {
            let value = hash(HashDomain::Logic, &inputs);
            assert_eq!(value, reference_hash(HashDomain::Logic, &inputs), "{n} inputs");
            let mut pool = HashPool::new();
            let program = poseidon_and_assert(&encoded(&inputs), field_to_bytes(&value));
            assert_eq!(program.format(), 3, "POSEIDON is a format-3 instruction");
            let outcome = Case::new().run_in(&program, Interpreter::new(10_000), &mut pool).expect("accepts");
            // Filed, not hashed: the request waits in the pool.
            assert_eq!((pool.poseidon_pending_len(), pool.pending_len()), (1, 0));
            let err = outcome.deferred[0].check(&pool).expect_err("not resolved yet");
            assert!(err.to_string().contains("Poseidon request 0 is not resolved"), "{err}");
            pool.flush().expect("flush");
            outcome.deferred[0].check(&pool).expect("the value matches");
        }
    }
}

#[test]
fn the_logic_domain_is_apart_from_the_protocols_hashes() {
    let x = [Fr::from(42u64)];
    let logic = hash(HashDomain::Logic, &x);
    for domain in [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier] {
        assert_ne!(hash(domain, &x), logic, "{domain:?}");
    }
}

#[test]
fn a_wrong_value_fails_at_the_flush_naming_both() {
    let inputs = [Fr::from(7u64), Fr::from(8u64)];
    let value = hash(HashDomain::Logic, &inputs);
    let wrong = field_to_bytes(&(value + Fr::ONE));
    let mut pool = HashPool::new();
    let outcome = Case::new()
        .run_in(&poseidon_and_assert(&encoded(&inputs), wrong), Interpreter::new(10_000), &mut pool)
        .expect("accepts: the check waits for the flush");
    pool.flush().expect("flush");
    match outcome.deferred[0].check(&pool).unwrap_err() {
        ExecutionError::StateCommitmentError { reason } => {
            assert!(reason.contains("Poseidon is"), "{reason}");
            assert!(reason.contains(&hex(&field_to_bytes(&value))), "{reason}");
            assert!(reason.contains(&hex(&wrong)), "{reason}");
            assert!(reason.contains("pc 0x0018"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HASH, POSEIDON, HASH number 0, 1, 2 in the run whatever the pool holds
/// of other runs' requests, and each assertion finds its own request.
#[test]
fn hash_and_poseidon_requests_share_the_runs_numbering() {
    let inputs = [Fr::from(3u64)];
    let value = field_to_bytes(&hash(HashDomain::Logic, &inputs));
    let (data, offs) = strings(&[b"abc", &encoded(&inputs), blake3::hash(b"abc").as_bytes(), &value]);
    let program = Program::new(
        vec![
            I::Str { rd: r(1), offset: offs[0] },
            I::Hash { rd: r(2), ra: r(1) },
            I::Str { rd: r(3), offset: offs[1] },
            I::Poseidon { rd: r(4), ra: r(3) },
            I::Hash { rd: r(5), ra: r(1) },
            // Reject unless the numbers are 0, 1, 2.
            I::Jnz { cond: r(2), target: 8 * 12 },
            I::JumpCmpImm { cmp: Compare::Ne, ra: r(4), imm: 1, target: 8 * 12 },
            I::JumpCmpImm { cmp: Compare::Ne, ra: r(5), imm: 2, target: 8 * 12 },
            I::Str { rd: r(6), offset: offs[2] },
            I::Str { rd: r(7), offset: offs[3] },
            I::AssertDigest { handle: r(4), expected: r(7) },
            I::Accept,
            I::Reject { reason: r(0), code: 9 },
        ],
        data,
    )
    .expect("valid");
    let mut pool = HashPool::new();
    pool.hash(b"another run's request");
    pool.poseidon(HashDomain::Nullifier, &[Fr::from(1u64), Fr::from(2u64)]).expect("filed");
    let outcome = Case::new().run_in(&program, Interpreter::new(10_000), &mut pool).expect("numbers 0, 1, 2");
    assert_eq!((pool.pending_len(), pool.poseidon_pending_len()), (3, 2));
    pool.flush().expect("flush");
    outcome.deferred[0].check(&pool).expect("the Poseidon assertion finds its own request, pool handle 1");

    let both = Program::new(
        vec![
            I::Str { rd: r(1), offset: offs[0] },
            I::Str { rd: r(3), offset: offs[1] },
            I::Poseidon { rd: r(4), ra: r(3) },
            I::Hash { rd: r(2), ra: r(1) },
            I::Str { rd: r(6), offset: offs[2] },
            I::Str { rd: r(7), offset: offs[3] },
            I::AssertDigest { handle: r(2), expected: r(6) },
            I::AssertDigest { handle: r(4), expected: r(7) },
            // Handle 1 is the BLAKE3 request: asserting the Poseidon value on it fails at the flush.
            I::AssertDigest { handle: r(2), expected: r(7) },
            I::Accept,
        ],
        strings(&[b"abc", &encoded(&inputs), blake3::hash(b"abc").as_bytes(), &value]).0,
    )
    .expect("valid");
    let mut pool = HashPool::new();
    let outcome = Case::new().run_in(&both, Interpreter::new(10_000), &mut pool).expect("accepts");
    pool.flush().expect("flush");
    outcome.deferred[0].check(&pool).expect("BLAKE3 of abc");
    outcome.deferred[1].check(&pool).expect("the Poseidon value");
    let err = outcome.deferred[2].check(&pool).expect_err("a BLAKE3 digest is not the Poseidon value");
    assert!(err.to_string().contains("BLAKE3 is"), "{err}");
}

#[test]
fn malformed_inputs_trap_before_anything_is_filed() {
    let p = field_to_bytes(&-Fr::ONE);
    let mut modulus = p;
    modulus[0] += 1;
    let one = field_to_bytes(&Fr::ONE);
    let too_many = vec![0u8; 32 * (MAX_POSEIDON_INPUTS + 1)];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "the inputs are 0 bytes"),
        (vec![1; 31], "the inputs are 31 bytes"),
        (vec![1; 33], "the inputs are 33 bytes"),
        (too_many, "the inputs are 544 bytes"),
        ([one, modulus].concat(), "input element 1 is not a canonical BN254 scalar"),
        ([[0xff; 32], one].concat(), "input element 0 is not a canonical BN254 scalar"),
    ];
    for (input, expected) in cases {
        let mut pool = HashPool::new();
        let (offset, reason) =
            trap_reason(Case::new().run_in(&poseidon_and_assert(&input, [0; 32]), Interpreter::new(10_000), &mut pool));
        assert_eq!(offset, HEADER_SIZE + 8, "the POSEIDON instruction's offset");
        assert!(reason.contains(expected) && reason.contains("POSEIDON r3, r2"), "{reason}");
        assert_eq!(pool.poseidon_pending_len(), 0, "nothing filed for {expected}");
    }
    // p − 1 is the largest element and is accepted.
    let mut pool = HashPool::new();
    let value = field_to_bytes(&hash(HashDomain::Logic, &[-Fr::ONE]));
    Case::new().run_in(&poseidon_and_assert(&p, value), Interpreter::new(10_000), &mut pool).expect("p - 1");
}

/// A permutation costs `UNITS_PER_PERMUTATION` of the budget: two inputs
/// (one permutation, 64 bytes) take 5 instructions + 1 byte unit + 256.
#[test]
fn poseidon_is_charged_per_permutation() {
    use causality_vm::vm::UNITS_PER_PERMUTATION;
    let inputs = [Fr::from(1u64), Fr::from(2u64)];
    let program = poseidon_and_assert(&encoded(&inputs), field_to_bytes(&hash(HashDomain::Logic, &inputs)));
    let needed = 5 + 1 + UNITS_PER_PERMUTATION;
    let outcome = Case::new().run_in(&program, Interpreter::new(needed), &mut HashPool::new()).expect("enough");
    assert_eq!(outcome.instructions, needed);
    let err = Case::new().run_in(&program, Interpreter::new(needed - 1), &mut HashPool::new()).unwrap_err();
    assert!(matches!(err, ExecutionError::Timeout { .. }), "{err:?}");
    // Sixteen inputs are eight permutations.
    let sixteen: Vec<Fr> = (0..16u64).map(Fr::from).collect();
    let program = poseidon_and_assert(&encoded(&sixteen), field_to_bytes(&hash(HashDomain::Logic, &sixteen)));
    let outcome = Case::new().run_in(&program, Interpreter::new(100_000), &mut HashPool::new()).expect("accepts");
    assert_eq!(outcome.instructions, 5 + 8 + 8 * UNITS_PER_PERMUTATION);
}

#[test]
fn poseidon_programs_are_format_3_with_one_encoding() {
    let inputs = [Fr::from(5u64)];
    let program = poseidon_and_assert(&encoded(&inputs), [0; 32]);
    let bytes = program.encode();
    assert_eq!(&bytes[4..6], &[3, 0]);
    assert_eq!(Program::decode(&bytes).expect("decodes"), program);
    assert!(program.disassemble().contains("POSEIDON r3, r2"), "{}", program.disassemble());
    let mut older = bytes;
    older[4] = 2;
    let err = Program::decode(&older).expect_err("format 2 cannot hold POSEIDON");
    assert!(err.to_string().contains("needs program format 3"), "{err}");
}
