//! One secret at rest: the JSON kept under the secret's name in the
//! backend's KV bucket. The shape is an on-disk contract:
//!
//! ```json
//! {"v":1,"kid":"X…","kind":"string","sealed":"<base64>","allow":[{"subject":"*"}]}
//! ```
//!
//! `sealed` is the MessagePack of the value sealed by the key `kid` for
//! itself, so only a holder of that key's seed can open it; `kind` and
//! `allow` are in the clear, for `list`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use trellis_claims::XKey;
use trellis_lattice::secret::{AccessRule, SecretValue};

/// The format version written.
const FORMAT: u32 = 1;

/// A stored secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version.
    pub v: u32,
    /// The public key of the key that sealed it.
    pub kid: String,
    /// `string` or `bytes`.
    pub kind: String,
    /// The sealed value, base64 (standard).
    pub sealed: String,
    /// Who may read it.
    #[serde(default)]
    pub allow: Vec<AccessRule>,
}

impl Entry {
    /// Seals `value` with `key` for itself.
    pub fn seal(value: &SecretValue, key: &XKey, allow: Vec<AccessRule>) -> Result<Self, String> {
        let plain = value.encode().map_err(|e| e.to_string())?;
        let own = XKey::from_public_key(&key.public_key()).map_err(|e| e.to_string())?;
        let sealed = key
            .seal(&plain, &own)
            .map_err(|e| format!("cannot seal: {e}"))?;
        Ok(Entry {
            v: FORMAT,
            kid: key.public_key(),
            kind: value.kind().to_owned(),
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
            allow,
        })
    }

    /// Opens the value with `key`, which must be the one named `kid`.
    pub fn open(&self, key: &XKey) -> Result<SecretValue, String> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&self.sealed)
            .map_err(|e| format!("the stored value is not base64: {e}"))?;
        let own = XKey::from_public_key(&self.kid).map_err(|e| e.to_string())?;
        let plain = key
            .open(&sealed, &own)
            .map_err(|_| format!("the stored value does not open with key {}", self.kid))?;
        SecretValue::decode(&plain).map_err(|e| e.to_string())
    }

    /// Reads a stored entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let entry: Entry = serde_json::from_slice(bytes)
            .map_err(|e| format!("a stored secret is not an entry: {e}"))?;
        if entry.v != FORMAT {
            return Err(format!(
                "a stored secret has format {}; this backend reads format {FORMAT}",
                entry.v
            ));
        }
        Ok(entry)
    }

    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed key and entry: what an earlier version of this backend
    /// wrote must stay readable.
    const SEED: &str = "SXAFTO546YT5EKLT3TIEMSOTFT6QZ3BFHZZ5KIMWE35DERQJ3CUUST7TAY";

    #[test]
    fn an_entry_round_trips_and_hides_its_value() {
        let key = XKey::from_seed(SEED).unwrap();
        let allow = vec![AccessRule::parse("*").unwrap()];
        let entry = Entry::seal(&SecretValue::String("hunter2".into()), &key, allow).unwrap();
        let bytes = entry.encode();
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));
        let back = Entry::decode(&bytes).unwrap();
        assert_eq!(back.open(&key).unwrap().as_bytes(), b"hunter2");
        assert!(back.open(&XKey::new()).is_err());
    }

    #[test]
    fn the_format_is_pinned() {
        let key = XKey::from_seed(SEED).unwrap();
        let golden = include_str!("../tests/golden/entry-v1.json");
        let entry = Entry::decode(golden.trim().as_bytes()).unwrap();
        assert_eq!(entry.kid, key.public_key());
        assert_eq!(entry.kind, "string");
        assert_eq!(entry.allow, vec![AccessRule::parse("*").unwrap()]);
        assert_eq!(entry.open(&key).unwrap().as_bytes(), b"golden value");
        let value: serde_json::Value = serde_json::from_str(golden).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["allow", "kid", "kind", "sealed", "v"]);
    }

    #[test]
    fn another_format_is_refused() {
        let err = Entry::decode(br#"{"v":2,"kid":"X","kind":"string","sealed":""}"#).unwrap_err();
        assert!(err.contains("format 2"), "{err}");
    }
}
