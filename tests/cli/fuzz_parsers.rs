//! Every parser of outside input, fed random and mutated input for a
//! bounded number of cases (`PROPTEST_CASES` raises it): batch files, token
//! text, program encodings, the batch log, and snarkjs JSON. None may panic
//! or allocate without bound; whatever decodes must be what was encoded.

use causality_vm::batch::file::BatchFile;
use causality_vm::capability::{CapabilityToken, Caveat, RootKey};
use causality_vm::prove::snarkjs;
use causality_vm::store::RegisterStore;
use causality_vm::vm::{Instruction, Program, Reg};
use causality_vm::DomainId;
use proptest::prelude::*;
use serde_json::Value;

/// A JSON value of bounded size, with the batch format's keys among the
/// random ones so mutations reach deep into the typed parse.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("domain".to_string()),
        Just("token".to_string()),
        Just("ops".to_string()),
        Just("op".to_string()),
        Just("resource".to_string()),
        Just("quantity".to_string()),
        Just("timestamp".to_string()),
        Just("environment".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(Value::String("mint".into())),
        Just(Value::String("create".into())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A valid batch file's text (examples/create.json).
fn good_batch() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/create.json")).unwrap()
}

/// `text` with a random edit: a byte changed, bytes cut out, or bytes inserted.
fn mutated(text: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = text.len().max(1);
    (0..len, any::<u8>(), 0..3u8, 0..16usize).prop_map(move |(at, byte, how, n)| {
        let mut t = text.clone();
        let at = at.min(t.len());
        match how {
            0 if at < t.len() => t[at] = byte,
            1 => {
                let end = (at + n).min(t.len());
                t.drain(at..end);
            }
            _ => t.splice(at..at, std::iter::repeat_n(byte, n)).for_each(drop),
        }
        t
    })
}

fn token_text() -> String {
    let token = CapabilityToken::mint(&RootKey([3; 32]), DomainId::new("fuzz.domain"), [1; 16]);
    token.attenuate_all(vec!["rights=read,write".parse::<Caveat>().unwrap(), Caveat::ExpiresAt(99)]).unwrap().to_text()
}

fn program_bytes() -> Vec<u8> {
    let r = |i| Reg::new(i).unwrap();
    let code = vec![
        Instruction::Str { rd: r(1), offset: 0 },
        Instruction::Hash { rd: r(2), ra: r(1) },
        Instruction::Jz { cond: r(3), target: 32 },
        Instruction::Accept,
        Instruction::Reject { reason: r(1), code: 3 },
    ];
    Program::new(code, b"\x05\x00\x00\x00hello".to_vec()).unwrap().encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn batch_files_never_panic(value in json_value()) {
        let _ = BatchFile::parse(&value.to_string(), "fuzz.json");
    }

    #[test]
    fn mutated_batch_files_never_panic(text in mutated(good_batch().into_bytes())) {
        let _ = BatchFile::parse(&String::from_utf8_lossy(&text), "fuzz.json");
    }

    #[test]
    fn token_texts_never_panic(text in "[ -~]{0,200}", mutation in mutated(token_text().into_bytes())) {
        let _ = CapabilityToken::from_text(&text);
        if let Ok(token) = CapabilityToken::from_text(&String::from_utf8_lossy(&mutation)) {
            // Whatever parses is canonical: it prints back as it was read.
            prop_assert_eq!(CapabilityToken::from_text(&token.to_text()).unwrap().to_text(), token.to_text());
        }
    }

    #[test]
    fn program_encodings_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), mutation in mutated(program_bytes())) {
        let _ = Program::decode(&bytes);
        if let Ok(program) = Program::decode(&mutation) {
            prop_assert_eq!(program.encode(), mutation, "a decoded program re-encodes to its bytes");
        }
    }

    #[test]
    fn snarkjs_json_never_panics(value in json_value()) {
        let _ = snarkjs::vk_from_json(&value);
        let _ = snarkjs::proof_from_json(&value);
        let _ = snarkjs::public_from_json(&value);
    }
}

proptest! {
    // Each case opens a store: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any bytes as the batch log of a store: an error, or a store whose
    /// log added nothing (random bytes are never whole frames).
    #[test]
    fn batch_logs_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        drop(RegisterStore::open(dir.path()).unwrap());
        std::fs::write(RegisterStore::log_in(dir.path()), &bytes).unwrap();
        for read_only in [true, false] {
            let opened = match read_only {
                true => RegisterStore::open_read_only(dir.path()),
                false => RegisterStore::open(dir.path()),
            };
            if let Ok(store) = opened {
                prop_assert_eq!(store.head(), 0);
            }
        }
    }
}
