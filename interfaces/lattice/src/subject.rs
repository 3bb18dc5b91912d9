//! Every NATS subject and JetStream bucket name Trellis uses, in one place.
//!
//! A lattice is nothing more than a name that prefixes every subject, so two
//! lattices on one NATS deployment never see each other's traffic. That only
//! holds if no name put into a subject can add or remove a token: a host id
//! `a.b` or a target `*` would silently change who receives a message. So
//! every builder here validates what it interpolates, and the parsers undo
//! exactly what the builders do. Nothing else in Trellis should `format!` a
//! subject.
//!
//! | area | subject |
//! |---|---|
//! | control | `wasmbus.ctl.v1.{lattice}.{operation}` ([`CtlOperation`]) |
//! | events | `wasmbus.evt.{lattice}.{event_type}` |
//! | calls | `{lattice}.{target}.rpc.{namespace}:{package}/{interface}.{function}` |
//! | provider | `wasmbus.rpc.{lattice}.{provider}.{linkdefs.put,linkdefs.del,shutdown,health}` |
//! | KV buckets | `LATTICEDATA_{lattice}`, `CONFIGDATA_{lattice}` |

use crate::error::LatticeError;
use crate::event::EventKind;
use crate::wit::{WitFunction, check_wit_part};

/// Prefix of every control-interface subject (before the lattice name).
pub const CTL_PREFIX: &str = "wasmbus.ctl.v1";
/// Prefix of every lattice event subject (before the lattice name).
pub const EVENT_PREFIX: &str = "wasmbus.evt";
/// Prefix of the host-to-provider management subjects (before the lattice name).
pub const PROVIDER_PREFIX: &str = "wasmbus.rpc";
/// The token between target and function in an RPC subject.
pub const RPC_TOKEN: &str = "rpc";
/// The lattice used when none is configured.
pub const DEFAULT_LATTICE: &str = "default";

const RPC_SHAPE: &str = "`{lattice}.{target}.rpc.{namespace}:{package}/{interface}.{function}`";
const CTL_SHAPE: &str = "`wasmbus.ctl.v1.{lattice}.{operation}`, e.g. `host.get.{host_id}`";

/// Checks a lattice name: it becomes a subject token and part of JetStream
/// bucket names, so only ASCII letters, digits, `-` and `_` are allowed.
pub fn validate_lattice_name(name: &str) -> Result<(), LatticeError> {
    const WHAT: &str = "lattice name";
    if name.is_empty() {
        return Err(LatticeError::invalid_name(
            WHAT,
            name,
            "is empty; use e.g. \"default\"",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(LatticeError::invalid_name(
            WHAT,
            name,
            format!(
                "contains {c:?}; a lattice name appears in subjects and JetStream bucket names, \
                 so use only ASCII letters, digits, '-' and '_'"
            ),
        ));
    }
    Ok(())
}

/// Checks an id or name that becomes exactly one subject token (host id,
/// component or provider id, link target, config name).
///
/// `what` names the value in the error message, e.g. `"host id"`.
pub fn validate_token(what: &'static str, value: &str) -> Result<(), LatticeError> {
    check_token(what, value)
}

/// The shared rule: non-empty, no whitespace or control characters, and none
/// of NATS's separator and wildcards `.`, `*`, `>`.
pub(crate) fn check_token(what: &'static str, value: &str) -> Result<(), LatticeError> {
    if value.is_empty() {
        return Err(LatticeError::invalid_name(what, value, "is empty"));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(LatticeError::invalid_name(
            what,
            value,
            format!("contains whitespace or a control character ({c:?})"),
        ));
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '.' | '*' | '>')) {
        return Err(LatticeError::invalid_name(
            what,
            value,
            format!(
                "contains {c:?}, which NATS reads as a token separator or wildcard; \
                 ids in subjects may not contain '.', '*' or '>'"
            ),
        ));
    }
    Ok(())
}

/// One control-interface operation: the part of a control subject after the
/// lattice name. The body and reply of each are documented on the variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlOperation {
    /// `host.ping`: every host replies with a [`crate::ctl::Host`].
    HostPing,
    /// `host.get.{host}`: reply [`crate::ctl::HostInventory`].
    HostGet {
        /// The host asked.
        host_id: String,
    },
    /// `host.stop.{host}`: body [`crate::ctl::StopHostCommand`].
    HostStop {
        /// The host to stop.
        host_id: String,
    },
    /// `component.auction`: body [`crate::ctl::ComponentAuctionRequest`],
    /// replies [`crate::ctl::ComponentAuctionAck`] from suitable hosts.
    ComponentAuction,
    /// `provider.auction`: body [`crate::ctl::ProviderAuctionRequest`],
    /// replies [`crate::ctl::ProviderAuctionAck`] from suitable hosts.
    ProviderAuction,
    /// `component.scale.{host}`: body [`crate::ctl::ScaleComponentCommand`].
    ComponentScale {
        /// The host that should run the component.
        host_id: String,
    },
    /// `component.update.{host}`: body [`crate::ctl::UpdateComponentCommand`].
    ComponentUpdate {
        /// The host running the component.
        host_id: String,
    },
    /// `provider.start.{host}`: body [`crate::ctl::StartProviderCommand`].
    ProviderStart {
        /// The host that should run the provider.
        host_id: String,
    },
    /// `provider.stop.{host}`: body [`crate::ctl::StopProviderCommand`].
    ProviderStop {
        /// The host running the provider.
        host_id: String,
    },
    /// `link.put`: body [`crate::link::Link`].
    LinkPut,
    /// `link.del`: body [`crate::ctl::DeleteInterfaceLinkDefinitionRequest`].
    LinkDel,
    /// `link.get`: reply `Vec<`[`crate::link::Link`]`>`.
    LinkGet,
    /// `claims.get`: reply `Vec<`[`crate::ctl::ClaimsEntry`]`>`.
    ClaimsGet,
    /// `label.put.{host}`: body [`crate::ctl::HostLabel`].
    LabelPut {
        /// The host to label.
        host_id: String,
    },
    /// `label.del.{host}`: body [`crate::ctl::HostLabel`] (value ignored).
    LabelDel {
        /// The host to unlabel.
        host_id: String,
    },
    /// `config.put.{name}`: body [`crate::config::NamedConfig`].
    ConfigPut {
        /// The config's name.
        name: String,
    },
    /// `config.get.{name}`: reply [`crate::config::NamedConfig`].
    ConfigGet {
        /// The config's name.
        name: String,
    },
    /// `config.del.{name}`: no body.
    ConfigDel {
        /// The config's name.
        name: String,
    },
}

impl CtlOperation {
    /// The host this operation is addressed to, for operations sent to one host.
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Self::HostGet { host_id }
            | Self::HostStop { host_id }
            | Self::ComponentScale { host_id }
            | Self::ComponentUpdate { host_id }
            | Self::ProviderStart { host_id }
            | Self::ProviderStop { host_id }
            | Self::LabelPut { host_id }
            | Self::LabelDel { host_id } => Some(host_id),
            _ => None,
        }
    }

    /// The subject suffix, e.g. `host.get.NABC…`, after validating its id.
    pub fn suffix(&self) -> Result<String, LatticeError> {
        let with_host = |prefix: &str, host_id: &str| {
            check_token("host id", host_id).map(|()| format!("{prefix}.{host_id}"))
        };
        let with_name = |prefix: &str, name: &str| {
            check_token("config name", name).map(|()| format!("{prefix}.{name}"))
        };
        match self {
            Self::HostPing => Ok("host.ping".into()),
            Self::HostGet { host_id } => with_host("host.get", host_id),
            Self::HostStop { host_id } => with_host("host.stop", host_id),
            Self::ComponentAuction => Ok("component.auction".into()),
            Self::ProviderAuction => Ok("provider.auction".into()),
            Self::ComponentScale { host_id } => with_host("component.scale", host_id),
            Self::ComponentUpdate { host_id } => with_host("component.update", host_id),
            Self::ProviderStart { host_id } => with_host("provider.start", host_id),
            Self::ProviderStop { host_id } => with_host("provider.stop", host_id),
            Self::LinkPut => Ok("link.put".into()),
            Self::LinkDel => Ok("link.del".into()),
            Self::LinkGet => Ok("link.get".into()),
            Self::ClaimsGet => Ok("claims.get".into()),
            Self::LabelPut { host_id } => with_host("label.put", host_id),
            Self::LabelDel { host_id } => with_host("label.del", host_id),
            Self::ConfigPut { name } => with_name("config.put", name),
            Self::ConfigGet { name } => with_name("config.get", name),
            Self::ConfigDel { name } => with_name("config.del", name),
        }
    }

    /// Parses a subject suffix as produced by [`CtlOperation::suffix`].
    /// Returns `None` for anything that is not a known operation.
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        let tokens: Vec<&str> = suffix.split('.').collect();
        let id = |s: &str| -> Option<String> {
            check_token("id", s).ok()?;
            Some(s.to_owned())
        };
        let op = match tokens.as_slice() {
            ["host", "ping"] => Self::HostPing,
            ["host", "get", h] => Self::HostGet { host_id: id(h)? },
            ["host", "stop", h] => Self::HostStop { host_id: id(h)? },
            ["component", "auction"] => Self::ComponentAuction,
            ["provider", "auction"] => Self::ProviderAuction,
            ["component", "scale", h] => Self::ComponentScale { host_id: id(h)? },
            ["component", "update", h] => Self::ComponentUpdate { host_id: id(h)? },
            ["provider", "start", h] => Self::ProviderStart { host_id: id(h)? },
            ["provider", "stop", h] => Self::ProviderStop { host_id: id(h)? },
            ["link", "put"] => Self::LinkPut,
            ["link", "del"] => Self::LinkDel,
            ["link", "get"] => Self::LinkGet,
            ["claims", "get"] => Self::ClaimsGet,
            ["label", "put", h] => Self::LabelPut { host_id: id(h)? },
            ["label", "del", h] => Self::LabelDel { host_id: id(h)? },
            ["config", "put", n] => Self::ConfigPut { name: id(n)? },
            ["config", "get", n] => Self::ConfigGet { name: id(n)? },
            ["config", "del", n] => Self::ConfigDel { name: id(n)? },
            _ => return None,
        };
        Some(op)
    }
}

/// What a host asks of a provider process outside of RPC calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderOperation {
    /// A link that targets or originates from the provider was put (body: the link).
    LinkPut,
    /// Such a link was deleted (body: the link).
    LinkDel,
    /// Stop gracefully.
    Shutdown,
    /// Answer a health check.
    Health,
}

impl ProviderOperation {
    /// Every operation, for subscribing to all of them.
    pub const ALL: [Self; 4] = [Self::LinkPut, Self::LinkDel, Self::Shutdown, Self::Health];

    /// The subject suffix after the provider id.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkPut => "linkdefs.put",
            Self::LinkDel => "linkdefs.del",
            Self::Shutdown => "shutdown",
            Self::Health => "health",
        }
    }
}

/// An incoming RPC subject taken apart: who is called and which function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RpcSubject {
    /// The component or provider id the call is addressed to.
    pub target: String,
    /// The called function, with its namespace, package and interface.
    pub function: WitFunction,
}

/// Builds and parses every subject of one lattice.
///
/// Construct it once per lattice with [`Subjects::new`] (which validates the
/// lattice name) and hand it to whatever talks to NATS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subjects {
    lattice: String,
}

impl Subjects {
    /// Subjects for `lattice`, refusing names that cannot be a subject token.
    pub fn new(lattice: &str) -> Result<Self, LatticeError> {
        validate_lattice_name(lattice)?;
        Ok(Self {
            lattice: lattice.to_owned(),
        })
    }

    /// The lattice name.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    /// The control subject for `op`, e.g. `wasmbus.ctl.v1.default.host.ping`.
    pub fn ctl(&self, op: &CtlOperation) -> Result<String, LatticeError> {
        Ok(format!("{}.{}", self.ctl_prefix(), op.suffix()?))
    }

    /// What a host subscribes to for all control traffic of the lattice.
    pub fn ctl_wildcard(&self) -> String {
        format!("{}.>", self.ctl_prefix())
    }

    /// Takes a received control subject apart.
    pub fn parse_ctl(&self, subject: &str) -> Result<CtlOperation, LatticeError> {
        let prefix = self.ctl_prefix();
        let suffix = subject
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| {
                malformed(
                    subject,
                    format!("does not start with `{prefix}.`"),
                    CTL_SHAPE,
                )
            })?;
        CtlOperation::from_suffix(suffix)
            .ok_or_else(|| malformed(subject, format!("unknown operation `{suffix}`"), CTL_SHAPE))
    }

    /// The subject an event of `kind` is published on.
    pub fn event(&self, kind: EventKind) -> String {
        format!("{EVENT_PREFIX}.{}.{}", self.lattice, kind.as_str())
    }

    /// What an observer (wadm, `wash`) subscribes to for all events.
    pub fn events_wildcard(&self) -> String {
        format!("{EVENT_PREFIX}.{}.>", self.lattice)
    }

    /// The subject of a call to `function` on `target`.
    pub fn rpc(&self, target: &str, function: &WitFunction) -> Result<String, LatticeError> {
        check_token("call target", target)?;
        Ok(format!("{}.{target}.{RPC_TOKEN}.{function}", self.lattice))
    }

    /// What a host or provider serving `target` subscribes to.
    pub fn rpc_wildcard(&self, target: &str) -> Result<String, LatticeError> {
        check_token("call target", target)?;
        Ok(format!("{}.{target}.{RPC_TOKEN}.>", self.lattice))
    }

    /// The queue group for subscribers of `target`, so calls spread over
    /// every host running it.
    pub fn rpc_queue_group(&self, target: &str) -> Result<String, LatticeError> {
        check_token("call target", target)?;
        Ok(target.to_owned())
    }

    /// Takes a received RPC subject apart into target and function.
    pub fn parse_rpc(&self, subject: &str) -> Result<RpcSubject, LatticeError> {
        let mut parts = subject.splitn(4, '.');
        let (Some(lattice), Some(target), Some(rpc), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(subject, "has too few tokens".into(), RPC_SHAPE));
        };
        if lattice != self.lattice {
            return Err(malformed(
                subject,
                format!("is for lattice {lattice:?}, not {:?}", self.lattice),
                RPC_SHAPE,
            ));
        }
        if rpc != RPC_TOKEN {
            return Err(malformed(
                subject,
                format!("has {rpc:?} where `rpc` belongs"),
                RPC_SHAPE,
            ));
        }
        check_token("call target", target)?;
        let function = WitFunction::parse(rest)?;
        Ok(RpcSubject {
            target: target.to_owned(),
            function,
        })
    }

    /// The subject a host uses to tell provider `provider_id` about `op`.
    pub fn provider(
        &self,
        provider_id: &str,
        op: ProviderOperation,
    ) -> Result<String, LatticeError> {
        check_token("provider id", provider_id)?;
        Ok(format!(
            "{PROVIDER_PREFIX}.{}.{provider_id}.{}",
            self.lattice,
            op.as_str()
        ))
    }

    /// The JetStream KV bucket holding links, claims and host labels.
    pub fn lattice_data_bucket(&self) -> String {
        format!("LATTICEDATA_{}", self.lattice)
    }

    /// The JetStream KV bucket holding named config.
    pub fn config_data_bucket(&self) -> String {
        format!("CONFIGDATA_{}", self.lattice)
    }

    fn ctl_prefix(&self) -> String {
        format!("{CTL_PREFIX}.{}", self.lattice)
    }
}

/// Checks that a WIT namespace, package or interface fits in a subject.
pub fn validate_wit_part(what: &'static str, value: &str) -> Result<(), LatticeError> {
    check_wit_part(what, value)
}

fn malformed(subject: &str, problem: String, expected: &'static str) -> LatticeError {
    LatticeError::MalformedSubject {
        subject: subject.to_owned(),
        problem,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::WitInterface;

    const HOST: &str = "NAHOSTID";

    fn subjects() -> Subjects {
        Subjects::new("default").unwrap()
    }

    fn handle() -> WitFunction {
        WitFunction::new(
            WitInterface::parse("wasi:http/incoming-handler").unwrap(),
            "handle",
        )
        .unwrap()
    }

    fn every_operation() -> Vec<(CtlOperation, String)> {
        let h = || HOST.to_owned();
        let n = || "app-config".to_owned();
        vec![
            (CtlOperation::HostPing, "host.ping".into()),
            (
                CtlOperation::HostGet { host_id: h() },
                format!("host.get.{HOST}"),
            ),
            (
                CtlOperation::HostStop { host_id: h() },
                format!("host.stop.{HOST}"),
            ),
            (CtlOperation::ComponentAuction, "component.auction".into()),
            (CtlOperation::ProviderAuction, "provider.auction".into()),
            (
                CtlOperation::ComponentScale { host_id: h() },
                format!("component.scale.{HOST}"),
            ),
            (
                CtlOperation::ComponentUpdate { host_id: h() },
                format!("component.update.{HOST}"),
            ),
            (
                CtlOperation::ProviderStart { host_id: h() },
                format!("provider.start.{HOST}"),
            ),
            (
                CtlOperation::ProviderStop { host_id: h() },
                format!("provider.stop.{HOST}"),
            ),
            (CtlOperation::LinkPut, "link.put".into()),
            (CtlOperation::LinkDel, "link.del".into()),
            (CtlOperation::LinkGet, "link.get".into()),
            (CtlOperation::ClaimsGet, "claims.get".into()),
            (
                CtlOperation::LabelPut { host_id: h() },
                format!("label.put.{HOST}"),
            ),
            (
                CtlOperation::LabelDel { host_id: h() },
                format!("label.del.{HOST}"),
            ),
            (
                CtlOperation::ConfigPut { name: n() },
                "config.put.app-config".into(),
            ),
            (
                CtlOperation::ConfigGet { name: n() },
                "config.get.app-config".into(),
            ),
            (
                CtlOperation::ConfigDel { name: n() },
                "config.del.app-config".into(),
            ),
        ]
    }

    #[test]
    fn every_control_subject_has_the_wasmcloud_shape_and_parses_back() {
        let s = subjects();
        for (op, suffix) in every_operation() {
            let subject = s.ctl(&op).unwrap();
            assert_eq!(subject, format!("wasmbus.ctl.v1.default.{suffix}"));
            assert_eq!(s.parse_ctl(&subject).unwrap(), op, "{subject}");
        }
    }

    #[test]
    fn control_operations_name_their_host() {
        assert_eq!(CtlOperation::HostPing.host_id(), None);
        let op = CtlOperation::ComponentScale {
            host_id: HOST.into(),
        };
        assert_eq!(op.host_id(), Some(HOST));
    }

    #[test]
    fn control_wildcard_covers_the_lattice() {
        assert_eq!(subjects().ctl_wildcard(), "wasmbus.ctl.v1.default.>");
    }

    #[test]
    fn control_subject_with_dotted_host_id_is_refused() {
        let op = CtlOperation::HostGet {
            host_id: "evil.host".into(),
        };
        let err = subjects().ctl(&op).unwrap_err();
        assert!(err.to_string().contains("host id \"evil.host\""), "{err}");
    }

    #[test]
    fn config_name_with_wildcard_is_refused() {
        let op = CtlOperation::ConfigPut { name: ">".into() };
        assert!(subjects().ctl(&op).is_err());
    }

    #[test]
    fn unknown_or_foreign_control_subjects_are_refused() {
        let s = subjects();
        assert!(s.parse_ctl("wasmbus.ctl.v1.default.host.explode").is_err());
        assert!(s.parse_ctl("wasmbus.ctl.v1.other.host.ping").is_err());
        assert!(s.parse_ctl("wasmbus.ctl.v1.defaultx.host.ping").is_err());
        assert!(s.parse_ctl("wasmbus.ctl.v1.default.host.get.a.b").is_err());
        assert!(s.parse_ctl("wasmbus.ctl.v1.default.host.get.").is_err());
    }

    #[test]
    fn event_subjects_carry_the_event_type() {
        let s = subjects();
        assert_eq!(
            s.event(EventKind::HostHeartbeat),
            "wasmbus.evt.default.host_heartbeat"
        );
        assert_eq!(s.events_wildcard(), "wasmbus.evt.default.>");
    }

    #[test]
    fn rpc_subject_has_no_version_and_parses_back() {
        let s = subjects();
        let subject = s.rpc("http-component", &handle()).unwrap();
        assert_eq!(
            subject,
            "default.http-component.rpc.wasi:http/incoming-handler.handle"
        );
        let parsed = s.parse_rpc(&subject).unwrap();
        assert_eq!(parsed.target, "http-component");
        assert_eq!(parsed.function.interface.namespace, "wasi");
        assert_eq!(parsed.function.interface.package, "http");
        assert_eq!(parsed.function.interface.interface, "incoming-handler");
        assert_eq!(parsed.function.function, "handle");
    }

    #[test]
    fn rpc_subject_for_resource_method_round_trips() {
        let s = subjects();
        let f = WitFunction::parse("wasi:keyvalue/store.[method]bucket.get").unwrap();
        let subject = s.rpc("kv", &f).unwrap();
        assert_eq!(s.parse_rpc(&subject).unwrap().function, f);
    }

    #[test]
    fn rpc_wildcard_and_queue_group_are_per_target() {
        let s = subjects();
        assert_eq!(s.rpc_wildcard("kv").unwrap(), "default.kv.rpc.>");
        assert_eq!(s.rpc_queue_group("kv").unwrap(), "kv");
        assert!(s.rpc_wildcard("k.v").is_err());
        assert!(s.rpc_queue_group("").is_err());
    }

    #[test]
    fn rpc_target_with_dot_or_wildcard_is_refused() {
        let s = subjects();
        for target in ["a.b", "*", ">", "", "a b"] {
            assert!(s.rpc(target, &handle()).is_err(), "{target:?}");
        }
    }

    #[test]
    fn hostile_rpc_subjects_are_refused() {
        let s = subjects();
        for subject in [
            "default.kv",
            "default.kv.rpc",
            "default.kv.call.wasi:keyvalue/store.get",
            "other.kv.rpc.wasi:keyvalue/store.get",
            "default.kv.rpc.wasi:keyvalue/store",
            "default.kv.rpc.wasi:keyvalue/store.",
            "default.kv.rpc.wasi:keyvalue/store.get..x",
            "default.kv.rpc.wasi-keyvalue/store.get",
            "default.kv.rpc.wasi:keyvalue.store.get",
            "default.*.rpc.wasi:keyvalue/store.get",
            "default.kv.rpc.wasi:keyvalue/store.>",
            "default..rpc.wasi:keyvalue/store.get",
        ] {
            assert!(s.parse_rpc(subject).is_err(), "{subject}");
        }
    }

    #[test]
    fn provider_subjects_use_the_wasmbus_rpc_prefix() {
        let s = subjects();
        let expected = [
            "wasmbus.rpc.default.VPROV.linkdefs.put",
            "wasmbus.rpc.default.VPROV.linkdefs.del",
            "wasmbus.rpc.default.VPROV.shutdown",
            "wasmbus.rpc.default.VPROV.health",
        ];
        for (op, want) in ProviderOperation::ALL.into_iter().zip(expected) {
            assert_eq!(s.provider("VPROV", op).unwrap(), want);
        }
        assert!(s.provider("V.PROV", ProviderOperation::Health).is_err());
    }

    #[test]
    fn bucket_names_carry_the_lattice() {
        let s = Subjects::new("prod_1").unwrap();
        assert_eq!(s.lattice_data_bucket(), "LATTICEDATA_prod_1");
        assert_eq!(s.config_data_bucket(), "CONFIGDATA_prod_1");
    }

    #[test]
    fn bad_lattice_names_are_refused_with_the_reason() {
        for (name, reason) in [
            ("", "is empty"),
            ("a b", "' '"),
            ("a.b", "'.'"),
            ("a*", "'*'"),
            ("a>", "'>'"),
            ("a/b", "'/'"),
            ("tab\t", "'\\t'"),
        ] {
            let err = Subjects::new(name).unwrap_err().to_string();
            assert!(err.contains("lattice name"), "{err}");
            assert!(err.contains(reason), "{name:?}: {err}");
        }
    }

    #[test]
    fn token_rule_names_the_offending_character() {
        let err = validate_token("component id", "my.component").unwrap_err();
        assert!(err.to_string().contains("'.'"), "{err}");
        assert!(validate_token("component id", "rust_hello-world").is_ok());
        assert!(validate_token("component id", "new\nline").is_err());
    }
}
