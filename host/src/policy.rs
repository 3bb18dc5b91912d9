//! Which components and providers this host will run. The claims crate answers "is this
//! signature valid and trusted"; this module adds the host-level rules:
//! the operator names the accounts to trust (or says "any" in so many
//! words), and unsigned code runs only when the operator asked for it.

use trellis_claims::{ClaimsError, ComponentMetadata, Policy, ProviderMetadata, Token, now_unix};

use crate::HostError;

/// The host's trust rules.
#[derive(Debug, Clone)]
pub struct RunPolicy {
    trust: Policy,
    allow_unsigned: bool,
}

impl RunPolicy {
    /// Builds the policy from the host's flags. A host must be told whom
    /// to trust: neither issuers nor `allow_any_issuer` is an error that
    /// names both flags, and so is giving both.
    pub fn new(
        allowed_issuers: &[String],
        allow_any_issuer: bool,
        allow_unsigned: bool,
    ) -> Result<Self, HostError> {
        let trust = match (allowed_issuers.is_empty(), allow_any_issuer) {
            (true, false) => return Err(HostError::BadRequest(
                "this host trusts no signer: pass --allowed-issuers A…,A… with the accounts whose \
                 components and providers it may run (`wash keys gen account` makes one), or \
                 --allow-any-issuer to run anything validly signed (development only)"
                    .to_owned(),
            )),
            (false, true) => {
                return Err(HostError::BadRequest(
                    "--allowed-issuers and --allow-any-issuer contradict each other; give one"
                        .to_owned(),
                ));
            }
            (true, true) => Policy::any_issuer(),
            (false, false) => Policy::allow_issuers(allowed_issuers.iter().cloned())
                .map_err(|e| HostError::BadRequest(format!("--allowed-issuers: {e}")))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_told_to_trust_nobody_refuses_to_start_and_names_both_flags() {
        let message = RunPolicy::new(&[], false, false).unwrap_err().to_string();
        assert!(message.contains("--allowed-issuers"), "{message}");
        assert!(message.contains("--allow-any-issuer"), "{message}");
    }

    #[test]
    fn issuers_and_any_issuer_together_are_a_contradiction() {
        let account = trellis_claims::KeyKind::Account.generate().public_key();
        let message = RunPolicy::new(&[account], true, false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("contradict"), "{message}");
    }

    #[test]
    fn a_malformed_issuer_is_named() {
        let message = RunPolicy::new(&["not-a-key".to_owned()], false, false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("--allowed-issuers"), "{message}");
    }
}
