//! WIT names as the lattice routes them.
//!
//! Links name an interface as `namespace:package/interface`, and an RPC
//! subject names one function of it. Versions (`@0.2.0`) are deliberately
//! not part of either: a component importing `wasi:keyvalue/store@0.2.0-draft`
//! is routed by the link for `wasi:keyvalue/store`. [`WitInterface::parse`]
//! therefore accepts and drops a version, so the host can feed it import
//! names exactly as wasmtime reports them.

use std::fmt;
use std::str::FromStr;

use crate::error::LatticeError;
use crate::subject::check_token;

/// Characters that separate the parts of a WIT name and so may not appear
/// inside one part.
const WIT_SEPARATORS: &[char] = &[':', '/', '@'];

/// An unversioned WIT interface, `namespace:package/interface`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WitInterface {
    /// `wasi` in `wasi:keyvalue/store`.
    pub namespace: String,
    /// `keyvalue` in `wasi:keyvalue/store`.
    pub package: String,
    /// `store` in `wasi:keyvalue/store`.
    pub interface: String,
}

impl WitInterface {
    /// Builds an interface name from its parts, checking each one.
    pub fn new(
        namespace: impl Into<String>,
        package: impl Into<String>,
        interface: impl Into<String>,
    ) -> Result<Self, LatticeError> {
        let name = Self {
            namespace: namespace.into(),
            package: package.into(),
            interface: interface.into(),
        };
        check_wit_part("WIT namespace", &name.namespace)?;
        check_wit_part("WIT package", &name.package)?;
        check_wit_part("WIT interface", &name.interface)?;
        Ok(name)
    }

    /// Parses `namespace:package/interface`, ignoring an `@version` suffix.
    pub fn parse(text: &str) -> Result<Self, LatticeError> {
        let unversioned = text.split_once('@').map_or(text, |(name, _)| name);
        let (namespace, rest) = unversioned
            .split_once(':')
            .ok_or_else(|| wit_error(text, "no ':' between namespace and package"))?;
        let (package, interface) = rest
            .split_once('/')
            .ok_or_else(|| wit_error(text, "no '/' between package and interface"))?;
        Self::new(namespace, package, interface)
    }
}

impl fmt::Display for WitInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.namespace, self.package, self.interface)
    }
}

impl FromStr for WitInterface {
    type Err = LatticeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// One function of a WIT interface: what a single RPC subject addresses.
///
/// Function names may contain dots, because the component model names
/// resource methods that way (`[method]bucket.get`); everything after the
/// first dot following the interface is the function.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WitFunction {
    /// The interface the function belongs to.
    pub interface: WitInterface,
    /// The function name, e.g. `get` or `[method]bucket.get`.
    pub function: String,
}

impl WitFunction {
    /// Names `function` of `interface`, checking the function name.
    pub fn new(interface: WitInterface, function: impl Into<String>) -> Result<Self, LatticeError> {
        let function = function.into();
        check_function_name(&function)?;
        Ok(Self {
            interface,
            function,
        })
    }

    /// Parses `namespace:package/interface.function`. Unlike an interface
    /// name it may not carry a version: the dots of `@0.2.0` would be
    /// ambiguous with the function separator.
    pub fn parse(text: &str) -> Result<Self, LatticeError> {
        if text.contains('@') {
            return Err(wit_error(
                text,
                "a function name carries no version; drop the `@version`",
            ));
        }
        let slash = text
            .find('/')
            .ok_or_else(|| wit_error(text, "no '/' between package and interface"))?;
        let dot = text[slash..]
            .find('.')
            .map(|offset| slash + offset)
            .ok_or_else(|| wit_error(text, "no '.' between interface and function"))?;
        let interface = WitInterface::parse(&text[..dot])?;
        Self::new(interface, &text[dot + 1..])
    }
}

impl fmt::Display for WitFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.interface, self.function)
    }
}

impl FromStr for WitFunction {
    type Err = LatticeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Checks one of namespace, package or interface.
pub(crate) fn check_wit_part(what: &'static str, value: &str) -> Result<(), LatticeError> {
    check_token(what, value)?;
    if let Some(c) = value.chars().find(|c| WIT_SEPARATORS.contains(c)) {
        return Err(LatticeError::invalid_name(
            what,
            value,
            format!("contains {c:?}, which separates the parts of a WIT name"),
        ));
    }
    Ok(())
}

/// Checks a function name: dot-separated, each segment a valid WIT part.
pub(crate) fn check_function_name(value: &str) -> Result<(), LatticeError> {
    if value.is_empty() {
        return Err(LatticeError::invalid_name(
            "WIT function",
            value,
            "is empty; name the function to call",
        ));
    }
    for segment in value.split('.') {
        if segment.is_empty() {
            return Err(LatticeError::invalid_name(
                "WIT function",
                value,
                "has an empty segment (leading, trailing or doubled '.')",
            ));
        }
        check_wit_part("WIT function", segment).map_err(|_| {
            LatticeError::invalid_name(
                "WIT function",
                value,
                "may contain only non-space characters other than ':', '/', '@', '*' and '>'",
            )
        })?;
    }
    Ok(())
}

fn wit_error(value: &str, problem: &str) -> LatticeError {
    LatticeError::InvalidWitName {
        value: value.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_parses_and_prints_back() {
        let iface = WitInterface::parse("wasi:keyvalue/store").unwrap();
        assert_eq!(iface.namespace, "wasi");
        assert_eq!(iface.package, "keyvalue");
        assert_eq!(iface.interface, "store");
        assert_eq!(iface.to_string(), "wasi:keyvalue/store");
    }

    #[test]
    fn interface_version_is_dropped() {
        let iface: WitInterface = "wasi:keyvalue/store@0.2.0-draft".parse().unwrap();
        assert_eq!(iface.to_string(), "wasi:keyvalue/store");
    }

    #[test]
    fn interface_without_separators_is_refused() {
        assert!(WitInterface::parse("wasi-keyvalue/store").is_err());
        assert!(WitInterface::parse("wasi:keyvalue").is_err());
        assert!(WitInterface::parse("wasi::store").is_err());
        assert!(WitInterface::parse("wasi:key.value/store").is_err());
        assert!(WitInterface::parse("wasi:keyvalue/st ore").is_err());
    }

    #[test]
    fn function_parses_resource_methods_with_dots() {
        let f = WitFunction::parse("wasi:keyvalue/store.[method]bucket.get").unwrap();
        assert_eq!(f.interface.to_string(), "wasi:keyvalue/store");
        assert_eq!(f.function, "[method]bucket.get");
        assert_eq!(f.to_string(), "wasi:keyvalue/store.[method]bucket.get");
    }

    #[test]
    fn function_with_empty_segments_is_refused() {
        let iface = WitInterface::parse("wasi:http/incoming-handler").unwrap();
        assert!(WitFunction::new(iface.clone(), "").is_err());
        assert!(WitFunction::new(iface.clone(), "handle.").is_err());
        assert!(WitFunction::new(iface.clone(), "a..b").is_err());
        assert!(WitFunction::new(iface, "ha*ndle").is_err());
        assert!(WitFunction::parse("wasi:http/incoming-handler").is_err());
        assert!(WitFunction::parse("wasi:keyvalue/store@0.2.0-draft.get").is_err());
    }
}
