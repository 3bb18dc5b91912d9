//! Claims behaviour end to end on real wasm bytes: signing, verification,
//! every refusal, and compatibility with the wascap format as specified.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trellis_claims::wasm::{CLAIMS_SECTION, LEGACY_CLAIMS_SECTION, append_custom_section};
use trellis_claims::{
    ClaimsError, ComponentMetadata, KeyKind, KeyPair, Policy, ProviderSignOptions, SignOptions,
    Token, component_hash, now_unix, read_component_claims, sign_component, sign_provider,
    verify_component, verify_provider,
};

/// A small but real core module: one function type and one exported
/// function, hand-assembled so the test needs no toolchain.
fn module() -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type: () -> ()
    m.extend_from_slice(&[0x03, 0x02, 0x01, 0x00]); // func 0 has type 0
    m.extend_from_slice(&[0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00]); // export "f"
    m.extend_from_slice(&[0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b]); // body: end
    m
}

fn signed_with(options: &SignOptions) -> (Vec<u8>, KeyPair, KeyPair) {
    let account = KeyKind::Account.generate();
    let component = KeyKind::Component.generate();
    let signed = sign_component(&module(), &account, &component.public_key(), options).unwrap();
    (signed, account, component)
}

fn count_sections(bytes: &[u8], name: &str) -> usize {
    trellis_claims::wasm::custom_section_names(bytes)
        .unwrap()
        .iter()
        .filter(|n| *n == name)
        .count()
}

#[test]
fn signed_component_verifies_and_keeps_its_metadata() {
    let options = SignOptions {
        name: Some("hello".into()),
        ver: Some("1.2.3".into()),
        rev: Some(7),
        tags: vec!["demo".into()],
        ..Default::default()
    };
    let (signed, account, component) = signed_with(&options);
    let token = verify_component(&signed, &Policy::any_issuer(), now_unix()).unwrap();
    assert_eq!(token.claims.iss, account.public_key());
    assert_eq!(token.claims.sub, component.public_key());
    assert_eq!(token.claims.wascap_revision, Some(3));
    let meta = token.claims.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("hello"));
    assert_eq!(meta.ver.as_deref(), Some("1.2.3"));
    assert_eq!(meta.rev, Some(7));
    assert_eq!(meta.tags, Some(vec!["demo".to_string()]));
    assert_eq!(meta.hash, component_hash(&module()).unwrap());
    assert!(!meta.prov);
}

#[test]
fn flipping_one_byte_of_code_is_a_hash_mismatch() {
    let (mut signed, _, _) = signed_with(&SignOptions::default());
    // The last byte of the original module is the function body's `end`;
    // turn it into `nop` (0x01) so the module is different but still parses.
    let at = module().len() - 1;
    signed[at] = 0x01;
    let err = verify_component(&signed, &Policy::any_issuer(), now_unix()).unwrap_err();
    assert!(matches!(err, ClaimsError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("changed after signing"));
}

#[test]
fn a_signature_from_another_key_is_refused() {
    let (signed, _, component) = signed_with(&SignOptions::default());
    let jwt = trellis_claims::wasm::find_claims(&signed).unwrap().unwrap();
    // Keep header and claims (which name the real issuer), but sign them
    // with an impostor account.
    let impostor = KeyKind::Account.generate();
    let input = jwt.rsplit_once('.').unwrap().0;
    let forged_sig = URL_SAFE_NO_PAD.encode(impostor.sign(input.as_bytes()).unwrap());
    let forged = format!("{input}.{forged_sig}");
    let mut bytes = module();
    append_custom_section(&mut bytes, CLAIMS_SECTION, forged.as_bytes());
    let err = verify_component(&bytes, &Policy::any_issuer(), now_unix()).unwrap_err();
    assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
    let _ = component;
}

#[test]
fn edited_claims_break_the_signature() {
    let (signed, _, _) = signed_with(&SignOptions::default());
    let jwt = trellis_claims::wasm::find_claims(&signed).unwrap().unwrap();
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let body = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let mut body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    body["wascap"]["name"] = "evil".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap());
    let mut bytes = module();
    append_custom_section(&mut bytes, CLAIMS_SECTION, parts.join(".").as_bytes());
    let err = verify_component(&bytes, &Policy::any_issuer(), now_unix()).unwrap_err();
    assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
}

#[test]
fn expired_claims_are_refused() {
    let now = now_unix();
    let (signed, _, _) = signed_with(&SignOptions {
        expires_at: Some(now - 10),
        ..Default::default()
    });
    let err = verify_component(&signed, &Policy::any_issuer(), now).unwrap_err();
    assert!(matches!(err, ClaimsError::Expired { .. }), "{err}");
}

#[test]
fn claims_not_yet_valid_are_refused() {
    let now = now_unix();
    let (signed, _, _) = signed_with(&SignOptions {
        not_before: Some(now + 3600),
        ..Default::default()
    });
    let err = verify_component(&signed, &Policy::any_issuer(), now).unwrap_err();
    assert!(matches!(err, ClaimsError::NotYetValid { .. }), "{err}");
    assert!(verify_component(&signed, &Policy::any_issuer(), now + 3601).is_ok());
}

#[test]
fn an_issuer_outside_the_allow_list_is_refused() {
    let (signed, account, _) = signed_with(&SignOptions::default());
    let other = KeyKind::Account.generate().public_key();
    let policy = Policy::allow_issuers([other]).unwrap();
    let err = verify_component(&signed, &policy, now_unix()).unwrap_err();
    assert!(matches!(err, ClaimsError::IssuerNotAllowed { .. }), "{err}");
    let policy = Policy::allow_issuers([account.public_key()]).unwrap();
    assert!(verify_component(&signed, &policy, now_unix()).is_ok());
}

#[test]
fn an_allow_list_entry_must_be_an_account_key() {
    let host = KeyKind::Host.generate().public_key();
    assert!(matches!(
        Policy::allow_issuers([host]).unwrap_err(),
        ClaimsError::WrongKeyKind { .. }
    ));
}

#[test]
fn an_unsigned_component_has_no_claims() {
    let err = verify_component(&module(), &Policy::any_issuer(), now_unix()).unwrap_err();
    assert!(matches!(err, ClaimsError::NoClaims));
    assert!(err.to_string().contains("wash claims sign"));
    assert_eq!(read_component_claims(&module()).unwrap(), None);
}

#[test]
fn resigning_replaces_the_claims_instead_of_stacking_them() {
    let (signed, _, component) = signed_with(&SignOptions::default());
    let second_account = KeyKind::Account.generate();
    let resigned = sign_component(
        &signed,
        &second_account,
        &component.public_key(),
        &SignOptions {
            name: Some("again".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(count_sections(&resigned, CLAIMS_SECTION), 1);
    assert_eq!(
        trellis_claims::wasm::strip_claims(&resigned).unwrap(),
        module()
    );
    let token = verify_component(&resigned, &Policy::any_issuer(), now_unix()).unwrap();
    assert_eq!(token.claims.iss, second_account.public_key());
}

#[test]
fn signing_needs_an_account_issuer_and_a_component_subject() {
    let not_account = KeyKind::Host.generate();
    let component = KeyKind::Component.generate().public_key();
    let err = sign_component(&module(), &not_account, &component, &SignOptions::default());
    assert!(matches!(err, Err(ClaimsError::WrongKeyKind { .. })));
    let account = KeyKind::Account.generate();
    let provider = KeyKind::Provider.generate().public_key();
    let err = sign_component(&module(), &account, &provider, &SignOptions::default());
    assert!(matches!(err, Err(ClaimsError::WrongKeyKind { .. })));
}

/// Builds a token exactly as the wascap format describes it, without any
/// Trellis encoding code: JSON text written out by hand, base64url without
/// padding, an Ed25519 signature over `header.claims` by the issuer's nkey,
/// embedded in a custom section named `jwt` (the legacy name) whose bytes
/// are also laid out by hand.
#[test]
fn a_hand_built_wascap_token_verifies() {
    let account = KeyKind::Account.generate();
    let component = KeyKind::Component.generate();
    let code = module();
    let hash = component_hash(&code).unwrap();
    assert_eq!(hash.len(), 64);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );

    let header = r#"{"typ":"jwt","alg":"Ed25519"}"#;
    let claims = format!(
        concat!(
            r#"{{"jti":"8b1b3f0c2c1e4a7d","iat":1700000000,"iss":"{iss}","sub":"{sub}","#,
            r#""wascap":{{"name":"Hand Built","hash":"{hash}","tags":["a","b"],"rev":4,"#,
            r#""ver":"0.4.0","prov":false,"call_alias":"hand"}},"wascap_revision":3}}"#
        ),
        iss = account.public_key(),
        sub = component.public_key(),
        hash = hash,
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(&claims)
    );
    let signature = URL_SAFE_NO_PAD.encode(account.sign(input.as_bytes()).unwrap());
    let jwt = format!("{input}.{signature}");

    // Custom section: id 0, size, name length, name, payload. Sizes < 128
    // would fit one LEB byte; the token is longer, so write LEB128 by hand.
    let name = LEGACY_CLAIMS_SECTION.as_bytes();
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(jwt.as_bytes());
    let mut wasm = code.clone();
    wasm.push(0);
    let mut size = content.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            wasm.push(byte);
            break;
        }
        wasm.push(byte | 0x80);
    }
    wasm.extend_from_slice(&content);

    let token = verify_component(&wasm, &Policy::any_issuer(), now_unix()).unwrap();
    assert_eq!(token.claims.jti, "8b1b3f0c2c1e4a7d");
    assert_eq!(token.claims.iat, 1_700_000_000);
    let meta = token.claims.metadata.unwrap();
    assert_eq!(
        meta,
        ComponentMetadata {
            name: Some("Hand Built".into()),
            hash,
            tags: Some(vec!["a".into(), "b".into()]),
            rev: Some(4),
            ver: Some("0.4.0".into()),
            prov: false,
            call_alias: Some("hand".into()),
        }
    );
}

/// The other direction: a Trellis token read with nothing but base64 and a
/// JSON parser has the header, claim names and encodings the format names.
#[test]
fn trellis_tokens_have_the_wascap_shape() {
    let (signed, account, component) = signed_with(&SignOptions {
        name: Some("shape".into()),
        expires_at: Some(4_000_000_000),
        ..Default::default()
    });
    let jwt = trellis_claims::wasm::find_claims(&signed).unwrap().unwrap();
    let segments: Vec<&str> = jwt.split('.').collect();
    assert_eq!(segments.len(), 3);
    assert!(segments.iter().all(|s| !s.contains('=')), "no padding");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).unwrap()).unwrap();
    assert_eq!(header, serde_json::json!({"typ": "jwt", "alg": "Ed25519"}));
    let body: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[1]).unwrap()).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "exp",
            "iat",
            "iss",
            "jti",
            "sub",
            "wascap",
            "wascap_revision"
        ]
    );
    assert_eq!(body["iss"], account.public_key());
    assert_eq!(body["sub"], component.public_key());
    assert_eq!(body["exp"], 4_000_000_000u64);
    assert_eq!(body["wascap_revision"], 3);
    assert_eq!(
        body["wascap"],
        serde_json::json!({"name": "shape", "hash": component_hash(&module()).unwrap(), "prov": false})
    );
    let signature = URL_SAFE_NO_PAD.decode(segments[2]).unwrap();
    let signing_input = format!("{}.{}", segments[0], segments[1]);
    account
        .verify(signing_input.as_bytes(), &signature)
        .unwrap();
}

#[test]
fn garbage_tokens_are_malformed_not_panics() {
    for junk in ["", "a", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.AA"] {
        let mut bytes = module();
        append_custom_section(&mut bytes, CLAIMS_SECTION, junk.as_bytes());
        let err = verify_component(&bytes, &Policy::any_issuer(), now_unix()).unwrap_err();
        assert!(
            matches!(err, ClaimsError::MalformedToken(_)),
            "{junk:?} gave {err}"
        );
    }
}

#[test]
fn a_token_with_another_algorithm_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"jwt","alg":"none"}"#);
    let body = URL_SAFE_NO_PAD.encode(r#"{"jti":"x","iat":0,"iss":"A","sub":"M"}"#);
    let err = Token::<ComponentMetadata>::decode(&format!("{header}.{body}.")).unwrap_err();
    assert!(matches!(err, ClaimsError::UnsupportedAlgorithm(_)), "{err}");
}

#[test]
fn provider_claims_cover_each_target_executable() {
    let account = KeyKind::Account.generate();
    let provider = KeyKind::Provider.generate();
    let linux = b"linux executable".as_slice();
    let mac = b"mac executable".as_slice();
    let token = sign_provider(
        [("x86_64-linux", linux), ("aarch64-macos", mac)],
        &account,
        &provider.public_key(),
        &ProviderSignOptions {
            name: Some("kv".into()),
            vendor: "trellis".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let policy = Policy::any_issuer();
    let now = now_unix();
    assert!(verify_provider(&token.jwt, "x86_64-linux", linux, &policy, now).is_ok());
    let err = verify_provider(&token.jwt, "x86_64-linux", mac, &policy, now).unwrap_err();
    assert!(matches!(err, ClaimsError::HashMismatch { .. }));
    let err = verify_provider(&token.jwt, "riscv64-linux", linux, &policy, now).unwrap_err();
    assert!(matches!(err, ClaimsError::UnknownTarget { .. }));
    assert!(err.to_string().contains("aarch64-macos, x86_64-linux"));
}

/// Pins the exact bytes of a token: fixed keys and fixed claims must always
/// encode to the same JWT (Ed25519 signatures are deterministic), so any
/// change to field order, names or encoding shows up here.
#[test]
fn token_encoding_is_pinned() {
    const ACCOUNT_SEED: &str = "SAAM3KKVQ6WSHTQR65COFOLOM3XGFGQML7UQCV27TB5PV5274JTL4MRBZY";
    const COMPONENT: &str = "MC4GZLANCQPPDMW6JUROO3KMO3LL62R7D7HFR5PS7CG6D46PPL7CZ76B";
    let account = KeyPair::from_seed(ACCOUNT_SEED).unwrap();
    let claims = trellis_claims::Claims {
        jti: "golden".into(),
        iat: 1_800_000_000,
        iss: account.public_key(),
        sub: COMPONENT.into(),
        exp: Some(1_900_000_000),
        nbf: None,
        metadata: Some(ComponentMetadata {
            name: Some("golden".into()),
            hash: "AB".repeat(32),
            tags: None,
            rev: Some(1),
            ver: Some("1.0.0".into()),
            prov: false,
            call_alias: None,
        }),
        wascap_revision: Some(3),
    };
    let token = Token::sign(claims.clone(), &account).unwrap();
    let golden = include_str!("golden/component.jwt").trim();
    assert_eq!(token.jwt, golden);
    let decoded = Token::<ComponentMetadata>::decode(golden).unwrap();
    assert_eq!(decoded.claims, claims);
}

fn golden(name: &str, value: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("TRELLIS_BLESS").is_some() {
        std::fs::write(&path, format!("{value}\n")).unwrap();
    }
    std::fs::read_to_string(&path).unwrap().trim().to_owned()
}

/// Pins both forms of the `trellis-invocation` header of every call a host
/// makes for a component, with fixed keys and claims: the signed JWT, and
/// the token sealed for a receiver once the two have paired.
#[test]
fn invocation_token_encodings_are_pinned() {
    use std::time::Duration;
    use trellis_claims::invocation::{
        Invocation, InvocationClaims, InvocationSigner, InvocationVerifier, SentToken,
    };

    const CLUSTER_SEED: &str = "SCAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6IFMDY";
    let cluster = KeyPair::from_seed(CLUSTER_SEED).unwrap();
    let host = "NBLUEHOSTXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
    let issuers = vec![cluster.public_key()];
    let signer = InvocationSigner::with_host_secret(cluster, host, [0x42; 32]).unwrap();
    let verifier = InvocationVerifier::new(&issuers, Duration::from_secs(30))
        .unwrap()
        .with_peer_secret([0x24; 32]);
    let claims = InvocationClaims {
        jti: "0123456789abcdef0123456789abcdef".into(),
        iat_ms: 1_800_000_000_000,
        iss: signer.issuer().to_owned(),
        sub: "counter".into(),
        host: host.into(),
        target: "default.kv.rpc.wasi.keyvalue.atomics.increment".into(),
        link: "default".into(),
        // SHA-256 of the body below.
        hash: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        hk: Some(signer.host_key().to_owned()),
    };
    let call = Invocation {
        subject: &claims.target,
        source_id: "counter",
        link_name: "default",
        body: b"",
    };

    let token = signer.sign_claims(&claims).unwrap();
    let signed = golden("invocation.jwt", &token);
    assert_eq!(token, signed);
    let outcome = verifier.verify(Some(&signed), &call, claims.iat_ms + 1);
    assert_eq!(outcome.as_ref().unwrap().claims, claims);
    let introduction = verifier.introduction(&outcome);
    assert_eq!(introduction, Some(verifier.peer_key()));
    let sent = SentToken {
        token,
        sealed: false,
    };
    assert!(!signer.answered("kv", &sent, introduction));

    let sealed_claims = InvocationClaims {
        jti: "fedcba9876543210fedcba9876543210".into(),
        hk: None,
        ..claims.clone()
    };
    let token = signer.seal_claims("kv", &sealed_claims).unwrap().token;
    let sealed = golden("invocation.sealed", &token);
    assert_eq!(token, sealed);
    let accepted = verifier
        .verify(Some(&sealed), &call, claims.iat_ms + 2)
        .unwrap();
    assert!(accepted.sealed);
    assert_eq!(accepted.claims, sealed_claims);
}
