//! TEL: the examples compile and decide the right way, the language's
//! features behave as documented (under both code generators: every
//! verdict here is also TEL 2's), errors point at the exact line:column,
//! and `cvm tel` prints stable ContentIds.

use crate::vm_support;

use std::process::Command;

use causality_vm::resource::{LifecycleState, OperationKind};
use causality_vm::tel::{self, TelError, TelVersion};
use causality_vm::vm::{LogicOutcome, Program, Role};
use causality_vm::{ContentId, DomainId, ExecutionError};
use vm_support::{resource, Case};

pub(super) fn example(name: &str) -> String {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A source compiled by both code generators; it is TEL 1's program where a
/// `Program` is wanted, and `verdict` holds TEL 2's to the same decisions.
pub(super) struct Compiled {
    pub(super) v1: Program,
    pub(super) v2: Program,
}

impl std::ops::Deref for Compiled {
    type Target = Program;

    fn deref(&self) -> &Program {
        &self.v1
    }
}

/// `source` compiled by each generator, whatever its `tel N;` line says.
pub(super) fn compiled(source: &str) -> Compiled {
    let v1 = tel::compile_as(source, TelVersion::V1).unwrap_or_else(|e| panic!("TEL 1: {}", e.render(source)));
    let v2 = tel::compile_as(source, TelVersion::V2).unwrap_or_else(|e| panic!("TEL 2: {}", e.render(source)));
    Compiled { v1, v2 }
}

/// What a run decided, without the pc (which differs between the generators).
pub(super) fn decision(result: &Result<LogicOutcome, ExecutionError>) -> String {
    match result {
        Ok(_) => "accept".into(),
        Err(ExecutionError::InvalidResourceState { reason, .. }) => {
            let tail = reason.find(": code").map_or(reason.as_str(), |at| &reason[at..]);
            format!("reject{tail}")
        }
        // Which trap, without the instruction and pc it names.
        Err(ExecutionError::InvalidInstruction { reason, .. }) => {
            let after_pc = reason.find(" at pc 0x").map_or(reason.as_str(), |at| &reason[at + 9..]);
            format!("trap{}", after_pc.find(": ").map_or("", |at| &after_pc[at..]))
        }
        Err(ExecutionError::MemoryAccessViolation { address, access, reason, .. }) => {
            format!("memory {access} of {address:#x}: {reason}")
        }
        Err(other) => other.kind().to_string(),
    }
}

/// `Ok(())` on accept, the rejection reason on reject; other errors panic.
/// TEL 2's program of the same source must decide the same way (the same
/// code and reason; only the pc in the message differs).
fn verdict(program: &Compiled, case: &Case) -> Result<(), String> {
    let decide = |result: Result<LogicOutcome, ExecutionError>| match result {
        Ok(_) => Ok(()),
        Err(ExecutionError::InvalidResourceState { reason, .. }) => Err(reason),
        Err(other) => panic!("expected accept or reject, got {other}"),
    };
    let (first, second) = (case.run(&program.v1), case.run(&program.v2));
    assert_eq!(decision(&first), decision(&second), "TEL 2 decides differently:\n{}", program.v2.disassemble());
    decide(first)
}

fn assert_rejects(program: &Compiled, case: &Case, needle: &str) {
    match verdict(program, case) {
        Err(reason) => assert!(reason.contains(needle), "rejected with {reason:?}, expected {needle:?}"),
        Ok(()) => panic!("accepted, expected a rejection containing {needle:?}"),
    }
}

fn transfer_case(quantity: u64, others: &[(u64, &str)]) -> Case {
    let mut case = Case::new();
    case.subject = resource(quantity, "alice");
    case.others = others
        .iter()
        .map(|(q, fd)| {
            let mut r = resource(*q, "bob");
            r.fungibility_domain = (*fd).into();
            r
        })
        .collect();
    case
}

#[test]
fn every_example_compiles_and_round_trips() {
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tel") {
            let source = std::fs::read_to_string(&path).expect("read");
            let program = compiled(&source);
            assert_eq!(Program::decode(&program.encode()).expect("decodes"), program.v1, "{}", path.display());
            assert_eq!(Program::decode(&program.v2.encode()).expect("decodes"), program.v2, "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 3, "expected at least three TEL examples, found {count}");
}

#[test]
fn fungible_token_decides_transfers_mints_and_burns() {
    let p = compiled(&example("fungible_token.tel"));
    assert_eq!(verdict(&p, &transfer_case(100, &[(60, "gold"), (40, "gold")])), Ok(()));
    assert_rejects(&p, &transfer_case(100, &[(60, "gold"), (40, "silver")]), "gold can only be");
    let mut blind = transfer_case(100, &[(100, "gold")]);
    blind.readable_others = false;
    assert_rejects(&p, &blind, "cannot see the other side");
    assert_rejects(&p, &transfer_case(2_000_000, &[]), "more than 1000000 units");
    assert_rejects(&p, &transfer_case(0, &[]), "at least one unit");
    let mut silver = transfer_case(5, &[]);
    silver.subject.fungibility_domain = "silver".into();
    assert_rejects(&p, &silver, "not a gold resource");

    let mut mint = Case::new();
    mint.operation = OperationKind::Create;
    mint.role = Role::Created;
    assert_rejects(&p, &mint, "gold can only be");
    mint.subject.controller = "treasury".into();
    assert_eq!(verdict(&p, &mint), Ok(()));

    let mut read = Case::new();
    read.operation = OperationKind::Read;
    read.role = Role::Read;
    assert_eq!(verdict(&p, &read), Ok(()));
}

#[test]
fn time_locked_opens_at_the_unlock_time_and_closes_30_days_later() {
    let p = compiled(&example("time_locked.tel"));
    let unlock = 1_767_225_600u64;
    let at = |now: u64, controller: &str| {
        let mut case = Case::new();
        case.ctx.timestamp = now;
        case.subject.controller = controller.into();
        case
    };
    assert_rejects(&p, &at(unlock - 1, "alice"), "locked until 1767225600");
    assert_eq!(verdict(&p, &at(unlock, "alice")), Ok(()));
    assert_eq!(verdict(&p, &at(unlock + 30 * 86_400 - 1, "alice")), Ok(()));
    assert_rejects(&p, &at(unlock + 30 * 86_400, "alice"), "the claim window has closed");
    assert_eq!(verdict(&p, &at(unlock + 365 * 86_400, "escrow")), Ok(()));
    assert_rejects(&p, &at(unlock - 1, "escrow"), "locked until");
    let mut created = at(0, "alice");
    created.role = Role::Created;
    assert_eq!(verdict(&p, &created), Ok(()));
}

#[test]
fn controller_only_updates() {
    let p = compiled(&example("controller_only.tel"));
    let update = || {
        let mut case = Case::new();
        case.operation = OperationKind::Update;
        case.role = Role::UpdatedBefore;
        case.subject.controller = "registry".into();
        case
    };
    assert_eq!(verdict(&p, &update()), Ok(()));
    let mut after = update();
    after.role = Role::UpdatedAfter;
    assert_eq!(verdict(&p, &after), Ok(()));
    let mut stranger = update();
    stranger.subject.controller = "mallory".into();
    assert_rejects(&p, &stranger, "only the registry may change this record");
    let mut paused = update();
    paused.ctx.environment.insert("maintenance".into(), "on".into());
    assert_rejects(&p, &paused, "changes are paused for maintenance");
    paused.ctx.environment.insert("maintenance".into(), "off".into());
    assert_eq!(verdict(&p, &paused), Ok(()));
    let mut foreign = update();
    foreign.subject.domain = DomainId::new("elsewhere");
    assert_rejects(&p, &foreign, "cross-domain changes are not allowed");
    let mut locked = update();
    locked.subject.state = LifecycleState::Locked;
    assert_rejects(&p, &locked, "only active records change");
    let mut old = update();
    old.subject.version = 1000;
    assert_rejects(&p, &old, "no rule accepted the operation");
}

#[test]
fn aggregates_sum_count_all_any_and_self() {
    let conserved = compiled("require sum(others, quantity) == quantity else \"not conserved\"; accept;");
    assert_eq!(verdict(&conserved, &transfer_case(100, &[(60, "gold"), (40, "gold")])), Ok(()));
    assert_rejects(&conserved, &transfer_case(100, &[(60, "gold"), (41, "gold")]), "not conserved");
    assert_eq!(verdict(&conserved, &transfer_case(0, &[])), Ok(()));

    let counting = compiled("accept if count(others) == 3 and count(others, quantity > 10) == 2;");
    assert_eq!(verdict(&counting, &transfer_case(1, &[(5, "g"), (11, "g"), (12, "g")])), Ok(()));
    assert!(verdict(&counting, &transfer_case(1, &[(5, "g"), (10, "g"), (12, "g")])).is_err());

    let any = compiled("accept if any(others, fungibility_domain == \"silver\");");
    assert_eq!(verdict(&any, &transfer_case(1, &[(5, "gold"), (5, "silver")])), Ok(()));
    assert!(verdict(&any, &transfer_case(1, &[(5, "gold")])).is_err());
    assert!(verdict(&any, &transfer_case(1, &[])).is_err());

    let bounded = compiled("accept if all(others, quantity <= self.quantity);");
    assert_eq!(verdict(&bounded, &transfer_case(10, &[(10, "g"), (3, "g")])), Ok(()));
    assert!(verdict(&bounded, &transfer_case(10, &[(11, "g")])).is_err());
    assert_eq!(verdict(&bounded, &transfer_case(10, &[])), Ok(()));

    // Nested: every other has some other (possibly itself) with the same quantity.
    let nested = compiled("accept if all(others, any(others, quantity == 7) and quantity > 0);");
    assert_eq!(verdict(&nested, &transfer_case(1, &[(7, "g"), (8, "g")])), Ok(()));
    assert!(verdict(&nested, &transfer_case(1, &[(6, "g"), (8, "g")])).is_err());
}

#[test]
fn and_short_circuits_before_touching_unreadable_others() {
    let guarded = compiled("accept if others_readable and all(others, quantity > 0); reject \"blind\";");
    let mut case = transfer_case(1, &[(5, "gold")]);
    case.readable_others = false;
    assert_rejects(&guarded, &case, "blind");
    let unguarded = compiled("accept if all(others, quantity > 0);");
    for program in [&unguarded.v1, &unguarded.v2] {
        assert!(matches!(case.run(program), Err(ExecutionError::MemoryAccessViolation { .. })));
    }
}

#[test]
fn time_enums_strings_and_numbers() {
    let window = compiled("accept if after 1000 and before 2000;");
    for (now, ok) in [(999, false), (1000, true), (1999, true), (2000, false)] {
        let mut case = Case::new();
        case.ctx.timestamp = now;
        assert_eq!(verdict(&window, &case).is_ok(), ok, "now = {now}");
    }
    let durations = compiled("accept if now >= 1h + 2m + 3s and now < 1w;");
    let mut case = Case::new();
    case.ctx.timestamp = 3723;
    assert!(verdict(&durations, &case).is_ok());
    case.ctx.timestamp = 3722;
    assert!(verdict(&durations, &case).is_err());

    let states = compiled("accept if state in [active, locked] and role != created and op == transfer;");
    let mut case = Case::new();
    assert!(verdict(&states, &case).is_ok());
    case.subject.state = LifecycleState::Frozen;
    assert!(verdict(&states, &case).is_err());

    let big = compiled("accept if quantity == 5_000_000_000 and not (quantity != 5000000000);");
    let mut case = Case::new();
    case.subject.quantity = 5_000_000_000;
    assert!(verdict(&big, &case).is_ok());
    case.subject.quantity = 5_000_000_000 % (1 << 32);
    assert!(verdict(&big, &case).is_err());

    let escaped = compiled(r#"accept if controller == "a\"b\\c";"#);
    let mut case = Case::new();
    case.subject.controller = "a\"b\\c".into();
    assert!(verdict(&escaped, &case).is_ok());

    let missing_env = compiled("accept if env(\"absent\") == \"\" and context_domain == \"bank\";");
    assert!(verdict(&missing_env, &Case::new()).is_ok());
}

#[test]
fn rules_decide_in_order_with_their_number_as_code() {
    let p = compiled("accept if quantity == 1;\nreject \"second\" if quantity == 2;\nrequire quantity < 10;\naccept;");
    let with = |q: u64| {
        let mut case = Case::new();
        case.subject.quantity = q;
        verdict(&p, &case)
    };
    assert_eq!(with(1), Ok(()));
    let second = with(2).unwrap_err();
    assert!(second.contains("code 2: second"), "{second}");
    let third = with(10).unwrap_err();
    assert!(third.contains("code 3: requirement of rule 3 (line 3) does not hold"), "{third}");
    assert_eq!(with(5), Ok(()));
    let empty = compiled("# nothing but a comment\n");
    assert!(verdict(&empty, &Case::new()).unwrap_err().contains("code 0: no rule accepted the operation"));
}

#[test]
fn runtime_overflow_traps() {
    let p = compiled("accept if quantity * quantity > 0;");
    let mut case = Case::new();
    case.subject.quantity = 1 << 33;
    for program in [&p.v1, &p.v2] {
        match case.run(program).unwrap_err() {
            ExecutionError::InvalidInstruction { reason, .. } => {
                assert!(reason.contains("arithmetic overflow"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Compile `source` expecting an error at `line:col` whose message contains `needle`.
fn error_at(source: &str, line: usize, col: usize, needle: &str) {
    let err: TelError = match tel::compile(source) {
        Err(err) => err,
        Ok(_) => panic!("{source:?} compiled"),
    };
    assert_eq!((err.line, err.col), (line, col), "{source:?}: {err}");
    assert!(err.message.contains(needle), "{source:?}: {err}");
    assert!(err.to_string().starts_with(&format!("{line}:{col}: ")), "{err}");
}

#[test]
fn errors_point_at_the_exact_line_and_column() {
    error_at("accept if quantity > ;", 1, 22, "expected a value, found `;`");
    error_at("reject \"oops if quantity > 1;", 1, 8, "unterminated string");
    error_at("accept if quantity == \"x\";", 1, 20, "cannot compare a number with a string");
    error_at("accept if op == transfer;\naccept if owner == \"bob\";", 2, 11, "unknown name `owner`");
    error_at("accept if quantity > 1\naccept;", 2, 1, "expected `;` to end the rule, found `accept`");
    error_at("accept if op == transfr;", 1, 17, "`transfr` is not an operation kind");
    error_at("accept if quantity > 1 && now > 5;", 1, 24, "write `and`");
    error_at("accept if quantity < 99999999999999999999;", 1, 22, "does not fit in 64 bits");
    error_at("accept if 1 < quantity < 5;", 1, 24, "cannot be chained");
    error_at("accept if quantity;", 1, 11, "a condition needs true/false, but this is a number");
    error_at("accept if now > 5y;", 1, 18, "unknown duration unit `y`");
    error_at("accept if now > 18446744073709551615 + 1;", 1, 38, "overflows");
    error_at("accept;\n\n  # comment\n    reject \"x\" if transfer;", 4, 19, "is an operation kind value");
    error_at("accept if sum(others, controller) > 1;", 1, 23, "the body of `sum` needs a number, but this is a string");
    error_at("accept if all(quantity > 1);", 1, 15, "first argument of `all` must be `others`");
    error_at("accept if frobnicate(others);", 1, 11, "unknown function `frobnicate`");
    error_at("allow;", 1, 1, "expected a rule");
    error_at("accept if quantity = 1;", 1, 20, "compare with `==`");
    error_at("accept if others > 1;", 1, 11, "`others` can only be");
    error_at("require controller == \"a\" else 5;", 1, 32, "expected a reason string");
}

#[test]
fn too_complex_rules_are_reported_at_the_rule() {
    let mut expr = "quantity".to_string();
    for _ in 0..20 {
        expr = format!("quantity + ({expr})");
    }
    error_at(&format!("accept;\n  accept if {expr} > 0;"), 2, 3, "too complex");
}

#[test]
fn pathological_nesting_is_an_error_not_a_crash() {
    let deep = format!("accept if {}quantity{} > 0;", "(".repeat(100_000), ")".repeat(100_000));
    error_at(&deep, 1, 1, "split it into several rules");
    let long = format!("accept if quantity{} > 0;", " + quantity".repeat(100_000));
    error_at(&long, 1, 1, "more than the limit of 1000");
    let nots = format!("accept;\naccept if {}true;", "not ".repeat(100_000));
    error_at(&nots, 2, 1, "split it into several rules");
    // Just under the limit compiles (and needs few registers: a left-leaning chain).
    let fine = format!("accept if quantity{} > 0;", " + 1".repeat(400));
    compiled(&fine);
}

/// Each value of an `in` list repeats its left side, so nested lists
/// multiply: 60 levels of `(… in [true, true])` (360 tokens) would check
/// 3^60 expressions. Refused at once; a wide flat list still compiles.
#[test]
fn nested_in_lists_that_multiply_are_an_error_not_an_explosion() {
    let mut expr = "true".to_string();
    for _ in 0..60 {
        expr = format!("({expr}) in [true, true]");
    }
    let source = format!(
        "accept;
accept if {expr};"
    );
    // Refused by the checker, which both generators share.
    let err = tel::compile(&source).unwrap_err();
    assert!(err.to_string().contains("nested `in` lists multiply"), "{err}");
    let values: Vec<String> = (0..300).map(|v| v.to_string()).collect();
    compiled(&format!("accept if quantity in [{}];", values.join(", ")));
}

#[test]
fn errors_render_with_the_source_line() {
    let source = "accept if op == transfer;\naccept if owner == \"bob\";";
    let err = tel::compile(source).unwrap_err();
    let rendered = err.render(source);
    assert_eq!(
        rendered,
        "2:11: unknown name `owner` (fields: quantity, version, state, controller, domain, fungibility_domain, contents; \
         context: now, op, role, others_readable, context_domain)\n2 | accept if owner == \"bob\";\n  |           ^"
    );
}

#[test]
fn the_encoding_of_a_tiny_program_is_pinned() {
    // `accept;` compiles to ACCEPT, then the final rejection (STR r0; REJECT r0, 0).
    let program = compiled("accept;");
    let reason = b"no rule accepted the operation";
    let mut expected = b"CVMP\x01\x00\x00\x00\x03\x00\x00\x00".to_vec();
    expected.extend_from_slice(&(4 + reason.len() as u32).to_le_bytes());
    expected.extend_from_slice(&[0x01, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0x12, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    expected.extend_from_slice(reason);
    assert_eq!(program.encode(), expected);
}

// --------------------------------------------------------------------- CLI

fn cvm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cvm")).args(args).output().expect("run cvm")
}

#[test]
fn cli_compile_prints_a_stable_content_id_and_disassembly() {
    let path = format!("{}/examples/fungible_token.tel", env!("CARGO_MANIFEST_DIR"));
    let first = cvm(&["tel", "compile", &path]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = cvm(&["tel", "compile", &path]);
    assert_eq!(first.stdout, second.stdout);
    let stdout = String::from_utf8(first.stdout).expect("utf8");
    let expected = ContentId::of_encoding(&compiled(&example("fungible_token.tel")).encode());
    assert_eq!(stdout.lines().next(), Some(expected.to_string().as_str()));
    assert!(stdout.contains("ACCEPT") && stdout.contains("\"treasury\""), "{stdout}");

    let json = cvm(&["--json", "tel", "compile", &path]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["content_id"], expected.to_string());

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("token.cvmp");
    assert!(cvm(&["tel", "compile", &path, "--out", out.to_str().expect("utf8 path")]).status.success());
    let bytes = std::fs::read(&out).expect("written");
    assert_eq!(ContentId::of_encoding(&bytes), expected);
    Program::decode(&bytes).expect("the written program decodes");
}

#[test]
fn cli_check_reports_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.tel");
    std::fs::write(&bad, "accept if op == transfer;\naccept if owner == \"bob\";\n").expect("write");
    let bad = bad.to_str().expect("utf8 path");
    let output = cvm(&["tel", "check", bad]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{bad}:2:11: unknown name `owner`")), "{stderr}");
    let json = cvm(&["--json", "tel", "check", bad]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!((value["error"]["line"].as_u64(), value["error"]["column"].as_u64()), (Some(2), Some(11)));

    let good = format!("{}/examples/time_locked.tel", env!("CARGO_MANIFEST_DIR"));
    let output = cvm(&["tel", "check", &good]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(": ok ("));
}

pub(super) fn resource_json(dir: &std::path::Path, name: &str, quantity: u64, fungibility_domain: &str) -> String {
    let path = dir.join(name);
    let json = serde_json::json!({
        "logic": ContentId::default().to_string(),
        "domain": "bank",
        "fungibility_domain": fungibility_domain,
        "quantity": quantity,
        "nullifier_key_commitment": "07".repeat(32),
        "controller": "alice",
        "nonce": "00".repeat(32),
    });
    std::fs::write(&path, json.to_string()).expect("write");
    path.to_str().expect("utf8 path").to_string()
}

#[test]
fn cli_run_gives_the_verdict_and_the_debug_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("{}/examples/fungible_token.tel", env!("CARGO_MANIFEST_DIR"));
    let subject = resource_json(dir.path(), "gold.json", 100, "gold");
    let gold = resource_json(dir.path(), "gold60.json", 60, "gold");
    let silver = resource_json(dir.path(), "silver.json", 40, "silver");

    let ok = cvm(&["tel", "run", &token, "--subject", &subject, "--other", &gold]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("accept ("));
    // An environment key given twice is refused, as in a batch file, not overwritten.
    let twice = cvm(&["tel", "run", &token, "--subject", &subject, "--other", &gold, "--env", "k=a", "--env", "k=b"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("--env k: given twice"));

    let program_id = ContentId::of_encoding(&compiled(&example("fungible_token.tel")).encode());
    let bad = cvm(&["tel", "run", &token, "--subject", &subject, "--other", &silver, "--trace"]);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.starts_with("#0     0000: LOAD r0, [0x00000038]"), "{stdout}");
    assert!(stdout.contains(&format!("rejected by logic {program_id}")), "{stdout}");
    assert!(stdout.contains("code 9: gold can only be"), "{stdout}");

    let debug = cvm(&[
        "--json",
        "tel",
        "run",
        "--mode",
        "debug",
        &token,
        "--subject",
        &subject,
        "--unreadable-others",
        "--op",
        "transfer",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&debug.stdout).expect("json");
    assert_eq!(value["accepted"], false);
    assert_eq!(value["error"]["kind"], "InvalidResourceState");
    assert!(value["trace"]["steps"].as_array().is_some_and(|steps| !steps.is_empty()));

    let locked = format!("{}/examples/time_locked.tel", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvm"))
        .args(["tel", "run", &locked, "--subject", &subject, "--now", "5", "--step"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(b"\nr\nq\n").expect("write");
    let stepped = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&stepped.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("#0 ") && lines[1].starts_with("#1 ") && lines[2].starts_with("    r0=0x4 r1=0x1"),
        "{text}"
    );
    assert!(lines[3].starts_with("#2 "), "{text}");
    assert!(lines[4].starts_with("reject: "), "{text}");

    let unknown = cvm(&["tel", "run", &token, "--subject", &subject, "--role", "owner"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown role \"owner\""));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "accept",
        "reject",
        "require",
        "if",
        "else",
        "and",
        "or",
        "not",
        "in",
        "after",
        "before",
        "self",
        ".",
        "quantity",
        "version",
        "state",
        "controller",
        "domain",
        "now",
        "op",
        "role",
        "others",
        "others_readable",
        "transfer",
        "consumed",
        "active",
        "sum",
        "count",
        "all",
        "any",
        "env",
        "(",
        ")",
        "[",
        "]",
        ",",
        ";",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "0",
        "1",
        "18446744073709551615",
        "30d",
        "\"gold\"",
        "\"\"",
        "true",
        "false",
        "#",
        "\n",
        "\"",
    ];

    fn run_if_compiles(source: &str) {
        if let Ok(program) = tel::compile(source) {
            assert_eq!(Program::decode(&program.encode()).expect("decodes"), program);
            let mut case = transfer_case(100, &[(60, "gold"), (u64::MAX, "gold")]);
            let _ = case.run(&program);
            case.readable_others = false;
            let _ = case.run(&program);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_text_never_panics(source in "[a-z0-9 ()\\[\\],;.=<>!+*/%\"#_\n\t&|\\\\-]{0,80}") {
            run_if_compiles(&source);
        }

        #[test]
        fn random_token_sequences_never_panic(words in prop::collection::vec(prop::sample::select(WORDS), 0..40)) {
            run_if_compiles(&words.join(" "));
        }

        #[test]
        fn random_rules_never_panic(
            field in prop::sample::select(&["quantity", "version", "now", "sum(others, quantity)", "count(others)"][..]),
            op in prop::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]),
            value in any::<u64>(),
            extra in prop::sample::select(&["", " and others_readable", " or op == transfer", " and all(others, quantity > 0)"][..]),
        ) {
            let source = format!("reject \"r\" if {field} + 1 {op} {value}{extra};\naccept if {field} * 2 {op} {value};");
            let program = tel::compile(&source).expect("well-formed rules compile");
            run_if_compiles(&source);
            let _ = transfer_case(value, &[(value, "gold")]).run(&program);
        }
    }
}
