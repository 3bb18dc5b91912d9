//! Payloads larger than one NATS message: they cross in chunks, pulled by
//! the receiver.
//!
//! NATS refuses a message over the server's `max_payload` (1 MiB unless
//! configured) and drops the connection that sent it. So a sender whose
//! payload (a call's parameters, or a reply) would not fit leaves it out
//! and *offers* it instead:
//! - it subscribes to a fresh inbox subject and sends the message with an
//!   empty payload and three headers: [`BODY_HEADER`] (that subject),
//!   [`BODY_SIZE_HEADER`] (the payload's length in bytes) and
//!   [`BODY_CHUNK_HEADER`] (the length of every chunk but the last);
//! - the receiver checks the size against its limit, then pulls: a request
//!   to the subject whose [`CHUNK_HEADER`] is the chunk's number (from 0),
//!   answered by that chunk's bytes with the same header. It keeps at most
//!   a window of pulls in flight, which is the flow control: a sender
//!   never has more than that many chunks on the wire, and a slow receiver
//!   slows it down;
//! - a receiver that gives up sends a pull whose [`CHUNK_HEADER`] is
//!   [`CANCEL`]; a sender that cannot serve a pull answers with
//!   [`CHUNK_ERROR_HEADER`] and the reason.
//!
//! An HTTP body is *streamed* instead ([`StreamOffer`]): the call (or
//! reply) travels at once with [`STREAM_HEADER`] and [`STREAM_CHUNK_HEADER`],
//! and the body's chunks are pulled the same way as the receiver reads
//! them, while the sender is still producing them; their length is not
//! known in advance, and the last carries [`LAST_CHUNK_HEADER`]. Neither
//! side holds more than its window of chunks.
//!
//! If the sender dies mid-stream, its inbox goes away and the next pull
//! finds no responders: the receiver fails at once, naming the sender. If
//! the receiver dies, the sender hears no pull for [`ChunkLimits::idle`] and
//! lets the payload go. Each chunk leaves [`HEADROOM`] bytes of the max
//! payload for headers, so no message of the protocol is ever oversized.

use std::time::Duration;

use thiserror::Error;

/// On a message whose payload is offered: the subject to pull it from.
pub const BODY_HEADER: &str = "trellis-body";
/// On a message whose payload is offered: its length in bytes.
pub const BODY_SIZE_HEADER: &str = "trellis-body-size";
/// On a message whose payload is offered: the length of each chunk (the
/// last may be shorter).
pub const BODY_CHUNK_HEADER: &str = "trellis-body-chunk";
/// On a pull and on the chunk that answers it: the chunk's number.
pub const CHUNK_HEADER: &str = "trellis-chunk";
/// On the answer to a pull the sender cannot serve: why.
pub const CHUNK_ERROR_HEADER: &str = "trellis-chunk-error";
/// The [`CHUNK_HEADER`] of a pull that ends the stream early.
pub const CANCEL: &str = "cancel";

/// On a call or reply whose HTTP body streams: the subject to pull it from.
pub const STREAM_HEADER: &str = "trellis-stream";
/// On a call or reply whose HTTP body streams: the most bytes in one chunk.
pub const STREAM_CHUNK_HEADER: &str = "trellis-stream-chunk";
/// On the last chunk of a streamed body.
pub const LAST_CHUNK_HEADER: &str = "trellis-chunk-last";

/// Bytes of a message's max payload that a chunk leaves for headers.
pub const HEADROOM: usize = 16 * 1024;

/// The largest payload a lattice accepts unless configured otherwise
/// (`--max-body-mib`): 100 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;

/// How many pulls a receiver keeps in flight unless configured otherwise.
pub const DEFAULT_WINDOW: usize = 4;

/// How long either side waits for the other before giving up on a stream,
/// unless configured otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// The bounds of one side of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// The largest payload sent or accepted, in bytes.
    pub max_body: u64,
    /// How many pulls a receiver keeps in flight.
    pub window: usize,
    /// How long a side waits for the other.
    pub idle: Duration,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_body: DEFAULT_MAX_BODY_BYTES,
            window: DEFAULT_WINDOW,
            idle: DEFAULT_IDLE,
        }
    }
}

/// Why a payload could not cross. Each message names the side at fault and
/// the setting involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// The payload is over the limit.
    #[error(
        "the payload is {size} bytes, over the {limit}-byte limit (raise --max-body-mib on the \
         hosts if larger payloads are expected)"
    )]
    TooLarge {
        /// Its length.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The offer's headers do not describe a transfer.
    #[error("the payload offer is malformed: {0}")]
    Malformed(String),
    /// A chunk arrived out of order, or of the wrong length.
    #[error("chunk {seq} of the payload is wrong: {why}")]
    BadChunk {
        /// The chunk's number.
        seq: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The sender went away (its subject has no responders any more), did
    /// not answer in time, or said it cannot go on.
    #[error("the payload's sender stopped mid-stream at chunk {seq}: {why}")]
    Interrupted {
        /// The chunk that was not delivered.
        seq: u64,
        /// What happened.
        why: String,
    },
    /// Subscribing or publishing failed.
    #[error("cannot move the payload over NATS: {0}")]
    Nats(String),
}

impl From<ChunkError> for crate::rpc::RpcError {
    fn from(err: ChunkError) -> Self {
        use crate::rpc::RpcErrorKind;
        let kind = match &err {
            ChunkError::TooLarge { .. } => RpcErrorKind::Refused,
            ChunkError::Interrupted { .. } => RpcErrorKind::Timeout,
            ChunkError::Malformed(_) | ChunkError::BadChunk { .. } => RpcErrorKind::Codec,
            ChunkError::Nats(_) => RpcErrorKind::NoTarget,
        };
        crate::rpc::RpcError::new(kind, err.to_string())
    }
}

/// An offered payload, as its message's headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where to pull it from.
    pub subject: String,
    /// Its length in bytes.
    pub size: u64,
    /// The length of every chunk but the last.
    pub chunk: u64,
}

impl Offer {
    /// The headers that announce the offer.
    pub fn to_pairs(&self) -> [(&'static str, String); 3] {
        [
            (BODY_HEADER, self.subject.clone()),
            (BODY_SIZE_HEADER, self.size.to_string()),
            (BODY_CHUNK_HEADER, self.chunk.to_string()),
        ]
    }

    /// Reads an offer through `get` (a header lookup): `None` when the
    /// message carries its payload itself.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Result<Self, ChunkError>> {
        let subject = get(BODY_HEADER)?;
        let number = |name: &str| -> Result<u64, ChunkError> {
            let value = get(name).ok_or_else(|| {
                ChunkError::Malformed(format!("`{BODY_HEADER}` comes without `{name}`"))
            })?;
            value.trim().parse().map_err(|_| {
                ChunkError::Malformed(format!("`{name}` is `{value}`, not a number of bytes"))
            })
        };
        Some((|| {
            let size = number(BODY_SIZE_HEADER)?;
            let chunk = number(BODY_CHUNK_HEADER)?;
            if subject.trim().is_empty() || subject.contains(char::is_whitespace) {
                return Err(ChunkError::Malformed(format!(
                    "`{BODY_HEADER}` is `{subject}`, not a subject"
                )));
            }
            if chunk == 0 || size == 0 {
                return Err(ChunkError::Malformed(
                    "an offered payload and its chunks are never empty".into(),
                ));
            }
            Ok(Offer {
                subject,
                size,
                chunk,
            })
        })())
    }

    /// How many chunks the payload has.
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(self.chunk)
    }

    /// The length of chunk `seq`, or `None` past the end.
    pub fn chunk_len(&self, seq: u64) -> Option<u64> {
        let start = seq.checked_mul(self.chunk)?;
        (start < self.size).then(|| self.chunk.min(self.size - start))
    }
}

/// A body offered as it is produced, of a length not known in advance (an
/// HTTP body): chunks of at most [`StreamOffer::chunk`] bytes are pulled in
/// order, as with an [`Offer`], until one carries [`LAST_CHUNK_HEADER`].
/// The call or reply it belongs to travels on its own, so the body's
/// receiver can start on it before the body has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOffer {
    /// Where to pull it from.
    pub subject: String,
    /// The most bytes in one chunk.
    pub chunk: u64,
}

impl StreamOffer {
    /// The headers that announce the stream.
    pub fn to_pairs(&self) -> [(&'static str, String); 2] {
        [
            (STREAM_HEADER, self.subject.clone()),
            (STREAM_CHUNK_HEADER, self.chunk.to_string()),
        ]
    }

    /// Reads a stream offer through `get`: `None` when there is none.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Result<Self, ChunkError>> {
        let subject = get(STREAM_HEADER)?;
        let chunk = get(STREAM_CHUNK_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0);
        Some(match chunk {
            Some(chunk) if !subject.trim().is_empty() && !subject.contains(char::is_whitespace) => {
                Ok(StreamOffer { subject, chunk })
            }
            _ => Err(ChunkError::Malformed(format!(
                "`{STREAM_HEADER}` `{subject}` needs a subject and a positive `{STREAM_CHUNK_HEADER}`"
            ))),
        })
    }
}

/// What a pull asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// Chunk number `n`.
    Chunk(u64),
    /// Nothing more: the receiver gave up.
    Cancel,
}

impl Pull {
    /// The pull's [`CHUNK_HEADER`] value.
    pub fn header(self) -> String {
        match self {
            Pull::Chunk(n) => n.to_string(),
            Pull::Cancel => CANCEL.to_owned(),
        }
    }

    /// Reads a pull's [`CHUNK_HEADER`] value.
    pub fn parse(value: &str) -> Result<Self, ChunkError> {
        let value = value.trim();
        if value == CANCEL {
            return Ok(Pull::Cancel);
        }
        value
            .parse()
            .map(Pull::Chunk)
            .map_err(|_| ChunkError::Malformed(format!("a pull for chunk `{value}`")))
    }
}

/// Puts a payload back together from its chunks, in order, checking each
/// against the offer. Pure, so every way a chunk can be wrong is tested
/// without a server.
#[derive(Debug)]
pub struct Reassembler {
    offer: Offer,
    next: u64,
    payload: Vec<u8>,
}

impl Reassembler {
    /// Starts on `offer`, refusing it if it is over `max_body` bytes.
    pub fn new(offer: Offer, max_body: u64) -> Result<Self, ChunkError> {
        if offer.size > max_body {
            return Err(ChunkError::TooLarge {
                size: offer.size,
                limit: max_body,
            });
        }
        // The size is the sender's word: memory grows with what arrives,
        // not with what was announced.
        let first = usize::try_from(offer.chunk.min(offer.size)).unwrap_or(usize::MAX);
        Ok(Reassembler {
            offer,
            next: 0,
            payload: Vec::with_capacity(first),
        })
    }

    /// Takes chunk `seq`; `Ok(true)` once the payload is complete.
    pub fn accept(&mut self, seq: u64, data: &[u8]) -> Result<bool, ChunkError> {
        let bad = |why: String| ChunkError::BadChunk { seq, why };
        if seq != self.next {
            return Err(bad(format!("expected chunk {}", self.next)));
        }
        let Some(expected) = self.offer.chunk_len(seq) else {
            return Err(bad(format!(
                "the payload has only {} chunks",
                self.offer.chunks()
            )));
        };
        if data.len() as u64 != expected {
            return Err(bad(format!(
                "{} bytes where the offer says {expected}",
                data.len()
            )));
        }
        self.payload.extend_from_slice(data);
        self.next += 1;
        Ok(self.is_complete())
    }

    /// Whether every chunk has arrived.
    pub fn is_complete(&self) -> bool {
        self.next == self.offer.chunks()
    }

    /// The number of the next chunk to take.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The payload, once complete.
    pub fn finish(self) -> Result<Vec<u8>, ChunkError> {
        if !self.is_complete() {
            return Err(ChunkError::BadChunk {
                seq: self.next,
                why: "the payload ended early".into(),
            });
        }
        Ok(self.payload)
    }
}

/// The chunk length for a server whose max payload is `max_payload`.
pub fn chunk_len_for(max_payload: usize) -> usize {
    max_payload.saturating_sub(HEADROOM).max(1024)
}

#[cfg(feature = "client")]
mod io;
#[cfg(feature = "client")]
pub use io::{broadcast, fetch, fetch_stream, fits, offer, offer_stream, payload_of, publish};

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(size: u64, chunk: u64) -> Offer {
        Offer {
            subject: "_INBOX.x".into(),
            size,
            chunk,
        }
    }

    #[test]
    fn an_offer_round_trips_through_its_headers() {
        let original = offer(2_500_000, 1_000_000);
        let pairs = original.to_pairs();
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(Offer::from_lookup(lookup).unwrap().unwrap(), original);
        assert!(Offer::from_lookup(|_| None).is_none());
        assert_eq!(original.chunks(), 3);
        assert_eq!(original.chunk_len(2), Some(500_000));
        assert_eq!(original.chunk_len(3), None);
        assert_eq!(offer(10, 5).chunks(), 2);
    }

    #[test]
    fn malformed_offers_say_what_is_wrong() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[(BODY_HEADER, "_INBOX.x")], "without `trellis-body-size`"),
            (
                &[
                    (BODY_HEADER, "_INBOX.x"),
                    (BODY_SIZE_HEADER, "lots"),
                    (BODY_CHUNK_HEADER, "1"),
                ],
                "`lots`",
            ),
            (
                &[
                    (BODY_HEADER, "_INBOX.x"),
                    (BODY_SIZE_HEADER, "10"),
                    (BODY_CHUNK_HEADER, "0"),
                ],
                "never empty",
            ),
            (
                &[
                    (BODY_HEADER, "a b"),
                    (BODY_SIZE_HEADER, "10"),
                    (BODY_CHUNK_HEADER, "1"),
                ],
                "not a subject",
            ),
        ];
        for (headers, says) in cases {
            let lookup = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            };
            let err = Offer::from_lookup(lookup).unwrap().unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn pulls_round_trip() {
        for pull in [Pull::Chunk(0), Pull::Chunk(u64::MAX), Pull::Cancel] {
            assert_eq!(Pull::parse(&pull.header()).unwrap(), pull);
        }
        assert!(Pull::parse("-1").is_err());
    }

    #[test]
    fn chunks_reassemble_in_order_and_nothing_else_is_taken() {
        let mut r = Reassembler::new(offer(5, 2), 5).unwrap();
        assert!(!r.accept(0, b"ab").unwrap());
        assert!(r.accept(0, b"ab").is_err(), "a repeated chunk");
        assert!(r.accept(2, b"e").is_err(), "a skipped chunk");
        assert!(r.accept(1, b"c").is_err(), "a short chunk");
        assert!(!r.accept(1, b"cd").unwrap());
        assert!(r.accept(2, b"ef").is_err(), "a long last chunk");
        assert!(r.accept(2, b"e").unwrap());
        assert!(r.accept(3, b"").is_err(), "past the end");
        assert_eq!(r.finish().unwrap(), b"abcde");

        let early = Reassembler::new(offer(5, 2), 5).unwrap();
        assert!(early.finish().is_err());
        assert!(matches!(
            Reassembler::new(offer(6, 2), 5),
            Err(ChunkError::TooLarge { size: 6, limit: 5 })
        ));
    }

    #[test]
    fn a_chunk_always_leaves_room_for_headers() {
        assert_eq!(chunk_len_for(1024 * 1024), 1024 * 1024 - HEADROOM);
        assert_eq!(chunk_len_for(0), 1024);
    }
}
