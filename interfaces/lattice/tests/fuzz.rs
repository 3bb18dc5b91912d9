//! Hostile input to every wire decoder in this crate: subjects, control
//! commands, events, host data, RPC replies, keyvalue requests, links,
//! WIT names and outbound grants. Whatever arrives, the answer is a value
//! or an error, never a panic.
//!
//! CI runs the default number of cases; `PROPTEST_CASES=1000000 cargo test
//! -p trellis-lattice --release --test fuzz` is a long run.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use trellis_lattice::chunk::{Offer, Pull, Reassembler};
use trellis_lattice::ctl::{
    HostLabel, LabelLimits, ScaleComponentCommand, StartProviderCommand, StopHostCommand,
    StopProviderCommand, UpdateComponentCommand,
};
use trellis_lattice::grant::OutboundGrant;
use trellis_lattice::keyvalue::KvRequest;
use trellis_lattice::wit::{WitFunction, WitInterface};
use trellis_lattice::{CloudEvent, HostData, Link, Subjects, rpc};

/// Subjects close to real ones: real prefixes and tokens, shuffled and
/// mixed with junk.
fn subject() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("wasmbus".to_owned()),
        Just("ctl".to_owned()),
        Just("v1".to_owned()),
        Just("fuzz".to_owned()),
        Just("rpc".to_owned()),
        Just("component".to_owned()),
        Just("scale".to_owned()),
        Just("link".to_owned()),
        Just("config".to_owned()),
        Just("wasi".to_owned()),
        Just("*".to_owned()),
        Just(">".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9_-]{1,8}",
        ".{0,6}",
    ];
    prop_oneof![
        proptest::collection::vec(token, 0..9).prop_map(|t| t.join(".")),
        ".{0,40}",
    ]
}

/// JSON values of any shape, with the field names control commands use
/// turning up often enough to reach past the first type check.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("component_id".to_owned()),
        Just("component_ref".to_owned()),
        Just("provider_id".to_owned()),
        Just("provider_ref".to_owned()),
        Just("host_id".to_owned()),
        Just("max_instances".to_owned()),
        Just("annotations".to_owned()),
        Just("config".to_owned()),
        Just("key".to_owned()),
        Just("value".to_owned()),
        Just("source_id".to_owned()),
        Just("target".to_owned()),
        Just("interfaces".to_owned()),
        Just("specversion".to_owned()),
        Just("type".to_owned()),
        Just("data".to_owned()),
        "[a-z_]{1,10}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn subjects_never_panic(subject in subject()) {
        let subjects = Subjects::new("fuzz").unwrap();
        let _ = subjects.parse_ctl(&subject);
        let _ = subjects.parse_rpc(&subject);
        let _ = Subjects::new(&subject);
    }

    #[test]
    fn control_commands_and_events_never_panic(value in json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = serde_json::from_slice::<ScaleComponentCommand>(&bytes);
        let _ = serde_json::from_slice::<UpdateComponentCommand>(&bytes);
        let _ = serde_json::from_slice::<StartProviderCommand>(&bytes);
        let _ = serde_json::from_slice::<StopProviderCommand>(&bytes);
        let _ = serde_json::from_slice::<StopHostCommand>(&bytes);
        if let Ok(label) = serde_json::from_slice::<HostLabel>(&bytes) {
            let _ = LabelLimits::default().check(&label.key, &label.value);
        }
        if let Ok(link) = serde_json::from_slice::<Link>(&bytes) {
            let _ = link.validate();
        }
        if let Ok(event) = CloudEvent::from_json(&bytes) {
            let _ = event.kind();
            let _ = event.parse();
        }
        let _ = HostData::decode(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn rpc_bodies_and_replies_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..128),
        interface in prop_oneof![Just("store"), Just("atomics"), Just("batch"), Just("other")],
        function in prop_oneof![
            Just("get"), Just("set"), Just("delete"), Just("exists"), Just("list-keys"),
            Just("increment"), Just("get-many"), Just("set-many"), Just("delete-many"), Just("x"),
        ],
    ) {
        let _ = rpc::decode_reply::<rmpv::Value>(&bytes);
        let _ = rpc::decode_reply::<Option<Vec<u8>>>(&bytes);
        let _ = KvRequest::decode(interface, function, &bytes);
    }

    #[test]
    fn names_and_grants_never_panic(text in ".{0,40}", list in proptest::collection::vec(".{0,24}", 0..4)) {
        let _ = WitInterface::parse(&text);
        let _ = WitFunction::parse(&text);
        let _ = OutboundGrant::parse(&list);
        let _ = HostData::decode(&text);
    }
}

proptest! {
    /// Whatever chunks arrive, in whatever order and size, the reassembler
    /// never panics, never holds more than the offer's size, and completes
    /// only with exactly the bytes sent, in order.
    #[test]
    fn the_chunk_reassembler_takes_only_the_payload_as_offered(
        size in 1u64..5000,
        chunk in 1u64..2000,
        limit in 0u64..6000,
        arrivals in proptest::collection::vec((0u64..8, 0usize..2100), 0..12),
        headers in proptest::collection::vec(("[a-z-]{1,20}", ".{0,20}"), 0..4),
    ) {
        let _ = Offer::from_lookup(|name| {
            headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        });
        let _ = Pull::parse(&format!("{size}"));
        let offer = Offer { subject: "_INBOX.x".into(), size, chunk };
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let Ok(mut r) = Reassembler::new(offer.clone(), limit) else {
            prop_assert!(size > limit);
            return Ok(());
        };
        for (seq, len) in arrivals {
            let start = usize::try_from(seq * chunk).unwrap().min(payload.len());
            let end = (start + len).min(payload.len());
            let _ = r.accept(seq, &payload[start..end]);
        }
        // Then the genuine chunks, from wherever it got to.
        while !r.is_complete() {
            let seq = r.next();
            let start = usize::try_from(seq * chunk).unwrap();
            let len = usize::try_from(offer.chunk_len(seq).unwrap()).unwrap();
            r.accept(seq, &payload[start..start + len]).unwrap();
        }
        prop_assert_eq!(r.finish().unwrap(), payload);
    }
}
