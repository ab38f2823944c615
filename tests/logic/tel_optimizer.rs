//! TEL 2, the optimizing code generator: it decides every operation as TEL 1
//! does (on the examples over a grid of inputs, and on random programs over
//! random inputs), executes fewer instructions on every example, and TEL 1's
//! output (so every existing program's ContentId) does not change.

use crate::vm_support;

use super::tel_programs::{compiled, decision, example, Compiled};
use causality_vm::resource::{LifecycleState, OperationKind};
use causality_vm::tel::{self, TelVersion};
use causality_vm::vm::{Instruction, Program, Role};
use causality_vm::ContentId;
use vm_support::{resource, Case};

/// Instructions a run executed, whatever it decided.
fn executed(program: &Program, case: &Case) -> u64 {
    let run = case.run_traced(program);
    run.trace.steps.len() as u64 + run.trace.omitted
}

/// Every operation and role, with and without readable others, a few
/// quantities, controllers and times, and two others of either domain.
fn grid() -> Vec<Case> {
    let mut cases = Vec::new();
    for operation in OperationKind::ALL {
        for role in Role::ALL {
            for (quantity, controller, fd) in [
                (100, "treasury", "gold"),
                (0, "registry", "gold"),
                (2_000_000, "escrow", "gold"),
                (5, "alice", "silver"),
            ] {
                for (readable, other_fd, now) in
                    [(true, "gold", 1_700_000_000), (false, "gold", 1_767_225_601), (true, "silver", 1_800_000_000)]
                {
                    let mut case = Case::new();
                    case.operation = operation;
                    case.role = role;
                    case.subject = resource(quantity, controller);
                    case.subject.fungibility_domain = fd.into();
                    case.others = [60, 40]
                        .iter()
                        .map(|q| {
                            let mut r = resource(*q, "bob");
                            r.fungibility_domain = other_fd.into();
                            r
                        })
                        .collect();
                    case.readable_others = readable;
                    case.ctx.timestamp = now;
                    if now == 1_800_000_000 {
                        case.ctx.environment.insert("maintenance".into(), "on".into());
                        case.subject.state = LifecycleState::Frozen;
                    }
                    cases.push(case);
                }
            }
        }
    }
    cases
}

#[test]
fn tel_1_output_is_frozen_so_existing_programs_keep_their_ids() {
    for (name, id) in [
        ("fungible_token.tel", "cid:blake3:81104d7b01db0593f3d525a1624c38bdaf9fb5fd94deb7dbe5ff4d8641c5940a"),
        ("time_locked.tel", "cid:blake3:2326614399f1f1e4dea8c4db5119b3751e272387e8a9a4d5fee91aaa42ca8448"),
        ("controller_only.tel", "cid:blake3:b5f861559174c372e1da8489447f592a7925973a6def35449bdf6c915a77d2aa"),
    ] {
        let source = example(name);
        let program = tel::compile(&source).expect("compiles");
        assert_eq!(program.format(), 1, "{name}");
        assert_eq!(ContentId::of_encoding(&program.encode()).to_string(), id, "{name}");
        // `tel 1;` says the same thing explicitly.
        let explicit = tel::compile(&format!("tel 1;\n{source}")).expect("compiles");
        assert_eq!(explicit, program, "{name}");
    }
}

#[test]
fn every_example_decides_the_same_under_tel_2_with_fewer_instructions() {
    let cases = grid();
    for name in ["fungible_token.tel", "time_locked.tel", "controller_only.tel"] {
        let Compiled { v1, v2 } = compiled(&example(name));
        assert_eq!(v2.format(), 2, "{name} uses the fused instructions");
        assert_eq!(Program::decode(&v2.encode()).expect("decodes"), v2);
        assert!(v2.instructions().len() < v1.instructions().len(), "{name}: shorter code");
        let (mut total1, mut total2) = (0, 0);
        for (index, case) in cases.iter().enumerate() {
            let (r1, r2) = (case.run(&v1), case.run(&v2));
            assert_eq!(decision(&r1), decision(&r2), "{name}, case {index}");
            let (n1, n2) = (executed(&v1, case), executed(&v2, case));
            assert!(n2 <= n1, "{name}, case {index}: TEL 2 ran {n2} instructions, TEL 1 {n1}");
            total1 += n1;
            total2 += n2;
        }
        assert!(total2 < total1, "{name}: {total2} instructions over the grid against {total1}");
    }
}

#[test]
fn the_tel_line_chooses_the_generator() {
    let body = "accept if op in [read, verify];\nreject \"no\";\n";
    let v2 = tel::compile(&format!("tel 2;\n{body}")).expect("compiles");
    assert_eq!(v2, tel::compile_as(body, TelVersion::V2).expect("compiles"));
    assert_eq!(tel::version_of(&format!("# a comment\ntel 2;\n{body}")).expect("parses"), TelVersion::V2);
    assert_eq!(tel::version_of(body).expect("parses"), TelVersion::V1);

    let err = tel::compile(&format!("tel 3;\n{body}")).expect_err("unknown version");
    assert_eq!((err.line, err.col), (1, 5), "at the number");
    assert!(err.message.contains("unsupported TEL version 3"), "{}", err.message);
    // One spelling: the lexer's other ways of writing a number are refused.
    for written in ["2s", "2_", "0002", "1m"] {
        let err = tel::compile(&format!("tel {written};\n{body}")).expect_err(written);
        assert_eq!((err.line, err.col), (1, 5), "{written}");
        assert!(err.message.contains(&format!("`tel {written};`")) || err.message.contains(written), "{}", err.message);
    }
    let err = tel::compile(&format!("{body}tel 2;\n")).expect_err("not first");
    assert_eq!(err.line, 3);
    assert!(err.message.contains("only be the first line"), "{}", err.message);
    let err = tel::compile("tel two;\naccept;").expect_err("not a number");
    assert!(err.message.contains("version number"), "{}", err.message);
}

#[test]
fn constants_fold_and_rules_after_an_unconditional_verdict_are_dropped() {
    let program = tel::compile_as(
        "reject \"never\" if 2 > 3 or \"a\" == \"b\";\n\
         require 1 + 1 == 2 and true;\n\
         accept if not false;\n\
         reject \"dead\" if quantity > 5;\n\
         accept if op == transfer;",
        TelVersion::V2,
    )
    .expect("compiles");
    assert_eq!(program.instructions(), &[Instruction::Accept], "{}", program.disassemble());

    // `require false` rejects unconditionally with its rule's code, and nothing follows.
    let program = tel::compile_as("accept if op == read;\nrequire 1 > 2 else \"closed\";\naccept;", TelVersion::V2)
        .expect("compiles");
    let mut case = Case::new();
    let reason = decision(&case.run(&program));
    assert_eq!(reason, "reject: code 2: closed");
    case.operation = OperationKind::Read;
    assert_eq!(decision(&case.run(&program)), "accept");
    assert!(!program.disassemble().contains("no rule accepted"));
}

#[test]
fn a_value_used_by_several_rules_is_loaded_once() {
    let source = "accept if op == read;\naccept if op == verify and quantity > 10;\n\
                  reject \"small\" if quantity < 5;\naccept if op == transfer and quantity <= 100;";
    let Compiled { v1, v2 } = compiled(source);
    let loads = |p: &Program| p.instructions().iter().filter(|i| matches!(i, Instruction::Load { .. })).count();
    // op once; quantity twice (see below).
    assert_eq!(loads(&v2), 3, "{}", v2.disassemble());
    assert_eq!(loads(&v1), 6);
    // `op` is loaded by rule 1, before any branch, so rule 4 on a transfer
    // reaches it loaded; `quantity` is loaded first on a path (rule 2's
    // right side) that not every operation takes, so rule 3 loads it again.
    let case = Case::new();
    let trace = |p: &Program| {
        let run = case.run_traced(p);
        assert!(run.result.is_ok());
        run.trace.steps.iter().filter(|s| matches!(s.instruction, Instruction::Load { .. })).count()
    };
    assert_eq!(trace(&v2), 2);
    assert_eq!(trace(&v1), 5);
}

#[test]
fn format_2_programs_are_versioned_and_have_one_encoding() {
    let Compiled { v1, v2 } = compiled("require fungibility_domain == \"gold\";\naccept if quantity > 7;");
    assert_eq!(v1.format(), 1);
    assert_eq!(v2.format(), 2);
    let bytes = v2.encode();
    assert_eq!(&bytes[4..6], &[2, 0]);
    // A format-1 header on format-2 code.
    let mut old = bytes.clone();
    old[4] = 1;
    let err = Program::decode(&old).expect_err("format 1 cannot hold SEQD");
    assert!(err.to_string().contains("needs program format 2"), "{err}");
    // A format-2 header on format-1 code would be a second id for the same program.
    let mut second = v1.encode();
    second[4] = 2;
    let err = Program::decode(&second).expect_err("one encoding per program");
    assert!(err.to_string().contains("its version must be 1"), "{err}");
    // Format 3 exists (POSEIDON) but this code does not need it.
    let mut newer = bytes.clone();
    newer[4] = 3;
    assert!(Program::decode(&newer).expect_err("format 3").to_string().contains("its version must be 2"));
    let mut future = bytes;
    future[4] = 4;
    assert!(Program::decode(&future).expect_err("format 4").to_string().contains("unsupported program format"));
}

mod differential {
    use super::*;
    use proptest::prelude::*;

    const INT_LEAVES: &[&str] = &[
        "quantity",
        "version",
        "now",
        "self.quantity",
        "self.version",
        "count(others)",
        "0",
        "1",
        "2",
        "100",
        "1_000_000",
        "4294967295",
        "4294967296",
        "18446744073709551615",
    ];
    const STR_LEAVES: &[&str] = &[
        "controller",
        "domain",
        "fungibility_domain",
        "self.controller",
        "context_domain",
        "env(\"tier\")",
        "\"gold\"",
        "\"alice\"",
        "\"\"",
    ];
    const BOOL_LEAVES: &[&str] = &[
        "true",
        "false",
        "others_readable",
        "op == transfer",
        "op in [read, verify]",
        "role == consumed",
        "role in [created, updated_after]",
        "state == active",
        "state != frozen",
        "after 1767225600",
        "before 1767225600",
        "controller in [\"alice\", \"gold\"]",
        "(quantity + 1) in [1, 101]",
        "(quantity / version) in [0, 33]",
        "env(\"tier\") == env(\"maintenance\")",
    ];

    fn int() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(INT_LEAVES).prop_map(str::to_string);
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), prop::sample::select(&["+", "-", "*", "/", "%"][..]), inner.clone())
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.clone().prop_map(|body| format!("sum(others, {body})")),
            ]
        })
    }

    fn boolean() -> impl Strategy<Value = String> {
        let strings = prop::sample::select(STR_LEAVES);
        let leaf = prop_oneof![
            prop::sample::select(BOOL_LEAVES).prop_map(str::to_string),
            (int(), prop::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]), int())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (strings.clone(), prop::sample::select(&["==", "!="][..]), strings)
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        ];
        leaf.prop_recursive(3, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), prop::sample::select(&["and", "or"][..]), inner.clone())
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.clone().prop_map(|a| format!("not ({a})")),
                (prop::sample::select(&["all", "any"][..]), inner.clone())
                    .prop_map(|(f, body)| format!("{f}(others, {body})")),
                // count(others, …) against constants (0 takes the zero test) and in arithmetic.
                (
                    inner.clone(),
                    prop::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]),
                    prop::sample::select(INT_LEAVES)
                )
                    .prop_map(|(body, op, n)| format!("count(others, {body}) {op} {n}")),
                (inner.clone(), int()).prop_map(|(body, n)| format!("(count(others, {body}) * 2 + quantity) > {n}")),
                // Booleans as values.
                (inner.clone(), prop::sample::select(&["==", "!="][..]), inner.clone())
                    .prop_map(|(a, op, b)| format!("(({a}) {op} ({b}))")),
            ]
        })
    }

    fn rule() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("accept;".to_string()),
            boolean().prop_map(|c| format!("accept if {c};")),
            boolean().prop_map(|c| format!("reject \"r\" if {c};")),
            boolean().prop_map(|c| format!("require {c} else \"q\";")),
            // The default reasons name the rule's number and line.
            boolean().prop_map(|c| format!("reject if {c};")),
            boolean().prop_map(|c| format!("require {c};")),
            Just("reject \"stop\";".to_string()),
        ]
    }

    fn case() -> impl Strategy<Value = Case> {
        let quantities = prop::sample::select(&[0u64, 1, 7, 100, 1_000_000, u64::MAX][..]);
        let names = prop::sample::select(&["alice", "gold", "", "treasury"][..]);
        (
            prop::sample::select(&OperationKind::ALL[..]),
            prop::sample::select(&Role::ALL[..]),
            quantities.clone(),
            names.clone(),
            prop::collection::vec((quantities, names.clone()), 0..4),
            any::<bool>(),
            prop::sample::select(&[0u64, 1_767_225_599, 1_767_225_600, u64::MAX][..]),
            prop::option::of(names.clone()),
            (
                prop::sample::select(&[0u64, 3, u64::MAX][..]),
                prop::sample::select(&LifecycleState::ALL[..]),
                prop::sample::select(&["bank", "other"][..]),
                prop::option::of(names),
            ),
        )
            .prop_map(|(operation, role, quantity, controller, others, readable, now, tier, rest)| {
                let (version, state, domain, maintenance) = rest;
                let mut case = Case::new();
                case.operation = operation;
                case.role = role;
                case.subject = resource(quantity, controller);
                case.subject.version = version;
                case.subject.state = state;
                case.ctx.domain_id = causality_vm::DomainId::new(domain);
                if let Some(value) = maintenance {
                    case.ctx.environment.insert("maintenance".into(), value.into());
                }
                case.others = others
                    .into_iter()
                    .map(|(q, name)| {
                        let mut r = resource(q, "bob");
                        r.fungibility_domain = name.into();
                        r
                    })
                    .collect();
                case.readable_others = readable;
                case.ctx.timestamp = now;
                if let Some(tier) = tier {
                    case.ctx.environment.insert("tier".into(), tier.into());
                }
                case
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn tel_2_decides_random_programs_as_tel_1_does(
            rules in prop::collection::vec(rule(), 1..6),
            cases in prop::collection::vec(case(), 10),
        ) {
            let source = rules.join("\n");
            let v1 = match tel::compile_as(&source, TelVersion::V1) {
                Ok(v1) => v1,
                // The generator writes only well-typed rules; a deep one may need too many registers,
                // and a constant subexpression may overflow (`0 - 1`), which TEL rejects.
                Err(e) if e.message.contains("too complex") || e.message.contains("overflows") => return Ok(()),
                Err(e) => panic!("a generated program does not compile: {}", e.render(&source)),
            };
            let v2 = tel::compile_as(&source, TelVersion::V2)
                .unwrap_or_else(|e| panic!("TEL 1 compiles but TEL 2 fails: {}\n{source}", e.render(&source)));
            prop_assert_eq!(Program::decode(&v2.encode()).expect("decodes"), v2.clone());
            for case in &cases {
                prop_assert_eq!(decision(&case.run(&v1)), decision(&case.run(&v2)), "{}\n{}", source, v2.disassemble());
            }
        }
    }
}

#[test]
fn cli_compiles_and_runs_a_tel_2_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = format!("tel 2;\n{}", example("fungible_token.tel"));
    let file = dir.path().join("token2.tel");
    std::fs::write(&file, &source).expect("write");
    let file = file.to_str().expect("utf8 path");
    let cvm = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_cvm")).args(args).output().expect("run");

    let json = cvm(&["--json", "tel", "compile", file]);
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let expected = tel::compile_as(&example("fungible_token.tel"), TelVersion::V2).expect("compiles");
    assert_eq!(value["content_id"], ContentId::of_encoding(&expected.encode()).to_string());
    assert_eq!(value["format"], 2);
    assert!(value["disassembly"].as_str().is_some_and(|d| d.contains("SEQD") && d.contains("EQI")));

    let check = cvm(&["tel", "check", file]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("program format 2"));

    // `cvm tel run` runs it, with the fused instructions in its trace.
    let subject = super::tel_programs::resource_json(dir.path(), "gold.json", 100, "gold");
    let gold = super::tel_programs::resource_json(dir.path(), "gold60.json", 60, "gold");
    let silver = super::tel_programs::resource_json(dir.path(), "silver.json", 40, "silver");
    let ok = cvm(&["tel", "run", file, "--subject", &subject, "--other", &gold, "--trace"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let trace = String::from_utf8_lossy(&ok.stdout);
    assert!(trace.contains("SEQD") && trace.contains("EQI"), "{trace}");
    let refused = cvm(&["tel", "run", file, "--subject", &subject, "--other", &silver]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("code 9: gold can only be"));
}

/// More loaded values than registers set aside for them, beside a rule deep
/// enough to need most registers as temporaries: TEL 2 gives the rule the
/// registers (caching fewer values) and still decides as TEL 1.
#[test]
fn register_pressure_trades_cached_values_for_temporaries() {
    let keys: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    let mut source = String::from("tel 2;\n");
    for key in &keys {
        source.push_str(&format!("reject \"{key} off\" if env(\"{key}\") == \"off\";\n"));
    }
    let deep = (0..12).fold("quantity".to_string(), |acc, i| {
        let field = if i % 2 == 0 { "version" } else { "quantity" };
        format!("{field} + ({acc})")
    });
    source.push_str(&format!("require {deep} > 0 else \"deep\";\n"));
    for key in &keys {
        source.push_str(&format!("accept if env(\"{key}\") == \"on\";\n"));
    }
    let Compiled { v1, v2 } = compiled(&source);
    let envs = |p: &Program| p.instructions().iter().filter(|i| matches!(i, Instruction::Env { .. })).count();
    assert_eq!(envs(&v1), 22);
    assert!(envs(&v2) < 22, "some lookups are cached:\n{}", v2.disassemble());
    for (index, setting) in ["on", "off", "neither"].into_iter().enumerate() {
        for key in [0, 5, 10] {
            let mut case = Case::new();
            case.ctx.environment.insert(keys[key].clone(), setting.into());
            case.subject.quantity = index as u64;
            let (r1, r2) = (case.run(&v1), case.run(&v2));
            assert_eq!(decision(&r1), decision(&r2), "k{key}={setting}");
            assert!(executed(&v2, &case) <= executed(&v1, &case));
        }
    }
    // Deeper than the registers allow: both generators say so at the rule.
    let too_deep = (0..20).fold("quantity".to_string(), |acc, _| format!("quantity + ({acc})"));
    let source = format!("require {too_deep} > 0;");
    for version in [TelVersion::V1, TelVersion::V2] {
        let err = tel::compile_as(&source, version).expect_err("too deep");
        assert!(err.message.contains("too complex"), "{}", err.message);
        assert_eq!((err.line, err.col), (1, 1));
    }
}
