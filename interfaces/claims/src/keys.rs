//! Identities. Every party on the lattice is an nkey (Ed25519 key pair whose
//! text form starts with a role prefix); this module maps Trellis roles onto
//! nkeys' kinds so callers never compare prefix characters by hand.

use std::fmt;
use std::str::FromStr;

use nkeys::{KeyPair, KeyPairType};

use crate::ClaimsError;

/// The role a key plays on the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Signs components and providers (prefix `A`).
    Account,
    /// Identifies one component (prefix `M`).
    Component,
    /// Identifies one capability provider (prefix `V`).
    Provider,
    /// Identifies one host node (prefix `N`).
    Host,
    /// Identifies a cluster of hosts (prefix `C`).
    Cluster,
}

impl KeyKind {
    /// Every kind, in the order `wash keys` lists them.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Account,
        KeyKind::Component,
        KeyKind::Provider,
        KeyKind::Host,
        KeyKind::Cluster,
    ];

    /// The first character of a public key of this kind.
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Account => 'A',
            KeyKind::Component => 'M',
            KeyKind::Provider => 'V',
            KeyKind::Host => 'N',
            KeyKind::Cluster => 'C',
        }
    }

    /// The lowercase name used on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Account => "account",
            KeyKind::Component => "component",
            KeyKind::Provider => "provider",
            KeyKind::Host => "host",
            KeyKind::Cluster => "cluster",
        }
    }

    fn nkey_type(self) -> KeyPairType {
        match self {
            KeyKind::Account => KeyPairType::Account,
            KeyKind::Component => KeyPairType::Module,
            KeyKind::Provider => KeyPairType::Service,
            KeyKind::Host => KeyPairType::Server,
            KeyKind::Cluster => KeyPairType::Cluster,
        }
    }

    /// A fresh random key pair of this kind.
    pub fn generate(self) -> KeyPair {
        KeyPair::new(self.nkey_type())
    }

    /// Fails unless `public_key` is a well-formed public key of this kind.
    pub fn check_public(self, role: &'static str, public_key: &str) -> Result<(), ClaimsError> {
        let pair = KeyPair::from_public_key(public_key)
            .map_err(|e| ClaimsError::InvalidKey(format!("{role} `{public_key}`: {e}")))?;
        self.check_pair(role, &pair)
    }

    /// Fails unless `pair` is of this kind.
    pub fn check_pair(self, role: &'static str, pair: &KeyPair) -> Result<(), ClaimsError> {
        if pair.key_pair_type() == self.nkey_type() {
            return Ok(());
        }
        Err(ClaimsError::WrongKeyKind {
            role,
            expected: self.as_str(),
            prefix: self.prefix(),
            found: pair.public_key(),
        })
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = ClaimsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        let alias = match wanted.as_str() {
            "actor" | "module" => "component",
            "service" => "provider",
            "server" => "host",
            other => other,
        };
        KeyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == alias)
            .ok_or_else(|| {
                ClaimsError::InvalidKey(format!(
                    "unknown key kind `{s}`; expected one of account, component, provider, host, cluster"
                ))
            })
    }
}

/// Reads a seed (`S…`) and checks that it is of the expected kind.
pub fn key_pair_from_seed(
    kind: KeyKind,
    role: &'static str,
    seed: &str,
) -> Result<KeyPair, ClaimsError> {
    let seed = seed.trim();
    if !seed.starts_with('S') {
        return Err(ClaimsError::InvalidKey(format!(
            "{role}: expected a seed starting with `S` (a public key cannot sign)"
        )));
    }
    let pair = KeyPair::from_seed(seed)
        .map_err(|e| ClaimsError::InvalidKey(format!("{role} seed: {e}")))?;
    kind.check_pair(role, &pair)?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_generates_keys_with_its_prefix() {
        for kind in KeyKind::ALL {
            let pair = kind.generate();
            assert!(pair.public_key().starts_with(kind.prefix()), "{kind}");
            let seed = pair.seed().unwrap();
            let back = key_pair_from_seed(kind, "test", &seed).unwrap();
            assert_eq!(back.public_key(), pair.public_key());
        }
    }

    #[test]
    fn a_seed_of_another_kind_is_refused() {
        let seed = KeyKind::Component.generate().seed().unwrap();
        let err = key_pair_from_seed(KeyKind::Account, "issuer", &seed).unwrap_err();
        assert!(matches!(err, ClaimsError::WrongKeyKind { prefix: 'A', .. }));
    }

    #[test]
    fn a_public_key_is_not_a_seed() {
        let public = KeyKind::Account.generate().public_key();
        let err = key_pair_from_seed(KeyKind::Account, "issuer", &public).unwrap_err();
        assert!(err.to_string().contains("public key cannot sign"));
    }

    #[test]
    fn kinds_parse_from_their_names_and_aliases() {
        assert_eq!("Account".parse::<KeyKind>().unwrap(), KeyKind::Account);
        assert_eq!("actor".parse::<KeyKind>().unwrap(), KeyKind::Component);
        assert_eq!("server".parse::<KeyKind>().unwrap(), KeyKind::Host);
        assert!("operator".parse::<KeyKind>().is_err());
    }
}
