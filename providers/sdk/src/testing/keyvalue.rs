//! `wasi:keyvalue` links and requests as a keyvalue provider's tests spell
//! them, to send with [`ProviderClient::call_keyvalue`] or hand to a
//! [`KvStore`] directly, and a check that a store's increments are atomic.

use trellis_lattice::keyvalue::{KvRequest, KvResponse, NAMESPACE, PACKAGE};

#[cfg(doc)]
use super::ProviderClient;
use crate::ProviderLink;
use crate::keyvalue::KvStore;

/// A link named `default` from component `source` to keyvalue provider
/// `provider_id` for `wasi:keyvalue/{interfaces}`, its target config
/// resolved to `target_config` (where a backend reads its settings).
pub fn link(
    source: &str,
    provider_id: &str,
    interfaces: &[&str],
    target_config: &[(&str, &str)],
) -> ProviderLink {
    let link = super::link(source, provider_id, NAMESPACE, PACKAGE, interfaces);
    super::provider_link(link, &[], target_config)
}

/// `store.get` of `key` in `bucket`.
pub fn get(bucket: &str, key: &str) -> KvRequest {
    KvRequest::Get {
        bucket: bucket.into(),
        key: key.into(),
    }
}

/// `store.set` of `key` in `bucket` to `value`.
pub fn set(bucket: &str, key: &str, value: &[u8]) -> KvRequest {
    KvRequest::Set {
        bucket: bucket.into(),
        key: key.into(),
        value: value.to_vec(),
    }
}

/// `atomics.increment` of `key` in `bucket` by `delta`.
pub fn increment(bucket: &str, key: &str, delta: u64) -> KvRequest {
    KvRequest::Increment {
        bucket: bucket.into(),
        key: key.into(),
        delta,
    }
}

/// Increments `key` in bucket `default` by one, `times` times at once,
/// alternating between stores `first` and `second` (two connections to the
/// same data); returns the counter each increment saw, sorted. If the store
/// makes increments atomic, that is `1..=times`.
///
/// Panics if an increment fails.
pub async fn increment_through_both<S: KvStore + Clone>(
    first: &S,
    second: &S,
    key: &str,
    times: u64,
) -> Vec<u64> {
    let tasks: Vec<_> = (0..times)
        .map(|i| {
            let store = if i % 2 == 0 { first } else { second }.clone();
            let request = increment("default", key, 1);
            tokio::spawn(async move { store.handle(request).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(KvResponse::Counter(n))) => seen.push(n),
            other => panic!("increment failed: {other:?}"),
        }
    }
    seen.sort_unstable();
    seen
}
