//! The token itself: a JWT whose header is `{"typ":"jwt","alg":"Ed25519"}`,
//! whose body is [`Claims`], and whose signature is an Ed25519 signature by
//! the issuer's nkey over `base64url(header) "." base64url(body)`. All three
//! segments are base64url without padding, as in RFC 7519.
//!
//! Decoding never trusts what it reads: [`Token::decode`] checks the shape,
//! the algorithm and the signature against the key named in `iss`, and only
//! then hands out the claims. Time and issuer checks live in
//! [`crate::Policy`].

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ClaimsError;

/// The claims revision Trellis writes; wasmCloud's wascap uses the same.
pub const WASCAP_REVISION: u32 = 3;

const ALGORITHM: &str = "Ed25519";
const TOKEN_TYPE: &str = "jwt";

/// Writers never pad; readers accept either, since other tools differ.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

/// The standard JWT claims plus the wascap metadata section `T`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// Unique id of this token.
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// The signer: an account public key (`A…`).
    pub iss: String,
    /// The subject: the component (`M…`) or provider (`V…`) public key.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What is being vouched for: component or provider metadata.
    #[serde(rename = "wascap", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<T>,
    /// Format revision of the metadata section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wascap_revision: Option<u32>,
}

impl<T> Claims<T> {
    /// New claims issued now, with a fresh `jti`.
    pub fn new(issuer: &str, subject: &str, metadata: T) -> Self {
        Claims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: now_unix(),
            iss: issuer.to_owned(),
            sub: subject.to_owned(),
            exp: None,
            nbf: None,
            metadata: Some(metadata),
            wascap_revision: Some(WASCAP_REVISION),
        }
    }
}

/// A token string together with the claims it was decoded from.
#[derive(Debug, Clone, PartialEq)]
pub struct Token<T> {
    /// The encoded JWT, exactly as stored.
    pub jwt: String,
    /// Its decoded body.
    pub claims: Claims<T>,
}

impl<T: Serialize> Token<T> {
    /// Encodes and signs `claims` with `issuer`, whose public key must be
    /// the token's `iss`.
    pub fn sign(claims: Claims<T>, issuer: &KeyPair) -> Result<Self, ClaimsError> {
        if issuer.public_key() != claims.iss {
            return Err(ClaimsError::InvalidKey(format!(
                "the signing key {} is not the token's issuer {}",
                issuer.public_key(),
                claims.iss
            )));
        }
        let jwt = sign_body(&claims, issuer)?;
        Ok(Token { jwt, claims })
    }
}

impl<T: DeserializeOwned> Token<T> {
    /// Parses `jwt` and verifies its signature against its own `iss`.
    pub fn decode(jwt: &str) -> Result<Self, ClaimsError> {
        let jwt = jwt.trim();
        let (claims, signing_input, signature) = split_body::<Claims<T>>(jwt)?;
        let issuer = KeyPair::from_public_key(&claims.iss)
            .map_err(|e| ClaimsError::MalformedToken(format!("`iss` is not a public key ({e})")))?;
        issuer
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| ClaimsError::BadSignature {
                issuer: claims.iss.clone(),
            })?;
        Ok(Token {
            jwt: jwt.to_owned(),
            claims,
        })
    }

    /// Parses `jwt` without checking its signature, for display only.
    pub fn decode_unverified(jwt: &str) -> Result<Claims<T>, ClaimsError> {
        split_body(jwt.trim()).map(|(claims, _, _)| claims)
    }
}

/// Encodes `body` as the claims segment of a JWT and signs it with `key`.
/// The caller has checked that `key` is the issuer the body names.
pub(crate) fn sign_body<B: Serialize>(body: &B, key: &KeyPair) -> Result<String, ClaimsError> {
    let body = B64.encode(to_json(body)?);
    let signing_input = format!("{HEADER_SEGMENT}.{body}");
    let signature = key
        .sign(signing_input.as_bytes())
        .map_err(|e| ClaimsError::InvalidKey(format!("signing failed: {e}")))?;
    Ok(format!("{signing_input}.{}", B64.encode(signature)))
}

/// `base64url({"typ":"jwt","alg":"Ed25519"})`, the header of every token
/// this crate writes (pinned by a test against [`Header`]'s encoding).
const HEADER_SEGMENT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0";

fn check_header(header: Header) -> Result<(), ClaimsError> {
    if !header.alg.eq_ignore_ascii_case(ALGORITHM) {
        return Err(ClaimsError::UnsupportedAlgorithm(header.alg));
    }
    if !header.typ.eq_ignore_ascii_case(TOKEN_TYPE) {
        return Err(ClaimsError::MalformedToken(format!(
            "header type is `{}`, expected `jwt`",
            header.typ
        )));
    }
    Ok(())
}

/// Splits a JWT into its decoded claims segment, the bytes its signature
/// covers, and the signature, checking the header on the way. Nothing is
/// verified yet: the caller knows which key must have signed.
pub(crate) fn split_body<B: DeserializeOwned>(
    jwt: &str,
) -> Result<(B, &str, Vec<u8>), ClaimsError> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::MalformedToken(
            "expected three dot-separated segments (header.claims.signature)".into(),
        ));
    };
    let signing_input = &jwt[..header.len() + 1 + body.len()];
    // Every token Trellis writes has this header; others are parsed.
    if header != HEADER_SEGMENT {
        check_header(from_segment("header", header)?)?;
    }
    let claims: B = from_segment("claims", body)?;
    let signature = B64
        .decode(signature)
        .map_err(|e| ClaimsError::MalformedToken(format!("signature is not base64url: {e}")))?;
    Ok((claims, signing_input, signature))
}

fn from_segment<D: DeserializeOwned>(what: &str, segment: &str) -> Result<D, ClaimsError> {
    let bytes = B64
        .decode(segment)
        .map_err(|e| ClaimsError::MalformedToken(format!("{what} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClaimsError::MalformedToken(format!("{what} is not the expected JSON: {e}")))
}

fn to_json<S: Serialize>(value: &S) -> Result<Vec<u8>, ClaimsError> {
    serde_json::to_vec(value).map_err(|e| ClaimsError::MalformedToken(e.to_string()))
}

/// Seconds since the Unix epoch, the unit of every time claim.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_header_segment_is_the_encoded_header() {
        let header = Header {
            typ: TOKEN_TYPE.into(),
            alg: ALGORITHM.into(),
        };
        assert_eq!(B64.encode(to_json(&header).unwrap()), HEADER_SEGMENT);
    }
}
