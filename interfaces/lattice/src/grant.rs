//! Outbound grants: which hosts a component may reach over
//! `wasi:http/outgoing-handler`.
//!
//! Outbound access is deny-by-default. A component gets it only through
//! its manifest (`properties.allowedHosts`, after wasmCloud's field name)
//! or `wash start component --allowed-host`, which travel in the scale
//! command as `allowed_hosts`. Each entry is `[scheme://]host[:port]`:
//!
//! - `https://api.example.com`: that host, over HTTPS, on port 443;
//! - `*.example.com:443`: any subdomain of example.com (not example.com
//!   itself), over HTTP or HTTPS, on port 443;
//! - `http://127.0.0.1:8080`: one address and port;
//! - `https://*` or `*:*`: anything (say so only if you mean it).
//!
//! A missing port means the scheme's default (80 for `http`, 443 for
//! `https`) and `*` means any port; a missing scheme means either.
//!
//! ```
//! use trellis_lattice::grant::OutboundGrant;
//!
//! let grant = OutboundGrant::parse(["https://api.example.com", "*.cdn.example:443"])?;
//! assert!(grant.allows("https", "api.example.com", None));
//! assert!(!grant.allows("http", "api.example.com", None));
//! assert!(grant.allows("https", "eu.cdn.example", Some(443)));
//! assert!(!grant.allows("https", "evil.example", None));
//! assert!(!OutboundGrant::default().allows("https", "api.example.com", None));
//! # Ok::<(), trellis_lattice::LatticeError>(())
//! ```

use std::fmt;

use crate::LatticeError;

/// The most entries one component's grant may have.
pub const MAX_ALLOWED_HOSTS: usize = 64;

/// The hosts one component may reach; empty denies everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundGrant {
    hosts: Vec<AllowedHost>,
}

/// One `[scheme://]host[:port]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<Scheme>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Subdomains(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    SchemeDefault,
    Any,
    Exact(u16),
}

impl OutboundGrant {
    /// Parses every entry, refusing the first bad one with its reason.
    pub fn parse<I, S>(entries: I) -> Result<Self, LatticeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts = entries
            .into_iter()
            .map(|entry| AllowedHost::parse(entry.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if hosts.len() > MAX_ALLOWED_HOSTS {
            return Err(LatticeError::InvalidGrant {
                entry: format!("{} entries", hosts.len()),
                reason: format!("a component may name at most {MAX_ALLOWED_HOSTS} allowed hosts"),
            });
        }
        Ok(OutboundGrant { hosts })
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether a request to `scheme://host[:port]` is granted. `port` is
    /// `None` when the URL names none (the scheme's default applies).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(scheme) = Scheme::parse(scheme) else {
            return false;
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = port.unwrap_or(scheme.default_port());
        self.hosts
            .iter()
            .any(|allowed| allowed.allows(scheme, &host, port))
    }
}

impl AllowedHost {
    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<Self, LatticeError> {
        let bad = |reason: &str| LatticeError::InvalidGrant {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let text = entry.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (
                Some(Scheme::parse(scheme).ok_or_else(|| bad("the scheme must be http or https"))?),
                rest,
            ),
            None => (None, text),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "give only [scheme://]host[:port], without a path, query or user",
            ));
        }
        let (host, port) = split_port(rest);
        let port = match port {
            None => PortPattern::SchemeDefault,
            Some("*") => PortPattern::Any,
            Some(port) => PortPattern::Exact(
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535, or *"))?,
            ),
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            check_host(domain).map_err(|reason| bad(&reason))?;
            HostPattern::Subdomains(format!(".{domain}"))
        } else {
            check_host(&host).map_err(|reason| bad(&reason))?;
            HostPattern::Exact(host)
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => exact == host,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            // No scheme and no port: each scheme's own default.
            PortPattern::SchemeDefault => self.scheme.unwrap_or(scheme).default_port() == port,
        };
        scheme_ok && host_ok && port_ok
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.name())?;
        }
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Exact(host) => f.write_str(host)?,
            HostPattern::Subdomains(suffix) => write!(f, "*{suffix}")?,
        }
        match self.port {
            PortPattern::SchemeDefault => Ok(()),
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Exact(port) => write!(f, ":{port}"),
        }
    }
}

impl Scheme {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// `host[:port]`, where an IPv6 host is in brackets.
fn split_port(text: &str) -> (&str, Option<&str>) {
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.len() > 253 {
        return Err("the host is longer than 253 characters".to_owned());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
    if !host.chars().all(allowed) {
        return Err(
            "the host may hold only letters, digits, `.`, `-` and `_` (or be *)".to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(entries: &[&str]) -> OutboundGrant {
        OutboundGrant::parse(entries).unwrap()
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let none = OutboundGrant::default();
        assert!(none.is_empty());
        assert!(!none.allows("https", "example.com", None));
    }

    #[test]
    fn an_exact_https_host_allows_only_that_host_scheme_and_port() {
        let g = grant(&["https://api.example.com"]);
        assert!(g.allows("https", "api.example.com", None));
        assert!(g.allows("https", "API.example.com", Some(443)));
        assert!(!g.allows("https", "api.example.com", Some(8443)));
        assert!(!g.allows("http", "api.example.com", None));
        assert!(!g.allows("https", "api.example.com.evil", None));
        assert!(!g.allows("https", "evilapi.example.com", None));
    }

    #[test]
    fn subdomain_wildcards_do_not_cover_the_apex_or_lookalikes() {
        let g = grant(&["*.example.com:443"]);
        assert!(g.allows("https", "a.example.com", None));
        assert!(g.allows("http", "a.b.example.com", Some(443)));
        assert!(!g.allows("https", "example.com", None));
        assert!(!g.allows("https", "badexample.com", None));
        assert!(
            !g.allows("http", "a.example.com", None),
            "port 80 is not 443"
        );
    }

    #[test]
    fn ports_default_to_the_scheme_and_star_means_any() {
        let g = grant(&["127.0.0.1"]);
        assert!(g.allows("http", "127.0.0.1", Some(80)));
        assert!(g.allows("https", "127.0.0.1", Some(443)));
        assert!(!g.allows("http", "127.0.0.1", Some(8080)));
        let any = grant(&["http://127.0.0.1:*"]);
        assert!(any.allows("http", "127.0.0.1", Some(8080)));
        assert!(!any.allows("https", "127.0.0.1", Some(8080)));
        let v6 = grant(&["http://[::1]:8080"]);
        assert!(v6.allows("http", "[::1]", Some(8080)));
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (entry, reason) in [
            ("ftp://example.com", "http or https"),
            ("https://example.com/path", "without a path"),
            ("https://user@example.com", "without a path"),
            ("example.com:0", "from 1 to 65535"),
            ("example.com:http", "from 1 to 65535"),
            ("", "empty"),
            ("exa mple.com", "only letters"),
        ] {
            let message = OutboundGrant::parse([entry]).unwrap_err().to_string();
            assert!(message.contains(reason), "{entry}: {message}");
            assert!(message.contains("allowed host"), "{entry}: {message}");
        }
        let many: Vec<String> = (0..=MAX_ALLOWED_HOSTS)
            .map(|i| format!("h{i}.example"))
            .collect();
        assert!(OutboundGrant::parse(&many).is_err());
    }

    #[test]
    fn entries_print_as_they_parse() {
        for entry in [
            "https://api.example.com",
            "*.example.com:443",
            "http://*:*",
            "host:8080",
        ] {
            assert_eq!(AllowedHost::parse(entry).unwrap().to_string(), entry);
        }
    }
}
