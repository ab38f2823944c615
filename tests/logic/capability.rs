//! Capability tokens: every promised failure mode, the text form, the key
//! ring, `authorize`, and a property test that attenuation only narrows.

use std::collections::BTreeMap;

use causality_vm::capability::{
    CapabilityError, CapabilityToken, Caveat, KeyRing, Permissions, Right, RootKey, MAX_CAVEATS, TEXT_PREFIX,
};
use causality_vm::context::{authorize, required_right, AccessRequest, Authorizer};
use causality_vm::resource::OperationKind;
use causality_vm::{ContentId, DomainId, ExecutionContext, ExecutionError};
use proptest::prelude::*;

fn key(byte: u8) -> RootKey {
    RootKey([byte; 32])
}

fn dom(name: &str) -> DomainId {
    DomainId::new(name)
}

fn rid(n: u8) -> ContentId {
    ContentId::of_encoding(&[n])
}

fn root_token(k: &RootKey, domain: &str) -> CapabilityToken {
    CapabilityToken::mint(k, dom(domain), [7; 16])
}

/// A token carrying one caveat of every kind, Delegate kept.
fn full_token(k: &RootKey) -> CapabilityToken {
    root_token(k, "alpha")
        .attenuate(Caveat::Rights(vec![Right::Read, Right::Transfer, Right::Write, Right::Delegate]))
        .and_then(|t| t.attenuate(Caveat::Resources(vec![rid(1), rid(2)])))
        .and_then(|t| t.attenuate(Caveat::Domains(vec![dom("alpha"), dom("beta")])))
        .and_then(|t| t.attenuate(Caveat::Operations(vec![OperationKind::Transfer, OperationKind::Read])))
        .and_then(|t| t.attenuate(Caveat::ExpiresAt(1_000)))
        .and_then(|t| t.attenuate(Caveat::MaxQuantity(50)))
        .expect("every caveat narrows")
}

/// Append `caveat` the way any holder can, bypassing `attenuate`'s checks.
fn hand_append(token: &CapabilityToken, caveat: Caveat) -> CapabilityToken {
    let tag = *blake3::keyed_hash(&token.tag, &caveat.mac_encoding()).as_bytes();
    let mut caveats = token.caveats.clone();
    caveats.push(caveat);
    CapabilityToken { caveats, tag, ..token.clone() }
}

fn ring(entries: &[(&str, &RootKey)]) -> KeyRing {
    let mut ring = KeyRing::new();
    for (d, k) in entries {
        ring.insert(dom(d), (*k).clone());
    }
    ring
}

fn ctx(token: CapabilityToken, domain: &str, timestamp: u64) -> ExecutionContext {
    ExecutionContext {
        domain_id: dom(domain),
        trace_id: "test".into(),
        capability_token: token,
        timestamp,
        environment: BTreeMap::new(),
        cross_domain_grants: Vec::new(),
    }
}

fn transfer<'a>(resource: &'a ContentId, domain: &'a DomainId, quantity: u64) -> AccessRequest<'a> {
    AccessRequest {
        operation: OperationKind::Transfer,
        right: Right::Transfer,
        resource: Some(resource),
        domain,
        quantity: Some(quantity),
    }
}

fn insufficient_reason(result: Result<(), ExecutionError>) -> String {
    match result {
        Err(ExecutionError::InsufficientCapabilities { reason, .. }) => reason,
        other => panic!("expected InsufficientCapabilities, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the chain

#[test]
fn minted_and_attenuated_tokens_verify() {
    let k = key(1);
    let root = root_token(&k, "alpha");
    root.verify_chain(&k).unwrap();
    assert_eq!(root.effective(), Permissions::unrestricted());
    full_token(&k).verify_chain(&k).unwrap();
}

#[test]
fn wrong_root_key_is_rejected() {
    let token = full_token(&key(1));
    assert!(matches!(token.verify_chain(&key(2)), Err(CapabilityError::TagMismatch { .. })));
    assert!(matches!(root_token(&key(1), "alpha").verify_chain(&key(2)), Err(CapabilityError::TagMismatch { .. })));
}

#[test]
fn tampering_with_any_field_breaks_the_tag() {
    let k = key(1);
    let token = full_token(&k);
    let with = |f: &dyn Fn(&mut CapabilityToken)| {
        let mut t = token.clone();
        f(&mut t);
        t
    };
    let tampered: Vec<(&str, CapabilityToken)> = vec![
        ("domain", with(&|t| t.domain = dom("beta"))),
        ("identifier", with(&|t| t.identifier[0] ^= 1)),
        ("tag", with(&|t| t.tag[31] ^= 0x80)),
        ("rights", with(&|t| t.caveats[0] = Caveat::Rights(vec![Right::Read, Right::Delegate]))),
        ("resources", with(&|t| t.caveats[1] = Caveat::Resources(vec![rid(1)]))),
        ("domains", with(&|t| t.caveats[2] = Caveat::Domains(vec![dom("alpha")]))),
        ("operations", with(&|t| t.caveats[3] = Caveat::Operations(vec![OperationKind::Read]))),
        ("expiry", with(&|t| t.caveats[4] = Caveat::ExpiresAt(999))),
        ("max quantity", with(&|t| t.caveats[5] = Caveat::MaxQuantity(49))),
        ("caveat kind", with(&|t| t.caveats[5] = Caveat::ExpiresAt(50))),
    ];
    for (what, t) in tampered {
        assert_ne!(t, token, "{what}: the tampering must change the token");
        assert!(matches!(t.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })), "{what} tampering accepted");
    }
}

#[test]
fn every_bit_flip_of_the_encoding_is_rejected() {
    let k = key(1);
    let bytes = full_token(&k).to_bytes();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x10, 0x80] {
            let mut mutated = bytes.clone();
            mutated[i] ^= bit;
            if let Ok(t) = CapabilityToken::from_bytes(&mutated) {
                assert!(t.verify_chain(&k).is_err(), "flip of bit {bit:#x} in byte {i} verified");
            }
        }
    }
}

#[test]
fn truncated_chains_are_rejected() {
    let k = key(1);
    let token = full_token(&k);
    let mut dropped_last = token.clone();
    dropped_last.caveats.pop();
    assert!(matches!(dropped_last.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })));
    let mut dropped_first = token.clone();
    dropped_first.caveats.remove(0);
    assert!(matches!(dropped_first.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })));
    let mut dropped_all = token.clone();
    dropped_all.caveats.clear();
    assert!(matches!(dropped_all.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })));
}

#[test]
fn reordered_caveats_are_rejected() {
    let k = key(1);
    let token = full_token(&k);
    for (a, b) in [(0, 1), (3, 4), (4, 5), (0, 5)] {
        let mut t = token.clone();
        t.caveats.swap(a, b);
        assert!(matches!(t.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })), "swap {a},{b} accepted");
    }
}

// ---------------------------------------------------------------- widening

#[test]
fn attenuation_refuses_to_widen() {
    let token = full_token(&key(1));
    let wider = [
        Caveat::Rights(vec![Right::Read, Right::Delete]),
        Caveat::ExpiresAt(1_001),
        Caveat::MaxQuantity(51),
        Caveat::Resources(vec![rid(1), rid(3)]),
        Caveat::Domains(vec![dom("gamma")]),
        Caveat::Operations(vec![OperationKind::Delete]),
    ];
    for caveat in wider {
        match token.attenuate(caveat.clone()) {
            Err(CapabilityError::Widening { index: 6, reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{caveat}: expected a widening error, got {other:?}"),
        }
    }
    // Equal or narrower is fine.
    for caveat in [Caveat::ExpiresAt(1_000), Caveat::MaxQuantity(0), Caveat::Rights(vec![Right::Read])] {
        token.attenuate(caveat).unwrap();
    }
}

#[test]
fn widening_error_names_what_widens() {
    let token = full_token(&key(1));
    let err = token.attenuate(Caveat::Rights(vec![Right::Delete, Right::Read])).unwrap_err().to_string();
    assert!(err.contains("delete") && err.contains("widen"), "{err}");
    let err = token.attenuate(Caveat::ExpiresAt(5_000)).unwrap_err().to_string();
    assert!(err.contains("5000") && err.contains("1000"), "{err}");
    let err = token.attenuate(Caveat::MaxQuantity(60)).unwrap_err().to_string();
    assert!(err.contains("60") && err.contains("50"), "{err}");
}

#[test]
fn hand_crafted_widening_chain_fails_verification() {
    let k = key(1);
    let token = full_token(&k);
    let wider = [
        Caveat::Rights(vec![Right::Delete, Right::Delegate]),
        Caveat::ExpiresAt(u64::MAX),
        Caveat::MaxQuantity(1_000_000),
        Caveat::Resources(vec![rid(9)]),
        Caveat::Domains(vec![dom("gamma")]),
        Caveat::Operations(vec![OperationKind::Create]),
    ];
    for caveat in wider {
        let forged = hand_append(&token, caveat.clone());
        // The tag is right (anyone can extend a chain), but the chain claims
        // more than its prefix granted.
        match forged.verify_chain(&k) {
            Err(CapabilityError::Widening { index: 6, .. }) => {}
            other => panic!("{caveat}: expected a widening error, got {other:?}"),
        }
        // And even read naively its effective permissions never grow.
        assert!(forged.effective().is_within(&token.effective()));
    }
    // A widening caveat with a made-up tag fails on the tag first.
    let mut bogus = hand_append(&token, Caveat::ExpiresAt(u64::MAX));
    bogus.tag = [0; 32];
    assert!(matches!(bogus.verify_chain(&k), Err(CapabilityError::TagMismatch { .. })));
}

#[test]
fn delegate_right_governs_attenuation() {
    let k = key(1);
    let final_token = root_token(&k, "alpha").attenuate(Caveat::Rights(vec![Right::Read])).unwrap();
    final_token.verify_chain(&k).unwrap();
    assert!(matches!(
        final_token.attenuate(Caveat::MaxQuantity(1)),
        Err(CapabilityError::NotDelegatable { index: 1, .. })
    ));
    let forged = hand_append(&final_token, Caveat::MaxQuantity(1));
    assert!(matches!(forged.verify_chain(&k), Err(CapabilityError::NotDelegatable { index: 1, .. })));
    // One step may drop Delegate and add other caveats: rights go last.
    let step = root_token(&k, "alpha")
        .attenuate_all([Caveat::Rights(vec![Right::Read]), Caveat::MaxQuantity(3), Caveat::ExpiresAt(9)])
        .unwrap();
    step.verify_chain(&k).unwrap();
    assert!(matches!(step.caveats.last(), Some(Caveat::Rights(_))));
    assert!(!step.effective().can_delegate());
}

#[test]
fn attenuation_normalizes_lists() {
    let t = root_token(&key(1), "alpha")
        .attenuate(Caveat::Rights(vec![Right::Transfer, Right::Read, Right::Transfer, Right::Delegate]))
        .unwrap();
    assert_eq!(t.caveats[0], Caveat::Rights(vec![Right::Read, Right::Transfer, Right::Delegate]));
}

#[test]
fn caveat_count_is_bounded() {
    let k = key(1);
    let mut token = root_token(&k, "alpha");
    for i in 0..MAX_CAVEATS {
        token = token.attenuate(Caveat::MaxQuantity(1_000 - i as u64)).unwrap();
    }
    token.verify_chain(&k).unwrap();
    assert_eq!(CapabilityToken::from_text(&token.to_text()).unwrap(), token);
    assert!(matches!(token.attenuate(Caveat::MaxQuantity(0)), Err(CapabilityError::TooManyCaveats { .. })));
    let over = hand_append(&token, Caveat::MaxQuantity(0));
    assert!(matches!(over.verify_chain(&k), Err(CapabilityError::TooManyCaveats { count: 65, max: 64 })));
}

#[test]
fn hand_crafted_unsorted_or_unencodable_caveats_fail_verification() {
    let k = key(1);
    let root = root_token(&k, "alpha");
    let unsorted = hand_append(&root, Caveat::Rights(vec![Right::Write, Right::Read]));
    assert!(matches!(unsorted.verify_chain(&k), Err(CapabilityError::InvalidCaveat { .. })));
    let empty_name = hand_append(&root, Caveat::Domains(vec![dom("")]));
    assert!(matches!(empty_name.verify_chain(&k), Err(CapabilityError::InvalidCaveat { .. })));
}

#[test]
fn empty_domain_names_are_refused() {
    let err = root_token(&key(1), "alpha").attenuate(Caveat::Domains(vec![dom("")])).unwrap_err();
    assert!(matches!(err, CapabilityError::InvalidCaveat { .. }), "{err}");
}

// ---------------------------------------------------------------- authorize

#[test]
fn authorize_accepts_what_the_token_allows() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let c = ctx(full_token(&k), "alpha", 999);
    let alpha = dom("alpha");
    authorize(&c, &keys, &transfer(&rid(1), &alpha, 50)).unwrap();
    let id = rid(2);
    let read = AccessRequest {
        operation: OperationKind::Read,
        right: Right::Read,
        resource: Some(&id),
        domain: &alpha,
        quantity: None,
    };
    authorize(&c, &keys, &read).unwrap();
}

#[test]
fn expired_at_and_after_the_expiry() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let id = rid(1);
    for timestamp in [1_000, 1_001, u64::MAX] {
        let reason =
            insufficient_reason(authorize(&ctx(full_token(&k), "alpha", timestamp), &keys, &transfer(&id, &alpha, 1)));
        assert!(reason.contains("expired at 1000"), "{reason}");
    }
    authorize(&ctx(full_token(&k), "alpha", 0), &keys, &transfer(&id, &alpha, 1)).unwrap();
}

#[test]
fn over_the_max_quantity() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let id = rid(1);
    let c = ctx(full_token(&k), "alpha", 0);
    let reason = insufficient_reason(authorize(&c, &keys, &transfer(&id, &alpha, 51)));
    assert!(reason.contains("quantity 51") && reason.contains("max quantity 50"), "{reason}");
    authorize(&c, &keys, &transfer(&id, &alpha, 50)).unwrap();
}

#[test]
fn resource_out_of_scope() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let c = ctx(full_token(&k), "alpha", 0);
    let outside = rid(3);
    let reason = insufficient_reason(authorize(&c, &keys, &transfer(&outside, &alpha, 1)));
    assert!(reason.contains(&outside.to_string()) && reason.contains("outside"), "{reason}");
    let inside = rid(1);
    let mut none = transfer(&inside, &alpha, 1);
    none.resource = None;
    let reason = insufficient_reason(authorize(&c, &keys, &none));
    assert!(reason.contains("names none"), "{reason}");
}

#[test]
fn operation_kind_not_allowed() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let id = rid(1);
    let c = ctx(full_token(&k), "alpha", 0);
    // Write is granted, but the token allows only read and transfer operations.
    let update = AccessRequest {
        operation: OperationKind::Update,
        right: required_right(OperationKind::Update),
        resource: Some(&id),
        domain: &alpha,
        quantity: None,
    };
    let reason = insufficient_reason(authorize(&c, &keys, &update));
    assert!(reason.contains("operation kind update is not allowed"), "{reason}");
}

#[test]
fn missing_right() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let id = rid(1);
    let token = root_token(&k, "alpha").attenuate(Caveat::Rights(vec![Right::Read])).unwrap();
    let reason = insufficient_reason(authorize(&ctx(token, "alpha", 0), &keys, &transfer(&id, &alpha, 1)));
    assert!(reason.contains("missing right transfer"), "{reason}");
}

#[test]
fn required_rights_of_each_operation() {
    use OperationKind::*;
    let expected = [
        (Create, Right::Write),
        (Update, Right::Write),
        (Read, Right::Read),
        (Delete, Right::Delete),
        (Transfer, Right::Transfer),
        (Verify, Right::Verify),
    ];
    for (kind, right) in expected {
        assert_eq!(required_right(kind), right, "{kind:?}");
    }
}

#[test]
fn forged_or_tampered_token_is_insufficient() {
    let k = key(1);
    let keys = ring(&[("alpha", &k)]);
    let alpha = dom("alpha");
    let id = rid(1);
    let mut token = full_token(&k);
    token.caveats[5] = Caveat::MaxQuantity(1_000);
    let reason = insufficient_reason(authorize(&ctx(token, "alpha", 0), &keys, &transfer(&id, &alpha, 500)));
    assert!(reason.contains("tag does not match"), "{reason}");
    let forged = root_token(&key(9), "alpha");
    let reason = insufficient_reason(authorize(&ctx(forged, "alpha", 0), &keys, &transfer(&id, &alpha, 5)));
    assert!(reason.contains("tag does not match"), "{reason}");
}

#[test]
fn wrong_domain() {
    let k = key(1);
    let keys = ring(&[("alpha", &k), ("beta", &key(2))]);
    let id = rid(1);
    let beta = dom("beta");
    // A token of alpha presented in a context of beta.
    match authorize(&ctx(root_token(&k, "alpha"), "beta", 0), &keys, &transfer(&id, &beta, 1)) {
        Err(ExecutionError::DomainAccessError { domain, reason }) => {
            assert_eq!(domain, "beta");
            assert!(reason.contains("rooted in domain alpha"), "{reason}");
        }
        other => panic!("expected DomainAccessError, got {other:?}"),
    }
    // A domain the key ring does not know.
    let gamma = dom("gamma");
    match authorize(&ctx(root_token(&k, "gamma"), "gamma", 0), &keys, &transfer(&id, &gamma, 1)) {
        Err(ExecutionError::DomainAccessError { reason, .. }) => assert!(reason.contains("unknown domain"), "{reason}"),
        other => panic!("expected DomainAccessError, got {other:?}"),
    }
    // A Domains caveat that excludes the domain used.
    let only_beta = root_token(&k, "alpha").attenuate(Caveat::Domains(vec![dom("beta")])).unwrap();
    let alpha = dom("alpha");
    let reason = insufficient_reason(authorize(&ctx(only_beta, "alpha", 0), &keys, &transfer(&id, &alpha, 1)));
    assert!(reason.contains("domain alpha is not among the token's domains"), "{reason}");
}

fn grant_for(target_key: &RootKey, target: &str, grantee: &str) -> CapabilityToken {
    root_token(target_key, target)
        .attenuate_all([
            Caveat::Domains(vec![dom(grantee)]),
            Caveat::Rights(vec![Right::Transfer]),
            Caveat::MaxQuantity(10),
        ])
        .unwrap()
}

fn cross_domain_error(result: Result<(), ExecutionError>) -> String {
    match result {
        Err(ExecutionError::CrossDomainError { from, to, reason }) => {
            assert_eq!((from.as_str(), to.as_str()), ("alpha", "beta"));
            reason
        }
        other => panic!("expected CrossDomainError, got {other:?}"),
    }
}

#[test]
fn cross_domain_needs_a_grant() {
    let (ka, kb) = (key(1), key(2));
    let keys = ring(&[("alpha", &ka), ("beta", &kb)]);
    let beta = dom("beta");
    let id = rid(1);
    let request = transfer(&id, &beta, 5);

    let mut c = ctx(root_token(&ka, "alpha"), "alpha", 0);
    let reason = cross_domain_error(authorize(&c, &keys, &request));
    assert!(reason.contains("no grant rooted in domain beta"), "{reason}");

    c.cross_domain_grants = vec![grant_for(&kb, "beta", "alpha")];
    authorize(&c, &keys, &request).unwrap();

    // The grant's own caveats still apply.
    let reason = cross_domain_error(authorize(&c, &keys, &transfer(&id, &beta, 11)));
    assert!(reason.contains("max quantity 10"), "{reason}");
    let read = AccessRequest { operation: OperationKind::Read, right: Right::Read, ..request };
    let reason = cross_domain_error(authorize(&c, &keys, &read));
    assert!(reason.contains("missing right read"), "{reason}");
}

#[test]
fn cross_domain_grant_must_be_genuine_and_for_this_domain() {
    let (ka, kb) = (key(1), key(2));
    let keys = ring(&[("alpha", &ka), ("beta", &kb)]);
    let beta = dom("beta");
    let id = rid(1);
    let request = transfer(&id, &beta, 5);
    let mut c = ctx(root_token(&ka, "alpha"), "alpha", 0);

    // Minted with the wrong key (alpha's key claiming to be beta's).
    c.cross_domain_grants = vec![grant_for(&ka, "beta", "alpha")];
    let reason = cross_domain_error(authorize(&c, &keys, &request));
    assert!(reason.contains("tag does not match"), "{reason}");

    // A grant for another domain.
    c.cross_domain_grants = vec![grant_for(&kb, "beta", "gamma")];
    let reason = cross_domain_error(authorize(&c, &keys, &request));
    assert!(reason.contains("a grant for domains gamma, not for the requesting domain alpha"), "{reason}");

    // A grant with no Domains caveat names no grantee.
    c.cross_domain_grants = vec![root_token(&kb, "beta")];
    let reason = cross_domain_error(authorize(&c, &keys, &request));
    assert!(reason.contains("no Domains caveat"), "{reason}");

    // One good grant among bad ones is enough.
    c.cross_domain_grants = vec![grant_for(&kb, "beta", "gamma"), grant_for(&kb, "beta", "alpha")];
    authorize(&c, &keys, &request).unwrap();

    // The main token's Domains caveat can forbid leaving its domain.
    c.capability_token = root_token(&ka, "alpha").attenuate(Caveat::Domains(vec![dom("alpha")])).unwrap();
    let reason = insufficient_reason(authorize(&c, &keys, &request));
    assert!(reason.contains("domain beta is not among"), "{reason}");
}

#[test]
fn cross_domain_grant_expires() {
    let (ka, kb) = (key(1), key(2));
    let keys = ring(&[("alpha", &ka), ("beta", &kb)]);
    let beta = dom("beta");
    let id = rid(1);
    // grant_for dropped Delegate, so it is final.
    let refused = grant_for(&kb, "beta", "alpha").attenuate(Caveat::ExpiresAt(100)).unwrap_err();
    assert!(matches!(refused, CapabilityError::NotDelegatable { .. }));
    let grant =
        root_token(&kb, "beta").attenuate_all([Caveat::Domains(vec![dom("alpha")]), Caveat::ExpiresAt(100)]).unwrap();
    let mut c = ctx(root_token(&ka, "alpha"), "alpha", 100);
    c.cross_domain_grants = vec![grant];
    let reason = cross_domain_error(authorize(&c, &keys, &transfer(&id, &beta, 1)));
    assert!(reason.contains("expired at 100"), "{reason}");
    c.timestamp = 99;
    authorize(&c, &keys, &transfer(&id, &beta, 1)).unwrap();
}

// ---------------------------------------------------------------- text form

#[test]
fn text_form_round_trips() {
    let k = key(1);
    for token in [root_token(&k, "alpha"), full_token(&k), root_token(&k, "ü-domain")] {
        let text = token.to_text();
        assert!(text.starts_with(TEXT_PREFIX));
        assert_eq!(CapabilityToken::from_text(&text).unwrap(), token);
        assert_eq!(CapabilityToken::from_text(&format!("  {text}\n")).unwrap(), token);
    }
}

#[test]
fn tokens_in_json_use_the_text_form() {
    let token = full_token(&key(1));
    let json = serde_json::to_string(&token).unwrap();
    assert_eq!(json, format!("\"{}\"", token.to_text()));
    assert_eq!(serde_json::from_str::<CapabilityToken>(&json).unwrap(), token);
    let err = serde_json::from_str::<CapabilityToken>("\"cvmcap1.AQ\"").unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn one_authorizer_decides_like_authorize() {
    let (ka, kb) = (key(1), key(2));
    let keys = ring(&[("alpha", &ka), ("beta", &kb)]);
    let mut c = ctx(full_token(&ka), "alpha", 500);
    c.cross_domain_grants = vec![grant_for(&kb, "beta", "alpha"), grant_for(&ka, "beta", "alpha")];
    let authorizer = Authorizer::new(&c, &keys);
    let (alpha, beta, gamma) = (dom("alpha"), dom("beta"), dom("gamma"));
    let ids = [rid(1), rid(2), rid(3)];
    let mut outcomes = std::collections::BTreeSet::new();
    for domain in [&alpha, &beta, &gamma] {
        for id in &ids {
            for op in OperationKind::ALL {
                for quantity in [None, Some(5), Some(11), Some(60)] {
                    let request = AccessRequest {
                        operation: op,
                        right: required_right(op),
                        resource: Some(id),
                        domain,
                        quantity,
                    };
                    let once = authorize(&c, &keys, &request);
                    assert_eq!(authorizer.check(&request), once);
                    outcomes.insert(once.map_err(|e| e.kind()));
                }
            }
        }
    }
    // The grid reaches success and several distinct refusals.
    assert!(outcomes.len() >= 3, "{outcomes:?}");
}

fn text_error(text: &str) -> CapabilityError {
    CapabilityToken::from_text(text).expect_err(text)
}

/// The text form of arbitrary bytes, with an independent base64url encoder
/// (RFC 4648 §5 alphabet, no padding).
fn text_of(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from(TEXT_PREFIX);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn malformed_text_forms_have_precise_errors() {
    let token = full_token(&key(1));
    let text = token.to_text();
    assert_eq!(text_of(&token.to_bytes()), text, "test encoder agrees with the real one");

    assert!(matches!(text_error(""), CapabilityError::EmptyText));
    assert!(matches!(text_error("  \n"), CapabilityError::EmptyText));
    match text_error(&text.replacen("cvmcap1.", "cvmcap2.", 1)) {
        CapabilityError::WrongPrefix { found, .. } => assert_eq!(found, "cvmcap2."),
        e => panic!("{e}"),
    }
    assert!(matches!(text_error("macaroon"), CapabilityError::WrongPrefix { .. }));

    // Bad characters, with their position in the full text.
    let mut bad = text.clone();
    bad.replace_range(20..21, "+");
    assert!(matches!(text_error(&bad), CapabilityError::BadCharacter { ch: '+', position: 20 }));
    assert!(matches!(text_error(&format!("{text}=")), CapabilityError::BadCharacter { ch: '=', .. }));
    let mut bad = text.clone();
    bad.replace_range(12..13, "é");
    assert!(matches!(text_error(&bad), CapabilityError::BadCharacter { ch: 'é', position: 12 }));
    let spaced = format!("{} {}", &text[..30], &text[30..]);
    assert!(matches!(text_error(&spaced), CapabilityError::BadCharacter { ch: ' ', position: 30 }));

    // Truncation at every length is refused, never misread.
    for cut in TEXT_PREFIX.len()..text.len() {
        match text_error(&text[..cut]) {
            CapabilityError::Truncated { .. }
            | CapabilityError::TruncatedText { .. }
            | CapabilityError::NonCanonicalText { .. } => {}
            e => panic!("cut at {cut}: unexpected {e}"),
        }
    }
    match text_error(TEXT_PREFIX) {
        CapabilityError::TruncatedText { reason } => assert!(reason.contains("decodes to 0 bytes"), "{reason}"),
        e => panic!("the bare prefix: unexpected {e}"),
    }
    // Cutting whole bytes lands on a precise byte-level truncation.
    let bytes = token.to_bytes();
    match text_error(&text_of(&bytes[..bytes.len() - 3])) {
        CapabilityError::Truncated { what, needed: 32, available: 29, .. } => assert_eq!(what, "the tag"),
        e => panic!("{e}"),
    }

    // Trailing bytes after the tag.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0]);
    match text_error(&text_of(&longer)) {
        CapabilityError::TrailingBytes { count: 3, offset } => assert_eq!(offset, bytes.len()),
        e => panic!("{e}"),
    }

    // Unknown version.
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(matches!(text_error(&text_of(&v2)), CapabilityError::UnsupportedVersion { found: 2, supported: 1 }));

    // A last character with unused bits set would make two texts decode alike.
    let mut short = text_of(&bytes[..bytes.len() - 1]);
    let last = short.pop().unwrap();
    assert!(matches!(last, 'A' | 'Q' | 'g' | 'w'), "1 trailing byte leaves 4 zero bits");
    short.push(if last == 'A' { 'B' } else { 'A' });
    match text_error(&short) {
        CapabilityError::NonCanonicalText { position } => assert_eq!(position, short.len() - 1),
        e => panic!("{e}"),
    }
}

#[test]
fn malformed_binary_contents_have_precise_errors() {
    let token = root_token(&key(1), "a").attenuate(Caveat::Rights(vec![Right::Read, Right::Write])).unwrap();
    let bytes = token.to_bytes();
    // version 1 | len 2 | "a" | id 16 | count 1 | kind 1 | n 1 | codes ...
    let caveat_at = 1 + 2 + 1 + 16 + 1;
    assert_eq!(&bytes[caveat_at..caveat_at + 4], &[1, 2, 0, 1]);

    let mut unknown_kind = bytes.clone();
    unknown_kind[caveat_at] = 42;
    match CapabilityToken::from_bytes(&unknown_kind) {
        Err(CapabilityError::Malformed { offset, reason }) => {
            assert_eq!(offset, caveat_at);
            assert!(reason.contains("unknown caveat kind 42"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let mut unknown_right = bytes.clone();
    unknown_right[caveat_at + 3] = 6;
    assert!(matches!(CapabilityToken::from_bytes(&unknown_right),
        Err(CapabilityError::Malformed { reason, .. }) if reason.contains("unknown right code 6")));
    let mut unsorted = bytes.clone();
    unsorted.swap(caveat_at + 2, caveat_at + 3);
    assert!(matches!(CapabilityToken::from_bytes(&unsorted),
        Err(CapabilityError::Malformed { reason, .. }) if reason.contains("out of order")));
    let mut empty_domain = bytes.clone();
    empty_domain.remove(3);
    empty_domain[1] = 0;
    assert!(matches!(CapabilityToken::from_bytes(&empty_domain),
        Err(CapabilityError::Malformed { reason, .. }) if reason.contains("empty")));
    let mut too_many = bytes.clone();
    too_many[caveat_at - 1] = 200;
    assert!(matches!(CapabilityToken::from_bytes(&too_many),
        Err(CapabilityError::Malformed { reason, .. }) if reason.contains("over the limit")));
}

// ---------------------------------------------------------------- keys

#[test]
fn key_ring_round_trips_privately_and_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/keys.json");
    let (ka, kb) = (RootKey::generate(), RootKey::generate());
    assert_ne!(ka, kb, "two generated keys differ");
    let keys = ring(&[("alpha", &ka), ("beta", &kb)]);
    keys.save(&path).unwrap();
    let loaded = KeyRing::load(&path).unwrap();
    assert_eq!(loaded.get(&dom("alpha")), Some(&ka));
    assert_eq!(loaded.get(&dom("beta")), Some(&kb));
    assert_eq!(loaded.len(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let entries = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1, "no temporary file left behind");
}

#[test]
fn key_ring_errors_and_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    assert!(matches!(KeyRing::load(&path), Err(CapabilityError::KeyRingIo { .. })));
    assert!(KeyRing::load_or_empty(&path).unwrap().is_empty());
    std::fs::write(&path, "{\"alpha\": \"zz\"}").unwrap();
    let err = KeyRing::load(&path).unwrap_err().to_string();
    assert!(err.contains("alpha") && err.contains("hex"), "{err}");
    std::fs::write(&path, "[1, 2]").unwrap();
    let err = KeyRing::load(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    // A domain named twice: which key it has must never be a guess.
    let key = "ab".repeat(32);
    std::fs::write(&path, format!("{{\"alpha\": \"{key}\", \"alpha\": \"{}\"}}", "cd".repeat(32))).unwrap();
    let err = KeyRing::load(&path).unwrap_err().to_string();
    assert!(err.contains("domain \"alpha\" is named twice"), "{err}");
    std::fs::write(&path, format!("{{\"alpha\": \"{key}\"}}")).unwrap();
    assert!(!KeyRing::load(&path).unwrap().is_empty());

    let k = RootKey([0xab; 32]);
    assert!(!format!("{k:?}").contains("ab"), "Debug must not show the key");
    let token = root_token(&k, "alpha");
    let shown = format!("{token:?}");
    assert!(!shown.contains(&causality_vm::content_id::hex_encode(&token.tag[..4])), "Debug must not show the tag");
    assert!(shown.contains("alpha") && shown.contains("<redacted>"), "{shown}");
    assert!(!format!("{:?}", ring(&[("alpha", &k)])).contains("abab"));
    assert_eq!(RootKey::from_hex(&k.to_hex()).unwrap(), k);
    assert!(matches!(RootKey::from_hex("00"), Err(CapabilityError::BadKey { .. })));
}

// ---------------------------------------------------------------- CLI

fn cvm(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cvm"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--quiet")
        .args(args)
        .output()
        .expect("cvm runs")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn cli_keygen_mint_attenuate_inspect_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = cvm(d, &["token", "mint", "--domain", "alpha"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cvm token keygen --domain alpha"), "{}", stderr(&out));

    assert!(cvm(d, &["token", "keygen", "--domain", "alpha"]).status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("keys.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = cvm(d, &["token", "keygen", "--domain", "alpha"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));

    let root = stdout(&cvm(d, &["token", "mint", "--domain", "alpha", "--caveat", "max-quantity=100"]));
    let narrow = cvm(
        d,
        &["token", "attenuate", &root, "--rights", "read,transfer", "--expires", "1700000000", "--max-quantity", "10"],
    );
    assert!(narrow.status.success(), "{}", stderr(&narrow));
    let narrow = stdout(&narrow);
    let parsed = CapabilityToken::from_text(&narrow).unwrap();
    assert_eq!(parsed.effective().max_quantity, Some(10));

    assert_eq!(cvm(d, &["token", "verify", &narrow, "--at", "1600000000"]).status.code(), Some(0));
    assert_eq!(cvm(d, &["token", "verify", &narrow, "--at", "1700000000"]).status.code(), Some(1));
    let inspect = stdout(&cvm(d, &["--json", "token", "inspect", &narrow]));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["effective"]["max_quantity"], 10);

    let wider = cvm(d, &["token", "attenuate", &root, "--max-quantity", "101"]);
    assert_eq!(wider.status.code(), Some(2));
    assert!(stderr(&wider).contains("widen"), "{}", stderr(&wider));

    // Every flag, a token read from a file, and JSON verification.
    let res = rid(4).to_string();
    let file = d.join("narrow.token");
    std::fs::write(&file, format!("{root}\n")).unwrap();
    let scoped = cvm(
        d,
        &[
            "token",
            "attenuate",
            &format!("@{}", file.display()),
            "--ops",
            "transfer,read",
            "--resources",
            &res,
            "--domains",
            "beta,alpha",
        ],
    );
    assert!(scoped.status.success(), "{}", stderr(&scoped));
    let scoped = CapabilityToken::from_text(&stdout(&scoped)).unwrap();
    let effective = scoped.effective();
    assert_eq!(effective.operations, Some(vec![OperationKind::Read, OperationKind::Transfer]));
    assert_eq!(effective.resources, Some([rid(4)].into_iter().collect()));
    assert_eq!(effective.domains, Some([dom("alpha"), dom("beta")].into_iter().collect()));
    let out = cvm(d, &["--json", "token", "verify", &scoped.to_text(), "--at", "5"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((json["valid"].as_bool(), out.status.code()), (Some(true), Some(0)));
    let bad_flag = cvm(d, &["token", "attenuate", &root, "--ops", "fly"]);
    assert!(stderr(&bad_flag).contains("unknown operation kind \"fly\""), "{}", stderr(&bad_flag));

    // Verification against a replaced key fails.
    assert!(cvm(d, &["token", "keygen", "--domain", "alpha", "--force"]).status.success());
    let out = cvm(d, &["token", "verify", &narrow, "--at", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("tag does not match"), "{}", stdout(&out));

    let bad = cvm(d, &["token", "inspect", "cvmcap1.!"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("invalid character '!' at position 8"), "{}", stderr(&bad));
}

// ---------------------------------------------------------------- property

fn arb_right() -> impl Strategy<Value = Right> {
    prop::sample::select(Right::ALL.to_vec())
}

fn arb_op() -> impl Strategy<Value = OperationKind> {
    prop::sample::select(OperationKind::ALL.to_vec())
}

fn arb_caveat() -> impl Strategy<Value = Caveat> {
    prop_oneof![
        // Keep Delegate most of the time so chains grow past a rights caveat.
        (prop::collection::vec(arb_right(), 0..7), prop::bool::weighted(0.7)).prop_map(|(mut rights, keep)| {
            if keep {
                rights.push(Right::Delegate);
            }
            Caveat::Rights(rights)
        }),
        prop::collection::vec(0u8..6, 0..5).prop_map(|ids| Caveat::Resources(ids.into_iter().map(rid).collect())),
        prop::collection::vec(prop::sample::select(vec!["alpha", "beta", "gamma"]), 0..4)
            .prop_map(|ds| Caveat::Domains(ds.into_iter().map(dom).collect())),
        prop::collection::vec(arb_op(), 0..7).prop_map(Caveat::Operations),
        (0u64..200).prop_map(Caveat::ExpiresAt),
        (0u64..200).prop_map(Caveat::MaxQuantity),
    ]
}

#[derive(Debug, Clone)]
struct Probe {
    op: OperationKind,
    right: Right,
    resource: Option<u8>,
    domain: &'static str,
    quantity: Option<u64>,
    now: u64,
}

fn arb_probe() -> impl Strategy<Value = Probe> {
    (
        arb_op(),
        arb_right(),
        prop::option::of(0u8..7),
        prop::sample::select(vec!["alpha", "beta", "gamma"]),
        prop::option::of(0u64..250),
        0u64..250,
    )
        .prop_map(|(op, right, resource, domain, quantity, now)| Probe {
            op,
            right,
            resource,
            domain,
            quantity,
            now,
        })
}

fn allows(p: &Permissions, probe: &Probe) -> bool {
    let id = probe.resource.map(rid);
    p.check_request(probe.op, probe.right, id.as_ref(), probe.quantity, probe.now).is_ok()
        && p.check_domain(&dom(probe.domain)).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn attenuation_never_grants_more_than_its_parent(
        caveats in prop::collection::vec(arb_caveat(), 0..12),
        probes in prop::collection::vec(arb_probe(), 16),
    ) {
        let k = key(3);
        let mut token = root_token(&k, "alpha");
        for caveat in caveats {
            let parent = token.clone();
            match parent.attenuate(caveat.clone()) {
                Ok(child) => {
                    child.verify_chain(&k).unwrap();
                    let (pe, ce) = (parent.effective(), child.effective());
                    prop_assert!(ce.is_within(&pe), "{} widened {:?} to {:?}", caveat, pe, ce);
                    for probe in &probes {
                        prop_assert!(!allows(&ce, probe) || allows(&pe, probe), "{}: child allows {:?}", caveat, probe);
                    }
                    prop_assert_eq!(CapabilityToken::from_text(&child.to_text()).unwrap(), child.clone());
                    token = child;
                }
                Err(CapabilityError::Widening { .. }) | Err(CapabilityError::NotDelegatable { .. }) => {
                    // A refused caveat, appended anyway, must not verify.
                    let forged = hand_append(&parent, caveat.clone().normalized());
                    prop_assert!(forged.verify_chain(&k).is_err());
                    prop_assert!(forged.effective().is_within(&parent.effective()));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_and_valid_decodes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(token) = CapabilityToken::from_bytes(&bytes) {
            prop_assert_eq!(token.to_bytes(), bytes.clone());
        }
        let _ = CapabilityToken::from_text(&text_of(&bytes));
    }
}
