//! Identities and signed claims for Trellis.
//!
//! Every component and provider that runs on a Trellis lattice is vouched
//! for by an account: a JWT signed with the account's Ed25519 nkey records
//! who issued it, which component or provider it describes, and the SHA-256
//! of the code. The format is wasmCloud's *wascap* (revision 3), so artifacts
//! signed by wasmCloud tooling verify here and the other way round.
//!
//! ```
//! use trellis_claims::{KeyKind, Policy, SignOptions, sign_component, verify_component};
//!
//! let account = KeyKind::Account.generate();
//! let component = KeyKind::Component.generate();
//! # let wasm = b"\0asm\x01\0\0\0".to_vec();
//! let options = SignOptions { name: Some("hello".into()), ..Default::default() };
//! let signed = sign_component(&wasm, &account, &component.public_key(), &options)?;
//!
//! let token = verify_component(&signed, &Policy::any_issuer(), trellis_claims::now_unix())?;
//! assert_eq!(token.claims.sub, component.public_key());
//! # Ok::<(), trellis_claims::ClaimsError>(())
//! ```

mod component;
mod error;
pub mod invocation;
mod jwt;
mod keys;
mod policy;
mod provider;
pub mod wasm;

pub use component::{
    ComponentMetadata, SignOptions, component_hash, read_component_claims, sha256_hex,
    sign_component, verify_component,
};
pub use error::ClaimsError;
pub use jwt::{Claims, Token, WASCAP_REVISION, now_unix};
pub use keys::{KeyKind, key_pair_from_seed};
pub use nkeys::KeyPair;
/// A curve25519 key (`X…`): what secrets are sealed for.
pub use nkeys::XKey;
pub use policy::Policy;
pub use provider::{
    ProviderMetadata, ProviderSignOptions, decode_provider, native_target, provider_claims_path,
    sign_provider, verify_provider,
};
