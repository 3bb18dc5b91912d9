//! The `claims.get` answer: the claims of everything running in the lattice.
//!
//! wasmCloud answers with a list of flat string maps, writing each value
//! under both its short JWT name and its long name (`iss` and `issuer`,
//! `sub` and `subject`, `rev` and `revision`) so old and new clients read
//! it. [`ClaimsSummary`] is the typed view; [`ClaimsSummary::to_entry`] and
//! [`ClaimsSummary::from_entry`] convert to and from that map.

use std::collections::BTreeMap;

/// One element of the `claims.get` reply, keyed as wasmCloud keys it.
pub type ClaimsEntry = BTreeMap<String, String>;

/// The claims of one running component or provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimsSummary {
    /// The component's or provider's public key (`sub`).
    pub subject: String,
    /// The account that signed it (`iss`).
    pub issuer: String,
    /// Its name.
    pub name: String,
    /// Its revision number, as text.
    pub revision: String,
    /// Its human version.
    pub version: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// A component's call alias, if it has one; providers have none.
    pub call_alias: Option<String>,
}

impl ClaimsSummary {
    /// The flat map sent in the `claims.get` reply.
    pub fn to_entry(&self) -> ClaimsEntry {
        let mut entry = ClaimsEntry::new();
        let mut put = |keys: &[&str], value: &str| {
            for key in keys {
                entry.insert((*key).to_owned(), value.to_owned());
            }
        };
        put(&["sub", "subject"], &self.subject);
        put(&["iss", "issuer"], &self.issuer);
        put(&["name"], &self.name);
        put(&["rev", "revision"], &self.revision);
        put(&["version"], &self.version);
        put(&["tags"], &self.tags.join(","));
        if let Some(alias) = &self.call_alias {
            put(&["call_alias"], alias);
        }
        entry
    }

    /// Reads an entry written by Trellis or wasmCloud (long or short keys).
    pub fn from_entry(entry: &ClaimsEntry) -> Self {
        let get = |long: &str, short: &str| {
            entry
                .get(long)
                .or_else(|| entry.get(short))
                .cloned()
                .unwrap_or_default()
        };
        let tags = entry
            .get("tags")
            .map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            subject: get("subject", "sub"),
            issuer: get("issuer", "iss"),
            name: get("name", "name"),
            revision: get("revision", "rev"),
            version: get("version", "version"),
            tags,
            call_alias: entry.get("call_alias").cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component() -> ClaimsSummary {
        ClaimsSummary {
            subject: "MCOMP".into(),
            issuer: "AACCT".into(),
            name: "echo".into(),
            revision: "3".into(),
            version: "0.1.0".into(),
            tags: vec!["a".into(), "b".into()],
            call_alias: Some("echo-alias".into()),
        }
    }

    #[test]
    fn entry_carries_short_and_long_keys() {
        let entry = component().to_entry();
        assert_eq!(entry["iss"], "AACCT");
        assert_eq!(entry["issuer"], "AACCT");
        assert_eq!(entry["sub"], "MCOMP");
        assert_eq!(entry["rev"], "3");
        assert_eq!(entry["tags"], "a,b");
    }

    #[test]
    fn entry_round_trips() {
        assert_eq!(
            ClaimsSummary::from_entry(&component().to_entry()),
            component()
        );
    }

    #[test]
    fn provider_entry_with_only_short_keys_reads() {
        let entry: ClaimsEntry = [("iss", "AACCT"), ("sub", "VPROV"), ("tags", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let claims = ClaimsSummary::from_entry(&entry);
        assert_eq!(claims.subject, "VPROV");
        assert!(claims.tags.is_empty());
        assert_eq!(claims.call_alias, None);
    }
}
