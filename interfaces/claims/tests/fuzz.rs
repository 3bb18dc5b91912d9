//! Hostile input to every decoder in this crate: tokens, provider claims,
//! component sections and invocation signatures. Whatever the bytes, the
//! answer is a value or an error, never a panic.
//!
//! CI runs the default number of cases; `PROPTEST_CASES=1000000 cargo test
//! -p trellis-claims --release --test fuzz` is a long run.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use trellis_claims::invocation::{Invocation, InvocationSigner, InvocationVerifier, SentToken};
use trellis_claims::{ComponentMetadata, KeyKind, ProviderMetadata, Token};

/// Strings shaped like tokens: three segments of base64url-encoded bytes
/// that are sometimes JSON, or plain junk.
fn token_like() -> impl Strategy<Value = String> {
    let json_object = proptest::collection::btree_map("[a-z_]{1,8}", ".{0,12}", 0..6)
        .prop_map(|m| serde_json::to_vec(&m).unwrap());
    let segment = prop_oneof![
        json_object.prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        ".{0,24}",
    ];
    prop_oneof![
        (segment.clone(), segment.clone(), segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ".{0,80}",
    ]
}

/// A genuine invocation token with a few bytes overwritten.
fn mangled(token: &str, edits: &[(usize, u8)]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for (at, byte) in edits {
        let at = at % bytes.len();
        bytes[at] = *byte;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #[test]
    fn token_decoding_never_panics(jwt in token_like()) {
        let _ = Token::<ComponentMetadata>::decode(&jwt);
        let _ = Token::<ProviderMetadata>::decode(&jwt);
        let _ = Token::<ComponentMetadata>::decode_unverified(&jwt);
        let _ = trellis_claims::decode_provider(&jwt);
    }

    #[test]
    fn component_sections_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.extend_from_slice(&bytes);
        let _ = trellis_claims::read_component_claims(&wasm);
        let _ = trellis_claims::read_component_claims(&bytes);
        let _ = trellis_claims::component_hash(&wasm);
    }

    #[test]
    fn invocation_checks_never_panic_and_never_accept_a_mangled_token(
        junk in token_like(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let key = KeyKind::Cluster.generate();
        let issuers = vec![key.public_key()];
        let signer = InvocationSigner::new(key, "NHOST").unwrap();
        let verifier = InvocationVerifier::new(&issuers, Duration::from_secs(30)).unwrap();
        let call = Invocation {
            subject: "l.kv.rpc.wasi.keyvalue.atomics.increment",
            source_id: "counter",
            link_name: "default",
            body: b"body",
        };
        let now = 1_800_000_000_000;
        prop_assert!(verifier.verify(Some(&junk), &call, now).is_err());
        let genuine = signer.sign(&call, now).unwrap();
        let changed = mangled(&genuine, &edits);
        if changed != genuine {
            prop_assert!(verifier.verify(Some(&changed), &call, now).is_err());
        }
        let outcome = verifier.verify(Some(&genuine), &call, now);
        prop_assert!(outcome.is_ok());
        // Paired by that call, the host now seals; a mangled seal is
        // refused just the same, and the genuine one still goes through.
        let first = SentToken { token: genuine, sealed: false };
        signer.answered("kv", &first, verifier.introduction(&outcome));
        let sealed = signer.seal("kv", &call, now).unwrap();
        prop_assert!(sealed.sealed);
        let changed = mangled(&sealed.token, &edits);
        if changed != sealed.token {
            prop_assert!(verifier.verify(Some(&changed), &call, now).is_err());
        }
        prop_assert!(verifier.verify(Some(&sealed.token), &call, now).is_ok());
    }
}
