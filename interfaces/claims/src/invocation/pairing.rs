//! Pairwise keys, so that most calls are checked with a MAC instead of a
//! signature.
//!
//! Verifying an Ed25519 signature costs tens of microseconds, on every call.
//! Instead, each host and each receiver (one provider process) agree on a
//! key of their own, once:
//! - a host holds an X25519 key for as long as it runs, and names its
//!   public half (`hk`) in the tokens it signs with its cluster key, which
//!   vouches for it;
//! - a receiver holds an X25519 key of its own, and introduces it (the
//!   `trellis-invocation-peer` reply header) in replies to calls it could
//!   not check with a MAC;
//! - both derive the same key from the X25519 agreement, and from then on
//!   the host seals its calls to that receiver with HMAC-SHA256 under it.
//!
//! Only that host and that receiver hold the key, so a provider can check
//! the calls sent to it without being able to forge one to anybody else.
//! An introduction needs no signature: a host that pairs with a stranger's
//! key only makes MACs the real receiver cannot check, and it falls back to
//! signing when the receiver says so.
//!
//! A sealed token is `m1.<hk>.<claims>.<tags>`: `hk` the host's X25519
//! public key and `claims` the [`super::InvocationClaims`], both base64url;
//! `tags` one `<receiver id>:<mac>` per receiver the host has paired with
//! for the call's target, comma-separated, since any instance of a provider
//! may take the call. The receiver id is the first [`ID_CHARS`] characters
//! of its base64url public key, the MAC the first [`MAC_BYTES`] bytes of
//! HMAC-SHA256 over `m1.<hk>.<claims>`.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::jwt::B64;

type HmacSha256 = Hmac<Sha256>;

/// The first segment of a sealed token: its format and version.
pub(super) const SEALED_PREFIX: &str = "m1";

/// What the pairwise key is derived for, so it is never reused elsewhere.
const KDF_LABEL: &[u8] = b"trellis invocation mac v1";

/// How many characters of its public key name a receiver in a sealed token.
pub const ID_CHARS: usize = 11;

/// How many bytes of HMAC-SHA256 a sealed token carries per receiver.
pub const MAC_BYTES: usize = 16;

/// How many receivers of one target a host seals for at most; beyond that
/// the longest-known ones are forgotten, and calls reaching them are signed.
pub const MAX_PEERS_PER_TARGET: usize = 8;

/// How many hosts a receiver stays paired with at most, unless configured
/// otherwise; the longest-paired are forgotten first, and re-pair with
/// their next signed call.
pub const DEFAULT_PAIRING_CAPACITY: usize = 4096;

/// One side's X25519 key for the life of its process.
pub(super) struct Session {
    secret: StaticSecret,
    public: [u8; 32],
    public_b64: String,
}

impl Session {
    pub(super) fn generate() -> Self {
        Self::from_secret(rand::random())
    }

    pub(super) fn from_secret(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        Session {
            secret,
            public,
            public_b64: B64.encode(public),
        }
    }

    /// The public key, base64url: a host's `hk`, a receiver's introduction.
    pub(super) fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// How sealed tokens name this side as a receiver.
    pub(super) fn id(&self) -> &str {
        &self.public_b64[..ID_CHARS]
    }

    /// The key this side shares with `peer` (a base64url public key);
    /// `host` says which of the two this side is, since the derivation
    /// puts the host's key first.
    pub(super) fn agree(&self, peer: &str, host: bool) -> Result<[u8; 32], String> {
        let bytes: [u8; 32] = B64
            .decode(peer)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("`{peer}` is not a base64url X25519 public key"))?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(bytes));
        if !shared.was_contributory() {
            return Err(format!("`{peer}` is a low-order point, not a usable key"));
        }
        let (host_key, receiver_key) = if host {
            (self.public, bytes)
        } else {
            (bytes, self.public)
        };
        let mut kdf = keyed(shared.as_bytes());
        kdf.update(KDF_LABEL);
        kdf.update(&host_key);
        kdf.update(&receiver_key);
        Ok(kdf.finalize().into_bytes().into())
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The MAC of `input` under `key`, base64url.
pub(super) fn tag(key: &[u8; 32], input: &str) -> String {
    let mut mac = keyed(key);
    mac.update(input.as_bytes());
    B64.encode(&mac.finalize().into_bytes()[..MAC_BYTES])
}

/// Whether `tag` (base64url) is the MAC of `input` under `key`, compared in
/// constant time.
pub(super) fn tag_matches(key: &[u8; 32], input: &str, tag: &str) -> bool {
    let Ok(tag) = B64.decode(tag) else {
        return false;
    };
    if tag.len() != MAC_BYTES {
        return false;
    }
    let mut mac = keyed(key);
    mac.update(input.as_bytes());
    mac.verify_truncated_left(&tag).is_ok()
}

/// A receiver a host has paired with.
pub(super) struct Peer {
    public: String,
    key: [u8; 32],
}

/// A host's pairings, by target (a provider id): every instance of that
/// target it has heard from, newest first.
#[derive(Default)]
pub(super) struct PeerBook {
    by_target: HashMap<String, Vec<Peer>>,
}

impl PeerBook {
    /// The tags segment for `input` to `target`'s receivers; `None` when
    /// the host knows none, and must sign instead.
    pub(super) fn tags(&self, target: &str, input: &str) -> Option<String> {
        let peers = self.by_target.get(target).filter(|p| !p.is_empty())?;
        let tags: Vec<String> = peers
            .iter()
            .map(|peer| format!("{}:{}", &peer.public[..ID_CHARS], tag(&peer.key, input)))
            .collect();
        Some(tags.join(","))
    }

    pub(super) fn knows(&self, target: &str, public: &str) -> bool {
        self.by_target
            .get(target)
            .is_some_and(|peers| peers.iter().any(|p| p.public == public))
    }

    pub(super) fn learn(&mut self, target: &str, public: &str, key: [u8; 32]) {
        let peers = self.by_target.entry(target.to_owned()).or_default();
        peers.retain(|p| p.public != public);
        peers.insert(
            0,
            Peer {
                public: public.to_owned(),
                key,
            },
        );
        peers.truncate(MAX_PEERS_PER_TARGET);
    }
}

/// What a receiver knows about a host it has paired with: the shared key,
/// and who vouched for the host's key.
#[derive(Clone)]
pub(super) struct Pairing {
    pub(super) key: [u8; 32],
    pub(super) issuer: String,
    pub(super) host: String,
}

/// A receiver's pairings, by host key, with the oldest forgotten first.
pub(super) struct Pairings {
    by_host_key: HashMap<String, Pairing>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Pairings {
    pub(super) fn new(capacity: usize) -> Self {
        Pairings {
            by_host_key: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn get(&self, host_key: &str) -> Option<&Pairing> {
        self.by_host_key.get(host_key)
    }

    pub(super) fn insert(&mut self, host_key: &str, pairing: Pairing) {
        if self
            .by_host_key
            .insert(host_key.to_owned(), pairing)
            .is_none()
        {
            self.order.push_back(host_key.to_owned());
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.by_host_key.remove(&old);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_host_key.len()
    }
}

/// A sealed token, split.
pub(super) struct Sealed<'a> {
    pub(super) host_key: &'a str,
    pub(super) claims: &'a str,
    /// What the MACs cover: everything before the tags.
    pub(super) signed_part: &'a str,
    tags: &'a str,
}

impl<'a> Sealed<'a> {
    /// Splits `token` if it is sealed; `None` if it is some other kind of
    /// token, an error if it is sealed but malformed.
    pub(super) fn parse(token: &'a str) -> Option<Result<Self, String>> {
        let rest = token.strip_prefix(SEALED_PREFIX)?.strip_prefix('.')?;
        let mut parts = rest.splitn(3, '.');
        let (Some(host_key), Some(claims), Some(tags)) = (parts.next(), parts.next(), parts.next())
        else {
            return Some(Err(
                "a sealed token has four dot-separated segments (m1.hk.claims.tags)".into(),
            ));
        };
        if host_key.is_empty() || claims.is_empty() || tags.is_empty() || tags.contains('.') {
            return Some(Err(
                "a sealed token has four non-empty dot-separated segments (m1.hk.claims.tags)"
                    .into(),
            ));
        }
        let signed_part = &token[..token.len() - tags.len() - 1];
        Some(Ok(Sealed {
            host_key,
            claims,
            signed_part,
            tags,
        }))
    }

    /// The tag addressed to receiver `id`.
    pub(super) fn tag_for(&self, id: &str) -> Option<&'a str> {
        self.tags
            .split(',')
            .filter_map(|entry| entry.split_once(':'))
            .find(|(to, _)| *to == id)
            .map(|(_, tag)| tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_key_and_nobody_else_does() {
        let host = Session::generate();
        let receiver = Session::generate();
        let stranger = Session::generate();
        let on_host = host.agree(receiver.public_key(), true).unwrap();
        let on_receiver = receiver.agree(host.public_key(), false).unwrap();
        assert_eq!(on_host, on_receiver);
        assert_ne!(stranger.agree(host.public_key(), false).unwrap(), on_host);
        // The roles are part of the derivation.
        assert_ne!(host.agree(receiver.public_key(), false).unwrap(), on_host);
    }

    #[test]
    fn unusable_keys_are_refused() {
        let host = Session::generate();
        assert!(host.agree("not base64!", true).is_err());
        assert!(host.agree(&B64.encode([1u8; 16]), true).is_err());
        // The identity point makes every shared secret zero.
        assert!(host.agree(&B64.encode([0u8; 32]), true).is_err());
    }

    #[test]
    fn a_tag_matches_only_its_input_and_key() {
        let key = [7u8; 32];
        let t = tag(&key, "m1.a.b");
        assert!(tag_matches(&key, "m1.a.b", &t));
        assert!(!tag_matches(&key, "m1.a.c", &t));
        assert!(!tag_matches(&[8u8; 32], "m1.a.b", &t));
        assert!(!tag_matches(&key, "m1.a.b", &t[..t.len() - 2]));
        assert!(!tag_matches(&key, "m1.a.b", "???"));
    }

    #[test]
    fn a_host_seals_for_at_most_a_few_receivers_of_a_target() {
        let mut book = PeerBook::default();
        assert!(book.tags("kv", "x").is_none());
        let receivers: Vec<Session> = (0..MAX_PEERS_PER_TARGET + 2)
            .map(|_| Session::generate())
            .collect();
        for r in &receivers {
            book.learn("kv", r.public_key(), [1; 32]);
            book.learn("kv", r.public_key(), [1; 32]);
        }
        let tags = book.tags("kv", "x").unwrap();
        assert_eq!(tags.split(',').count(), MAX_PEERS_PER_TARGET);
        assert!(!book.knows("kv", receivers[0].public_key()));
        assert!(book.knows("kv", receivers[MAX_PEERS_PER_TARGET + 1].public_key()));
        assert!(book.tags("other", "x").is_none());
    }

    #[test]
    fn a_receiver_forgets_its_oldest_pairings_first() {
        let mut pairings = Pairings::new(2);
        let pairing = Pairing {
            key: [0; 32],
            issuer: "C".into(),
            host: "N".into(),
        };
        for host in ["a", "b", "a", "c"] {
            pairings.insert(host, pairing.clone());
        }
        assert_eq!(pairings.len(), 2);
        assert!(pairings.get("a").is_none());
        assert!(pairings.get("b").is_some() && pairings.get("c").is_some());
    }

    #[test]
    fn sealed_tokens_split_into_their_parts() {
        let sealed = Sealed::parse("m1.HK.CLAIMS.aaaaaaaaaaa:T1,bbbbbbbbbbb:T2")
            .unwrap()
            .unwrap();
        assert_eq!(sealed.host_key, "HK");
        assert_eq!(sealed.claims, "CLAIMS");
        assert_eq!(sealed.signed_part, "m1.HK.CLAIMS");
        assert_eq!(sealed.tag_for("bbbbbbbbbbb"), Some("T2"));
        assert_eq!(sealed.tag_for("ccccccccccc"), None);
        assert!(Sealed::parse("eyJ0.eyJ1.sig").is_none());
        for bad in [
            "m1.",
            "m1.HK",
            "m1.HK.CLAIMS",
            "m1..C.T",
            "m1.H.C.T.U",
            "m1.H.C.",
        ] {
            assert!(matches!(Sealed::parse(bad), Some(Err(_))), "{bad}");
        }
    }
}
