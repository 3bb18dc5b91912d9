//! What a host is willing to trust. A token whose signature verifies is
//! still refused if it is out of its validity window or was issued by an
//! account the operator has not allowed.

use std::collections::BTreeSet;

use crate::{Claims, ClaimsError, KeyKind};

/// The trust rules applied after a token's signature has verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Accounts whose signatures are trusted; `None` trusts any issuer.
    pub allowed_issuers: Option<BTreeSet<String>>,
}

impl Policy {
    /// Trusts any issuer whose signature verifies.
    pub fn any_issuer() -> Self {
        Policy::default()
    }

    /// Trusts only the listed account keys; each must be an `A…` key.
    pub fn allow_issuers<I, S>(issuers: I) -> Result<Self, ClaimsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut allowed = BTreeSet::new();
        for issuer in issuers {
            let issuer = issuer.into().trim().to_owned();
            KeyKind::Account.check_public("allowed issuer", &issuer)?;
            allowed.insert(issuer);
        }
        Ok(Policy {
            allowed_issuers: Some(allowed),
        })
    }

    /// Checks the validity window at `now` and the issuer allow-list.
    pub fn check<T>(&self, claims: &Claims<T>, now: u64) -> Result<(), ClaimsError> {
        if let Some(exp) = claims.exp
            && now >= exp
        {
            return Err(ClaimsError::Expired { exp, now });
        }
        if let Some(nbf) = claims.nbf
            && now < nbf
        {
            return Err(ClaimsError::NotYetValid { nbf, now });
        }
        if let Some(allowed) = &self.allowed_issuers
            && !allowed.contains(&claims.iss)
        {
            return Err(ClaimsError::IssuerNotAllowed {
                issuer: claims.iss.clone(),
            });
        }
        Ok(())
    }
}
