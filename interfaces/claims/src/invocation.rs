//! Signed invocations: how a receiver knows that a call comes from a host of
//! its lattice, on behalf of the component the call names.
//!
//! Only hosts run components, so only a host can say "this call is component
//! X's". Each host holds a cluster key (`C…`). Every call it sends for a
//! component carries a token whose [`InvocationClaims`] bind the call as
//! sent: the subject (target and function), the calling component, the
//! link, and the SHA-256 of the body, together with a unique id and the time
//! of sending. A receiver holds the public keys of the lattice's cluster
//! issuers and accepts a call only when
//! - the token is signed by one of those keys, or sealed with a key the
//!   receiver shares with a host such a token vouched for (see below),
//! - every bound field matches the call as it arrived,
//! - it was sent within the replay window, and
//! - its id was not seen before within that window.
//!
//! The cluster keys are asymmetric because the receivers are the ones
//! checking: with one shared secret (an HMAC key), every provider able to
//! check a call could also forge one. An Ed25519 check costs tens of
//! microseconds per call, though, so a host signs only until it has paired
//! with a receiver: each pair then shares a key of its own, and the host
//! seals its calls with a MAC that costs about a microsecond to check
//! ([`pairing`] has the handshake). The replay window bounds how long a
//! receiver must remember ids, and with them how much clock skew between
//! machines is tolerated.
//!
//! ```
//! use std::time::Duration;
//! use trellis_claims::KeyKind;
//! use trellis_claims::invocation::{Invocation, InvocationSigner, InvocationVerifier, now_ms};
//!
//! let cluster = KeyKind::Cluster.generate();
//! let issuers = vec![cluster.public_key()];
//! let host = InvocationSigner::new(cluster, "NHOST")?;
//! let provider = InvocationVerifier::new(&issuers, Duration::from_secs(30))?;
//! let call = Invocation {
//!     subject: "default.kv.rpc.wasi.keyvalue.atomics.increment",
//!     source_id: "counter",
//!     link_name: "default",
//!     body: b"\x93\xa4hits\x01",
//! };
//! // The first call to `kv` is signed; the reply introduces the provider.
//! let first = host.seal("kv", &call, now_ms())?;
//! let outcome = provider.verify(Some(&first.token), &call, now_ms());
//! assert!(outcome.is_ok());
//! let retry = host.answered("kv", &first, provider.introduction(&outcome));
//! assert!(!retry);
//! // From then on calls to `kv` are sealed with the key the two share.
//! let next = host.seal("kv", &call, now_ms())?;
//! assert!(next.sealed);
//! assert!(provider.verify(Some(&next.token), &call, now_ms()).is_ok());
//! // The same token a second time is a replay.
//! assert!(provider.verify(Some(&next.token), &call, now_ms()).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::jwt::{B64, sign_body, split_body};
use crate::{ClaimsError, KeyKind};

pub mod pairing;

use pairing::{Pairing, Pairings, PeerBook, Sealed, Session};

/// How long after signing a call is accepted, unless configured otherwise.
pub const DEFAULT_INVOCATION_WINDOW: Duration = Duration::from_secs(30);

/// How many call ids a verifier remembers at most, unless configured
/// otherwise: 16 bytes and some bookkeeping each, a few MiB in all.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The parts of a call that a signature covers: everything a receiver acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation<'a> {
    /// The NATS subject the call goes to; it names target and function.
    pub subject: &'a str,
    /// The component the call is made for.
    pub source_id: &'a str,
    /// The link it was routed by.
    pub link_name: &'a str,
    /// The encoded parameters.
    pub body: &'a [u8],
}

/// The claims segment of an invocation token. The field names are part of
/// the wire contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationClaims {
    /// Unique id of this call (32 hex digits): what the replay check remembers.
    pub jti: String,
    /// When the host signed, in milliseconds since the Unix epoch.
    pub iat_ms: u64,
    /// The cluster key that signed (`C…`).
    pub iss: String,
    /// The component the call is made for.
    pub sub: String,
    /// The host that ran the component (`N…`).
    pub host: String,
    /// The subject the call was sent to.
    pub target: String,
    /// The link the call was routed by.
    pub link: String,
    /// SHA-256 of the body, base64url without padding.
    pub hash: String,
    /// In signed tokens, the host's X25519 key (base64url) for receivers
    /// to pair with; the cluster key's signature vouches for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hk: Option<String>,
}

/// Why a receiver refuses a call. Each message says what was wrong and
/// where to look.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvocationError {
    /// The call has no token at all.
    #[error(
        "the call carries no invocation signature: only a host of this lattice can call for a \
         component"
    )]
    Missing,

    /// The token does not parse.
    #[error("the invocation signature is malformed: {0}")]
    Malformed(String),

    /// The token is signed by a key this receiver does not trust.
    #[error(
        "the call is signed by cluster key {issuer}, which is not one of this lattice's cluster \
         issuers; if that host belongs to the lattice, add its key to every host's \
         --cluster-issuers"
    )]
    UnknownIssuer {
        /// The key named in the token.
        issuer: String,
    },

    /// The signature does not verify against the key the token names.
    #[error("the invocation signature does not verify against cluster key {issuer}")]
    BadSignature {
        /// The key named in the token.
        issuer: String,
    },

    /// The call as received differs from the call as signed.
    #[error(
        "the call's {field} is not the one its host signed (signed `{signed}`, received \
         `{received}`): the call was altered after signing"
    )]
    Altered {
        /// Which part differs: subject, source, link or body.
        field: &'static str,
        /// What the token says.
        signed: String,
        /// What arrived.
        received: String,
    },

    /// The call was signed too long ago, or in the future.
    #[error(
        "the call was signed {age_ms} ms {when}, outside the {window_ms} ms invocation window; a \
         replayed call, or clocks that disagree (check NTP on hosts and providers)"
    )]
    Stale {
        /// How far from now the signing time is.
        age_ms: u64,
        /// "ago" or "in the future".
        when: &'static str,
        /// The accepted window.
        window_ms: u64,
    },

    /// The call is sealed, but not for this receiver: it has not paired with
    /// the sending host, or the host has not paired with it yet. The host
    /// sends the call again, signed.
    #[error(
        "the call is sealed for receivers other than this one (it has not paired with host key \
         {host_key}); the host sends it again signed"
    )]
    Unpaired {
        /// The host's X25519 key, as the token names it.
        host_key: String,
    },

    /// The seal does not verify against the key this receiver shares with
    /// the host the token names.
    #[error(
        "the invocation seal does not verify against the key this receiver shares with host \
         {host}"
    )]
    BadSeal {
        /// The host paired with that key.
        host: String,
    },

    /// The same call arrived before.
    #[error("the call {jti} was received before: a replay")]
    Replayed {
        /// The call's id.
        jti: String,
    },

    /// The call is older than anything the replay cache still remembers,
    /// because the cache overflowed; it cannot be told from a replay.
    #[error(
        "the call {jti} is older than the oldest call the replay cache still remembers (it holds \
         {capacity} calls); raise the replay capacity if calls arrive this fast"
    )]
    Unprovable {
        /// The call's id.
        jti: String,
        /// The cache's size.
        capacity: usize,
    },
}

/// Milliseconds since the Unix epoch, the unit of [`InvocationClaims::iat_ms`].
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn body_hash(body: &[u8]) -> String {
    B64.encode(Sha256::digest(body))
}

/// What a host sends with one call: the token, and whether it is sealed
/// (so that a receiver's introduction means "send it again, signed").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentToken {
    /// The `trellis-invocation` header's value.
    pub token: String,
    /// Whether the token is sealed for paired receivers rather than signed.
    pub sealed: bool,
}

/// Signs and seals calls for a host: with its cluster key, and with the
/// keys it shares with the receivers it has paired with. Safe to share
/// between tasks.
pub struct InvocationSigner {
    key: KeyPair,
    issuer: String,
    host_id: String,
    session: Session,
    peers: Mutex<PeerBook>,
}

impl fmt::Debug for InvocationSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationSigner")
            .field("issuer", &self.issuer)
            .field("host_id", &self.host_id)
            .field("host_key", &self.session.public_key())
            .finish_non_exhaustive()
    }
}

impl InvocationSigner {
    /// A signer for host `host_id`; `cluster_key` must be a cluster key
    /// (`SC…`). Its X25519 key is new, and lives as long as it does.
    pub fn new(cluster_key: KeyPair, host_id: impl Into<String>) -> Result<Self, ClaimsError> {
        Self::with_session(cluster_key, host_id, Session::generate())
    }

    /// The same with a given X25519 secret, to pin the format in tests.
    pub fn with_host_secret(
        cluster_key: KeyPair,
        host_id: impl Into<String>,
        secret: [u8; 32],
    ) -> Result<Self, ClaimsError> {
        Self::with_session(cluster_key, host_id, Session::from_secret(secret))
    }

    fn with_session(
        cluster_key: KeyPair,
        host_id: impl Into<String>,
        session: Session,
    ) -> Result<Self, ClaimsError> {
        KeyKind::Cluster.check_pair("the cluster key", &cluster_key)?;
        Ok(InvocationSigner {
            issuer: cluster_key.public_key(),
            key: cluster_key,
            host_id: host_id.into(),
            session,
            peers: Mutex::new(PeerBook::default()),
        })
    }

    /// The public cluster key receivers must trust.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The host's X25519 public key, base64url: the `hk` of its tokens.
    pub fn host_key(&self) -> &str {
        self.session.public_key()
    }

    fn claims(&self, call: &Invocation<'_>, now_ms: u64, hk: Option<String>) -> InvocationClaims {
        InvocationClaims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat_ms: now_ms,
            iss: self.issuer.clone(),
            sub: call.source_id.to_owned(),
            host: self.host_id.clone(),
            target: call.subject.to_owned(),
            link: call.link_name.to_owned(),
            hash: body_hash(call.body),
            hk,
        }
    }

    /// A token for `call`, signed with the cluster key at `now_ms`; any
    /// receiver of the lattice can check it, and pair with this host.
    pub fn sign(&self, call: &Invocation<'_>, now_ms: u64) -> Result<String, ClaimsError> {
        let hk = Some(self.session.public_key().to_owned());
        self.sign_claims(&self.claims(call, now_ms, hk))
    }

    /// Signs `claims` as they are. [`InvocationSigner::sign`] is the way to
    /// sign a call; this exists to pin the format in tests.
    pub fn sign_claims(&self, claims: &InvocationClaims) -> Result<String, ClaimsError> {
        if claims.iss != self.issuer {
            return Err(ClaimsError::InvalidKey(format!(
                "the signing key {} is not the invocation's issuer {}",
                self.issuer, claims.iss
            )));
        }
        sign_body(claims, &self.key)
    }

    /// The token for `call` to `target` (a provider id) at `now_ms`: sealed
    /// for the receivers of `target` this host has paired with, or signed
    /// when it knows none yet.
    pub fn seal(
        &self,
        target: &str,
        call: &Invocation<'_>,
        now_ms: u64,
    ) -> Result<SentToken, ClaimsError> {
        let claims = self.claims(call, now_ms, None);
        if let Some(sent) = self.seal_claims(target, &claims) {
            return Ok(sent);
        }
        let signed = InvocationClaims {
            hk: Some(self.session.public_key().to_owned()),
            ..claims
        };
        Ok(SentToken {
            token: self.sign_claims(&signed)?,
            sealed: false,
        })
    }

    /// Seals `claims` as they are, or `None` if this host has paired with
    /// no receiver of `target`. [`InvocationSigner::seal`] is the way to
    /// seal a call; this exists to pin the format in tests.
    pub fn seal_claims(&self, target: &str, claims: &InvocationClaims) -> Option<SentToken> {
        let json = serde_json::to_vec(claims).ok()?;
        let signed_part = format!(
            "{}.{}.{}",
            pairing::SEALED_PREFIX,
            self.session.public_key(),
            B64.encode(json)
        );
        let tags = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tags(target, &signed_part)?;
        Some(SentToken {
            token: format!("{signed_part}.{tags}"),
            sealed: true,
        })
    }

    /// The call `sent` carried, signed with the cluster key: what to send
    /// again when a receiver could not check its seal. It keeps the sealed
    /// call's id and time, so that a receiver that did act on the sealed
    /// call (and a forged introduction asked for the retry) refuses it as a
    /// replay instead of acting twice.
    pub fn resign(&self, sent: &SentToken) -> Result<SentToken, ClaimsError> {
        let claims: InvocationClaims = Sealed::parse(&sent.token)
            .and_then(Result::ok)
            .and_then(|sealed| B64.decode(sealed.claims).ok())
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| {
                ClaimsError::MalformedToken("the token to sign again is not sealed".into())
            })?;
        let claims = InvocationClaims {
            hk: Some(self.session.public_key().to_owned()),
            ..claims
        };
        Ok(SentToken {
            token: self.sign_claims(&claims)?,
            sealed: false,
        })
    }

    /// Takes in the reply to a call sent to `target` with `sent`, whose
    /// `trellis-invocation-peer` header was `introduction`: pairs with the
    /// receiver it introduces, if new. Returns whether the call must be sent
    /// again, with [`InvocationSigner::resign`], because it was sealed and
    /// the receiver could not check the seal (it only introduces itself then).
    /// Sealing the retry would not do: the receiver may know nothing of this
    /// host yet.
    pub fn answered(&self, target: &str, sent: &SentToken, introduction: Option<&str>) -> bool {
        let Some(peer) = introduction.map(str::trim) else {
            return false;
        };
        let known = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .knows(target, peer);
        // A key that does not agree is ignored: the host keeps signing
        // calls that reach whoever sent it.
        if !known && let Ok(key) = self.session.agree(peer, true) {
            self.peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .learn(target, peer, key);
        }
        sent.sealed
    }
}

/// A call a receiver accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// What the token says.
    pub claims: InvocationClaims,
    /// Whether it was sealed for this receiver (else it was signed).
    pub sealed: bool,
}

/// Checks calls against the lattice's cluster issuers and the hosts it has
/// paired with, and remembers the ids it accepted for as long as the window
/// lasts. Safe to share between tasks.
pub struct InvocationVerifier {
    issuers: HashMap<String, KeyPair>,
    window_ms: u64,
    seen: Mutex<ReplayCache>,
    session: Session,
    pairings: Mutex<Pairings>,
}

impl fmt::Debug for InvocationVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationVerifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("window_ms", &self.window_ms)
            .field("peer_key", &self.session.public_key())
            .finish_non_exhaustive()
    }
}

impl InvocationVerifier {
    /// Trusts `issuers` (public cluster keys, `C…`) for calls sent at most
    /// `window` ago, remembering up to [`DEFAULT_REPLAY_CAPACITY`] ids and
    /// [`pairing::DEFAULT_PAIRING_CAPACITY`] hosts. Its X25519 key is new.
    pub fn new(issuers: &[String], window: Duration) -> Result<Self, ClaimsError> {
        if issuers.is_empty() {
            return Err(ClaimsError::InvalidKey(
                "no cluster issuers: a receiver that trusts no host accepts no call".into(),
            ));
        }
        let mut keys = HashMap::new();
        for issuer in issuers {
            let issuer = issuer.trim();
            KeyKind::Cluster.check_public("a cluster issuer", issuer)?;
            let key = KeyPair::from_public_key(issuer)
                .map_err(|e| ClaimsError::InvalidKey(format!("cluster issuer `{issuer}`: {e}")))?;
            keys.insert(issuer.to_owned(), key);
        }
        Ok(InvocationVerifier {
            issuers: keys,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            seen: Mutex::new(ReplayCache::new(DEFAULT_REPLAY_CAPACITY)),
            session: Session::generate(),
            pairings: Mutex::new(Pairings::new(pairing::DEFAULT_PAIRING_CAPACITY)),
        })
    }

    /// The same verifier remembering at most `capacity` ids (at least one).
    pub fn with_replay_capacity(mut self, capacity: usize) -> Self {
        self.seen = Mutex::new(ReplayCache::new(capacity.max(1)));
        self
    }

    /// The same verifier staying paired with at most `capacity` hosts.
    pub fn with_pairing_capacity(mut self, capacity: usize) -> Self {
        self.pairings = Mutex::new(Pairings::new(capacity));
        self
    }

    /// The same verifier with a given X25519 secret, to pin the format in
    /// tests.
    pub fn with_peer_secret(mut self, secret: [u8; 32]) -> Self {
        self.session = Session::from_secret(secret);
        self
    }

    /// This receiver's X25519 public key, base64url.
    pub fn peer_key(&self) -> &str {
        self.session.public_key()
    }

    /// The introduction to put in the reply to a call whose check came out
    /// as `outcome`: this receiver's key, when the call was not sealed for
    /// it, so that the host pairs with it (and sends a refused sealed call
    /// again, signed).
    pub fn introduction(&self, outcome: &Result<Accepted, InvocationError>) -> Option<&str> {
        match outcome {
            Ok(Accepted { sealed: false, .. }) | Err(InvocationError::Unpaired { .. }) => {
                Some(self.session.public_key())
            }
            _ => None,
        }
    }

    /// Accepts `call` if `token` proves it, at time `now_ms`, and returns
    /// what the token says; a call accepted once is refused the next time.
    pub fn verify(
        &self,
        token: Option<&str>,
        call: &Invocation<'_>,
        now_ms: u64,
    ) -> Result<Accepted, InvocationError> {
        let token = token.ok_or(InvocationError::Missing)?.trim();
        match Sealed::parse(token) {
            Some(sealed) => {
                let sealed = sealed.map_err(InvocationError::Malformed)?;
                self.verify_sealed(&sealed, call, now_ms)
            }
            None => self.verify_signed(token, call, now_ms),
        }
    }

    fn verify_signed(
        &self,
        token: &str,
        call: &Invocation<'_>,
        now_ms: u64,
    ) -> Result<Accepted, InvocationError> {
        let (claims, signing_input, signature) = split_body::<InvocationClaims>(token)
            .map_err(|e| InvocationError::Malformed(e.to_string()))?;
        let key = self
            .issuers
            .get(&claims.iss)
            .ok_or_else(|| InvocationError::UnknownIssuer {
                issuer: claims.iss.clone(),
            })?;
        key.verify(signing_input.as_bytes(), &signature)
            .map_err(|_| InvocationError::BadSignature {
                issuer: claims.iss.clone(),
            })?;
        self.check_call(&claims, call, now_ms)?;
        if let Some(hk) = &claims.hk {
            self.pair(hk, &claims)?;
        }
        Ok(Accepted {
            claims,
            sealed: false,
        })
    }

    /// Pairs with the host whose signed token named `hk`, unless already.
    fn pair(&self, hk: &str, claims: &InvocationClaims) -> Result<(), InvocationError> {
        let lock = || self.pairings.lock().unwrap_or_else(|p| p.into_inner());
        let current = lock()
            .get(hk)
            .is_some_and(|p| p.issuer == claims.iss && p.host == claims.host);
        if current {
            return Ok(());
        }
        let key = self
            .session
            .agree(hk, false)
            .map_err(|e| InvocationError::Malformed(format!("the host key `hk`: {e}")))?;
        lock().insert(
            hk,
            Pairing {
                key,
                issuer: claims.iss.clone(),
                host: claims.host.clone(),
            },
        );
        Ok(())
    }

    fn verify_sealed(
        &self,
        sealed: &Sealed<'_>,
        call: &Invocation<'_>,
        now_ms: u64,
    ) -> Result<Accepted, InvocationError> {
        let unpaired = || InvocationError::Unpaired {
            host_key: sealed.host_key.to_owned(),
        };
        let pairing = self
            .pairings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sealed.host_key)
            .cloned()
            .ok_or_else(unpaired)?;
        let tag = sealed.tag_for(self.session.id()).ok_or_else(unpaired)?;
        if !pairing::tag_matches(&pairing.key, sealed.signed_part, tag) {
            return Err(InvocationError::BadSeal { host: pairing.host });
        }
        let claims: InvocationClaims = B64
            .decode(sealed.claims)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| {
                InvocationError::Malformed("the sealed claims are not base64url JSON".into())
            })?;
        check_field("issuer", &pairing.issuer, &claims.iss)?;
        check_field("host", &pairing.host, &claims.host)?;
        self.check_call(&claims, call, now_ms)?;
        Ok(Accepted {
            claims,
            sealed: true,
        })
    }

    /// Checks the bound fields, the time and the id of a proven token.
    fn check_call(
        &self,
        claims: &InvocationClaims,
        call: &Invocation<'_>,
        now_ms: u64,
    ) -> Result<(), InvocationError> {
        self.check_time(claims.iat_ms, now_ms)?;
        check_field("subject", &claims.target, call.subject)?;
        check_field("source", &claims.sub, call.source_id)?;
        check_field("link", &claims.link, call.link_name)?;
        check_field("body hash", &claims.hash, &body_hash(call.body))?;
        let id = u128::from_str_radix(&claims.jti, 16)
            .ok()
            .filter(|_| claims.jti.len() == 32)
            .ok_or_else(|| {
                InvocationError::Malformed(format!("`jti` `{}` is not 32 hex digits", claims.jti))
            })?;
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(id, claims.iat_ms, now_ms, self.window_ms)
            .map_err(|refusal| match refusal {
                Refusal::Seen => InvocationError::Replayed {
                    jti: claims.jti.clone(),
                },
                Refusal::Forgotten { capacity } => InvocationError::Unprovable {
                    jti: claims.jti.clone(),
                    capacity,
                },
            })
    }

    fn check_time(&self, iat_ms: u64, now_ms: u64) -> Result<(), InvocationError> {
        let (age_ms, when) = if iat_ms <= now_ms {
            (now_ms - iat_ms, "ago")
        } else {
            (iat_ms - now_ms, "in the future")
        };
        if age_ms > self.window_ms {
            return Err(InvocationError::Stale {
                age_ms,
                when,
                window_ms: self.window_ms,
            });
        }
        Ok(())
    }
}

fn check_field(field: &'static str, signed: &str, received: &str) -> Result<(), InvocationError> {
    if signed == received {
        return Ok(());
    }
    Err(InvocationError::Altered {
        field,
        signed: signed.to_owned(),
        received: received.to_owned(),
    })
}

enum Refusal {
    Seen,
    Forgotten { capacity: usize },
}

/// The ids of accepted calls still inside the window, oldest first.
///
/// When more calls arrive within one window than the cache holds, the
/// oldest ids are dropped, and from then on every call signed no later than
/// a dropped one is refused: it might be a replay the cache no longer
/// knows. Fresh calls are unaffected; the cache only narrows the window.
struct ReplayCache {
    seen: HashSet<u128>,
    order: VecDeque<(u64, u128)>,
    capacity: usize,
    floor_ms: Option<u64>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        ReplayCache {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
            floor_ms: None,
        }
    }

    fn admit(&mut self, id: u128, iat_ms: u64, now_ms: u64, window_ms: u64) -> Result<(), Refusal> {
        // Calls older than the window are refused before they get here, so
        // their ids need not be remembered.
        while let Some(&(iat, old)) = self.order.front() {
            if iat.saturating_add(window_ms) >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.floor_ms.is_some_and(|floor| iat_ms <= floor) {
            return Err(Refusal::Forgotten {
                capacity: self.capacity,
            });
        }
        if !self.seen.insert(id) {
            return Err(Refusal::Seen);
        }
        self.order.push_back((iat_ms, id));
        if self.order.len() > self.capacity
            && let Some((iat, old)) = self.order.pop_front()
        {
            self.seen.remove(&old);
            self.floor_ms = Some(self.floor_ms.map_or(iat, |floor| floor.max(iat)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const WINDOW: Duration = Duration::from_secs(30);

    fn call(body: &[u8]) -> Invocation<'_> {
        Invocation {
            subject: "default.kv.rpc.wasi.keyvalue.atomics.increment",
            source_id: "counter",
            link_name: "default",
            body,
        }
    }

    fn pair() -> (InvocationSigner, InvocationVerifier) {
        let key = KeyKind::Cluster.generate();
        let issuers = vec![key.public_key()];
        (
            InvocationSigner::new(key, "NHOST").unwrap(),
            InvocationVerifier::new(&issuers, WINDOW).unwrap(),
        )
    }

    #[test]
    fn a_signed_call_is_accepted_once() {
        let (signer, verifier) = pair();
        let token = signer.sign(&call(b"body"), T0).unwrap();
        let claims = verifier
            .verify(Some(&token), &call(b"body"), T0 + 5)
            .unwrap()
            .claims;
        assert_eq!(claims.sub, "counter");
        assert_eq!(claims.host, "NHOST");
        assert_eq!(claims.iss, signer.issuer());
        assert!(matches!(
            verifier.verify(Some(&token), &call(b"body"), T0 + 6),
            Err(InvocationError::Replayed { .. })
        ));
    }

    #[test]
    fn a_call_without_a_token_or_with_garbage_is_refused() {
        let (_, verifier) = pair();
        assert_eq!(
            verifier.verify(None, &call(b""), T0),
            Err(InvocationError::Missing)
        );
        assert!(matches!(
            verifier.verify(Some("not.a.jwt"), &call(b""), T0),
            Err(InvocationError::Malformed(_))
        ));
    }

    #[test]
    fn every_bound_field_is_checked() {
        let (signer, verifier) = pair();
        let signed = call(b"increment by 1");
        let token = signer.sign(&signed, T0).unwrap();
        let altered = [
            (
                "subject",
                Invocation {
                    subject: "default.other.rpc.wasi.keyvalue.atomics.increment",
                    ..signed
                },
            ),
            (
                "source",
                Invocation {
                    source_id: "victim",
                    ..signed
                },
            ),
            (
                "link",
                Invocation {
                    link_name: "cache",
                    ..signed
                },
            ),
            (
                "body hash",
                Invocation {
                    body: b"increment by 1000000",
                    ..signed
                },
            ),
        ];
        for (field, call) in altered {
            match verifier.verify(Some(&token), &call, T0) {
                Err(InvocationError::Altered { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // Refusals are not remembered: the genuine call still goes through.
        assert!(verifier.verify(Some(&token), &signed, T0).is_ok());
    }

    #[test]
    fn a_foreign_cluster_or_a_tampered_signature_is_refused() {
        let (_, verifier) = pair();
        let foreign = InvocationSigner::new(KeyKind::Cluster.generate(), "NX").unwrap();
        let token = foreign.sign(&call(b""), T0).unwrap();
        assert!(matches!(
            verifier.verify(Some(&token), &call(b""), T0),
            Err(InvocationError::UnknownIssuer { .. })
        ));

        // A genuine token whose claims were edited, or whose signature was
        // made by another key, does not verify.
        let (signer, verifier) = pair();
        let genuine = signer.sign(&call(b""), T0).unwrap();
        let (head, signature) = genuine.rsplit_once('.').unwrap();
        let (_, foreign_signature) = token.rsplit_once('.').unwrap();
        let (header, _) = head.split_once('.').unwrap();
        let mut claims: InvocationClaims = split_body(&genuine).unwrap().0;
        claims.sub = "victim".into();
        let edited = B64.encode(serde_json::to_vec(&claims).unwrap());
        for forged in [
            format!("{head}.{foreign_signature}"),
            format!("{header}.{edited}.{signature}"),
        ] {
            let as_victim = Invocation {
                source_id: "victim",
                ..call(b"")
            };
            assert!(matches!(
                verifier.verify(Some(&forged), &as_victim, T0),
                Err(InvocationError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn calls_outside_the_window_are_stale() {
        let (signer, verifier) = pair();
        let window = u64::try_from(WINDOW.as_millis()).unwrap();
        let old = signer.sign(&call(b""), T0).unwrap();
        assert!(matches!(
            verifier.verify(Some(&old), &call(b""), T0 + window + 1),
            Err(InvocationError::Stale { when: "ago", .. })
        ));
        let future = signer.sign(&call(b""), T0 + window + 1).unwrap();
        assert!(matches!(
            verifier.verify(Some(&future), &call(b""), T0),
            Err(InvocationError::Stale {
                when: "in the future",
                ..
            })
        ));
        let edge = signer.sign(&call(b""), T0).unwrap();
        assert!(
            verifier
                .verify(Some(&edge), &call(b""), T0 + window)
                .is_ok()
        );
    }

    #[test]
    fn an_overflowing_replay_cache_narrows_the_window_but_never_admits_a_replay() {
        let (signer, verifier) = pair();
        let verifier = verifier.with_replay_capacity(2);
        let tokens: Vec<String> = (0..3)
            .map(|i| signer.sign(&call(b""), T0 + i).unwrap())
            .collect();
        for token in &tokens {
            verifier.verify(Some(token), &call(b""), T0 + 10).unwrap();
        }
        // The first id was dropped to make room, so its replay is refused
        // as unprovable rather than let through.
        assert!(matches!(
            verifier.verify(Some(&tokens[0]), &call(b""), T0 + 11),
            Err(InvocationError::Unprovable { capacity: 2, .. })
        ));
        assert!(matches!(
            verifier.verify(Some(&tokens[2]), &call(b""), T0 + 11),
            Err(InvocationError::Replayed { .. })
        ));
        let fresh = signer.sign(&call(b""), T0 + 12).unwrap();
        assert!(verifier.verify(Some(&fresh), &call(b""), T0 + 12).is_ok());
    }

    #[test]
    fn ids_are_forgotten_once_the_window_has_passed() {
        let (signer, verifier) = pair();
        let window = u64::try_from(WINDOW.as_millis()).unwrap();
        for i in 0..100 {
            let token = signer.sign(&call(b""), T0 + i).unwrap();
            verifier.verify(Some(&token), &call(b""), T0 + i).unwrap();
        }
        let later = T0 + 200 + window;
        let token = signer.sign(&call(b""), later).unwrap();
        verifier.verify(Some(&token), &call(b""), later).unwrap();
        let cache = verifier.seen.lock().unwrap();
        assert_eq!(cache.order.len(), 1);
        assert_eq!(cache.seen.len(), 1);
    }

    /// Sends `call` to target `kv` as a host would: sealed if it can,
    /// signed again if the receiver asks; returns how it was accepted.
    fn send(
        signer: &InvocationSigner,
        receiver: &InvocationVerifier,
        call: &Invocation<'_>,
        now: u64,
    ) -> Result<Accepted, InvocationError> {
        let sent = signer.seal("kv", call, now).unwrap();
        let outcome = receiver.verify(Some(&sent.token), call, now);
        if signer.answered("kv", &sent, receiver.introduction(&outcome)) {
            let again = signer.resign(&sent).unwrap();
            let outcome = receiver.verify(Some(&again.token), call, now);
            assert!(!signer.answered("kv", &again, receiver.introduction(&outcome)));
            return outcome;
        }
        outcome
    }

    #[test]
    fn after_one_signed_call_a_host_seals_its_calls_and_they_are_checked_alike() {
        let (signer, verifier) = pair();
        let first = send(&signer, &verifier, &call(b"1"), T0).unwrap();
        assert!(!first.sealed);
        assert_eq!(first.claims.hk.as_deref(), Some(signer.host_key()));
        let sent = signer.seal("kv", &call(b"2"), T0).unwrap();
        assert!(sent.sealed);
        let accepted = verifier.verify(Some(&sent.token), &call(b"2"), T0).unwrap();
        assert!(accepted.sealed);
        assert_eq!(accepted.claims.host, "NHOST");
        assert_eq!(accepted.claims.iss, signer.issuer());
        assert!(verifier.introduction(&Ok(accepted)).is_none());
        // Replays, alterations and a stale seal are refused as for signatures.
        assert!(matches!(
            verifier.verify(Some(&sent.token), &call(b"2"), T0),
            Err(InvocationError::Replayed { .. })
        ));
        let next = signer.seal("kv", &call(b"3"), T0).unwrap();
        assert!(matches!(
            verifier.verify(Some(&next.token), &call(b"4"), T0),
            Err(InvocationError::Altered {
                field: "body hash",
                ..
            })
        ));
        let window = u64::try_from(WINDOW.as_millis()).unwrap();
        assert!(matches!(
            verifier.verify(Some(&next.token), &call(b"3"), T0 + window + 1),
            Err(InvocationError::Stale { .. })
        ));
    }

    #[test]
    fn a_seal_whose_claims_or_tag_were_edited_does_not_verify() {
        let (signer, verifier) = pair();
        send(&signer, &verifier, &call(b""), T0).unwrap();
        let sent = signer.seal("kv", &call(b""), T0).unwrap();
        let (signed_part, tags) = sent.token.rsplit_once('.').unwrap();
        let (head, claims) = signed_part.rsplit_once('.').unwrap();
        let mut edited: InvocationClaims =
            serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
        edited.sub = "victim".into();
        let edited = B64.encode(serde_json::to_vec(&edited).unwrap());
        let (id, tag) = tags.split_once(':').unwrap();
        let flipped = if tag.starts_with('A') { "B" } else { "A" };
        for forged in [
            format!("{head}.{edited}.{tags}"),
            format!("{signed_part}.{id}:{flipped}{}", &tag[1..]),
        ] {
            let as_victim = Invocation {
                source_id: "victim",
                ..call(b"")
            };
            for c in [as_victim, call(b"")] {
                assert!(matches!(
                    verifier.verify(Some(&forged), &c, T0),
                    Err(InvocationError::BadSeal { .. })
                ));
            }
        }
        assert!(verifier.verify(Some(&sent.token), &call(b""), T0).is_ok());
    }

    #[test]
    fn a_seal_binds_the_host_that_paired() {
        // Another host that got hold of this host's X25519 secret (and the
        // cluster key, to pair at all) still cannot seal as a third host.
        let key = KeyKind::Cluster.generate();
        let seed = key.seed().unwrap();
        let issuers = vec![key.public_key()];
        let verifier = InvocationVerifier::new(&issuers, WINDOW).unwrap();
        let blue = InvocationSigner::with_host_secret(key, "NBLUE", [9; 32]).unwrap();
        send(&blue, &verifier, &call(b""), T0).unwrap();
        let green = InvocationSigner::with_host_secret(
            KeyPair::from_seed(&seed).unwrap(),
            "NGREEN",
            [9; 32],
        )
        .unwrap();
        let introduction = Some(verifier.peer_key());
        let signed = SentToken {
            token: String::new(),
            sealed: false,
        };
        green.answered("kv", &signed, introduction);
        let sent = green.seal("kv", &call(b""), T0).unwrap();
        assert!(sent.sealed);
        assert!(matches!(
            verifier.verify(Some(&sent.token), &call(b""), T0),
            Err(InvocationError::Altered { field: "host", .. })
        ));
    }

    #[test]
    fn a_receiver_the_host_has_not_paired_with_asks_for_a_signed_call() {
        let (signer, a) = pair();
        let issuers = vec![signer.issuer().to_owned()];
        let b = InvocationVerifier::new(&issuers, WINDOW).unwrap();
        send(&signer, &a, &call(b"1"), T0).unwrap();
        // The same target's other instance gets a seal it cannot check...
        let sealed = signer.seal("kv", &call(b"2"), T0).unwrap();
        let outcome = b.verify(Some(&sealed.token), &call(b"2"), T0);
        assert!(matches!(outcome, Err(InvocationError::Unpaired { .. })));
        assert_eq!(b.introduction(&outcome), Some(b.peer_key()));
        assert!(signer.answered("kv", &sealed, b.introduction(&outcome)));
        // ...and is paired by the signed retry, after which both check seals.
        let retry = signer.resign(&sealed).unwrap();
        let retried = b.verify(Some(&retry.token), &call(b"2"), T0);
        assert!(!signer.answered("kv", &retry, b.introduction(&retried)));
        assert!(matches!(retried, Ok(Accepted { sealed: false, .. })));
        for (i, receiver) in [&a, &b].into_iter().enumerate() {
            let body = [b'3' + u8::try_from(i).unwrap()];
            let sent = signer.seal("kv", &call(&body), T0).unwrap();
            assert_eq!(sent.token.matches(':').count(), 2);
            assert!(
                receiver
                    .verify(Some(&sent.token), &call(&body), T0)
                    .unwrap()
                    .sealed
            );
        }
        // A receiver that restarted (a new key) is paired again the same way.
        let restarted = InvocationVerifier::new(&issuers, WINDOW).unwrap();
        assert!(!send(&signer, &restarted, &call(b"5"), T0).unwrap().sealed);
        assert!(send(&signer, &restarted, &call(b"6"), T0).unwrap().sealed);
    }

    #[test]
    fn a_forged_introduction_cannot_make_a_receiver_act_twice() {
        let (signer, verifier) = pair();
        send(&signer, &verifier, &call(b"1"), T0).unwrap();
        let sent = signer.seal("kv", &call(b"2"), T0).unwrap();
        assert!(
            verifier
                .verify(Some(&sent.token), &call(b"2"), T0)
                .unwrap()
                .sealed
        );
        // Someone answers the host first, claiming to be an unpaired
        // receiver: the host signs the call again, with the same id.
        let stranger = InvocationVerifier::new(&[signer.issuer().to_owned()], WINDOW).unwrap();
        assert!(signer.answered("kv", &sent, Some(stranger.peer_key())));
        let again = signer.resign(&sent).unwrap();
        assert!(matches!(
            verifier.verify(Some(&again.token), &call(b"2"), T0),
            Err(InvocationError::Replayed { .. })
        ));
        // Only a sealed token can be signed again.
        assert!(signer.resign(&again).is_err());
    }

    #[test]
    fn only_a_trusted_signature_pairs_a_host() {
        let (_, verifier) = pair();
        let stranger = InvocationSigner::new(KeyKind::Cluster.generate(), "NX").unwrap();
        let sent = stranger.seal("kv", &call(b""), T0).unwrap();
        let outcome = verifier.verify(Some(&sent.token), &call(b""), T0);
        assert!(matches!(
            outcome,
            Err(InvocationError::UnknownIssuer { .. })
        ));
        assert!(verifier.introduction(&outcome).is_none());
        // Even knowing the receiver's key, its seals are not accepted.
        stranger.answered("kv", &sent, Some(verifier.peer_key()));
        let sealed = stranger.seal("kv", &call(b""), T0).unwrap();
        assert!(sealed.sealed);
        assert!(matches!(
            verifier.verify(Some(&sealed.token), &call(b""), T0),
            Err(InvocationError::Unpaired { .. })
        ));
        assert_eq!(verifier.pairings.lock().unwrap().len(), 0);
    }

    #[test]
    fn keys_of_the_wrong_kind_are_refused() {
        assert!(InvocationSigner::new(KeyKind::Account.generate(), "N").is_err());
        let account = KeyKind::Account.generate().public_key();
        assert!(InvocationVerifier::new(&[account], WINDOW).is_err());
        assert!(InvocationVerifier::new(&[], WINDOW).is_err());
    }

    #[test]
    fn debug_output_never_holds_the_seed() {
        let key = KeyKind::Cluster.generate();
        let seed = key.seed().unwrap();
        let signer = InvocationSigner::new(key, "N").unwrap();
        assert!(!format!("{signer:?}").contains(&seed));
    }
}
