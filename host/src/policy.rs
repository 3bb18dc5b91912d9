//! Which components and providers this host will run. The claims crate answers "is this
//! signature valid and trusted"; this module adds the one host-level rule,
//! that unsigned code runs only when the operator asked for it.

use trellis_claims::{ClaimsError, ComponentMetadata, Policy, ProviderMetadata, Token, now_unix};

/// The host's trust rules.
#[derive(Debug, Clone)]
pub struct RunPolicy {
    trust: Policy,
    allow_unsigned: bool,
}

impl RunPolicy {
    /// Builds the policy from the host's flags.
    pub fn new(allowed_issuers: &[String], allow_unsigned: bool) -> Result<Self, ClaimsError> {
        let trust = if allowed_issuers.is_empty() {
            Policy::any_issuer()
        } else {
            Policy::allow_issuers(allowed_issuers.iter().cloned())?
        };
        Ok(RunPolicy {
            trust,
            allow_unsigned,
        })
    }

    /// `Ok(Some(token))` for a trusted signed component, `Ok(None)` for an
    /// unsigned one this host accepts, and the reason otherwise. Claims that
    /// are present but broken are refused even with `--allow-unsigned`.
    pub fn admit(&self, wasm: &[u8]) -> Result<Option<Token<ComponentMetadata>>, ClaimsError> {
        match trellis_claims::verify_component(wasm, &self.trust, now_unix()) {
            Ok(token) => Ok(Some(token)),
            Err(ClaimsError::NoClaims) if self.allow_unsigned => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The same rules for a provider executable built for `target`, whose
    /// claims JWT (if it has one) sits beside it.
    pub fn admit_provider(
        &self,
        jwt: Option<&str>,
        target: &str,
        executable: &[u8],
    ) -> Result<Option<Token<ProviderMetadata>>, ClaimsError> {
        match jwt {
            Some(jwt) => {
                trellis_claims::verify_provider(jwt, target, executable, &self.trust, now_unix())
                    .map(Some)
            }
            None if self.allow_unsigned => Ok(None),
            None => Err(ClaimsError::NoClaims),
        }
    }
}
