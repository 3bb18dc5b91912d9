//! Lattice events: CloudEvents 1.0 JSON on `wasmbus.evt.{lattice}.{kind}`.
//!
//! Hosts publish an event whenever lattice state changes (a component
//! scaled, a provider died, a link was put) and a heartbeat every 30
//! seconds; wadm and `wash` subscribe to them instead of polling. An event
//! is a [`CloudEvent`] envelope (`type` `com.wasmcloud.lattice.{kind}`,
//! `source` the host id) whose `data` is one of the typed payloads in
//! [`LatticeEvent`]. Publishers build with [`LatticeEvent::to_cloud_event`];
//! subscribers decode with [`CloudEvent::from_json`] and [`CloudEvent::parse`].

mod payload;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::LatticeError;
use crate::link::Link;
use crate::secret::SecretAccessed;

pub use payload::{
    ComponentClaims, ComponentScaleFailed, ComponentScaled, ConfigChanged, HostHeartbeat,
    HostStarted, HostStopped, LinkdefDeleted, ProviderClaims, ProviderHealthCheck,
    ProviderStartFailed, ProviderStarted, ProviderStopped,
};

/// The CloudEvents version Trellis speaks.
pub const SPEC_VERSION: &str = "1.0";
/// The `datacontenttype` of every lattice event.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// What every lattice event `type` starts with.
pub const EVENT_TYPE_PREFIX: &str = "com.wasmcloud.lattice.";

/// The kinds of lattice event; [`EventKind::as_str`] is the subject suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A host joined.
    HostStarted,
    /// A host left.
    HostStopped,
    /// A host's periodic summary.
    HostHeartbeat,
    /// A component's instance limit changed.
    ComponentScaled,
    /// A scale command failed.
    ComponentScaleFailed,
    /// A provider started.
    ProviderStarted,
    /// A provider failed to start.
    ProviderStartFailed,
    /// A provider stopped.
    ProviderStopped,
    /// A provider became healthy.
    HealthCheckPassed,
    /// A provider became unhealthy.
    HealthCheckFailed,
    /// A link was put.
    LinkdefSet,
    /// A link was deleted.
    LinkdefDeleted,
    /// A named config was put.
    ConfigSet,
    /// A named config was deleted.
    ConfigDeleted,
    /// A secret was fetched, or refused.
    SecretAccessed,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [Self; 15] = [
        Self::HostStarted,
        Self::HostStopped,
        Self::HostHeartbeat,
        Self::ComponentScaled,
        Self::ComponentScaleFailed,
        Self::ProviderStarted,
        Self::ProviderStartFailed,
        Self::ProviderStopped,
        Self::HealthCheckPassed,
        Self::HealthCheckFailed,
        Self::LinkdefSet,
        Self::LinkdefDeleted,
        Self::ConfigSet,
        Self::ConfigDeleted,
        Self::SecretAccessed,
    ];

    /// The snake_case name: the subject suffix and the end of the `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostStarted => "host_started",
            Self::HostStopped => "host_stopped",
            Self::HostHeartbeat => "host_heartbeat",
            Self::ComponentScaled => "component_scaled",
            Self::ComponentScaleFailed => "component_scale_failed",
            Self::ProviderStarted => "provider_started",
            Self::ProviderStartFailed => "provider_start_failed",
            Self::ProviderStopped => "provider_stopped",
            Self::HealthCheckPassed => "health_check_passed",
            Self::HealthCheckFailed => "health_check_failed",
            Self::LinkdefSet => "linkdef_set",
            Self::LinkdefDeleted => "linkdef_deleted",
            Self::ConfigSet => "config_set",
            Self::ConfigDeleted => "config_deleted",
            Self::SecretAccessed => "secret_accessed",
        }
    }

    /// The CloudEvent `type`, e.g. `com.wasmcloud.lattice.host_heartbeat`.
    pub fn cloud_event_type(self) -> String {
        format!("{EVENT_TYPE_PREFIX}{}", self.as_str())
    }

    /// The kind named by a snake_case name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind of a CloudEvent `type`, if it is a lattice event.
    pub fn from_cloud_event_type(ty: &str) -> Option<Self> {
        ty.strip_prefix(EVENT_TYPE_PREFIX).and_then(Self::from_name)
    }
}

/// A lattice event with its typed payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LatticeEvent {
    /// `host_started`.
    HostStarted(HostStarted),
    /// `host_stopped`.
    HostStopped(HostStopped),
    /// `host_heartbeat`.
    HostHeartbeat(HostHeartbeat),
    /// `component_scaled`.
    ComponentScaled(ComponentScaled),
    /// `component_scale_failed`.
    ComponentScaleFailed(ComponentScaleFailed),
    /// `provider_started`.
    ProviderStarted(ProviderStarted),
    /// `provider_start_failed`.
    ProviderStartFailed(ProviderStartFailed),
    /// `provider_stopped`.
    ProviderStopped(ProviderStopped),
    /// `health_check_passed`.
    HealthCheckPassed(ProviderHealthCheck),
    /// `health_check_failed`.
    HealthCheckFailed(ProviderHealthCheck),
    /// `linkdef_set`: the data is the link itself.
    LinkdefSet(Link),
    /// `linkdef_deleted`.
    LinkdefDeleted(LinkdefDeleted),
    /// `config_set`.
    ConfigSet(ConfigChanged),
    /// `config_deleted`.
    ConfigDeleted(ConfigChanged),
    /// `secret_accessed`: published by a host that refused a secret its
    /// component was not granted, and by the backend for every fetch.
    SecretAccessed(SecretAccessed),
}

impl LatticeEvent {
    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::HostStarted(_) => EventKind::HostStarted,
            Self::HostStopped(_) => EventKind::HostStopped,
            Self::HostHeartbeat(_) => EventKind::HostHeartbeat,
            Self::ComponentScaled(_) => EventKind::ComponentScaled,
            Self::ComponentScaleFailed(_) => EventKind::ComponentScaleFailed,
            Self::ProviderStarted(_) => EventKind::ProviderStarted,
            Self::ProviderStartFailed(_) => EventKind::ProviderStartFailed,
            Self::ProviderStopped(_) => EventKind::ProviderStopped,
            Self::HealthCheckPassed(_) => EventKind::HealthCheckPassed,
            Self::HealthCheckFailed(_) => EventKind::HealthCheckFailed,
            Self::LinkdefSet(_) => EventKind::LinkdefSet,
            Self::LinkdefDeleted(_) => EventKind::LinkdefDeleted,
            Self::ConfigSet(_) => EventKind::ConfigSet,
            Self::ConfigDeleted(_) => EventKind::ConfigDeleted,
            Self::SecretAccessed(_) => EventKind::SecretAccessed,
        }
    }

    /// Wraps the event for publishing from host `source`, stamped now with
    /// a fresh id.
    pub fn to_cloud_event(&self, source: &str) -> Result<CloudEvent, LatticeError> {
        self.to_cloud_event_at(source, Uuid::new_v4(), Utc::now())
    }

    /// Wraps the event with a given id and time (for tests and replays).
    pub fn to_cloud_event_at(
        &self,
        source: &str,
        id: Uuid,
        time: DateTime<Utc>,
    ) -> Result<CloudEvent, LatticeError> {
        let data = serde_json::to_value(self).map_err(|e| LatticeError::json("event data", e))?;
        Ok(CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: id.to_string(),
            source: source.to_owned(),
            ty: self.kind().cloud_event_type(),
            time: Some(time),
            datacontenttype: Some(DATA_CONTENT_TYPE.to_owned()),
            data,
        })
    }

    /// Decodes `data` as the payload of `kind`.
    fn from_data(kind: EventKind, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as de;
        Ok(match kind {
            EventKind::HostStarted => Self::HostStarted(de(data)?),
            EventKind::HostStopped => Self::HostStopped(de(data)?),
            EventKind::HostHeartbeat => Self::HostHeartbeat(de(data)?),
            EventKind::ComponentScaled => Self::ComponentScaled(de(data)?),
            EventKind::ComponentScaleFailed => Self::ComponentScaleFailed(de(data)?),
            EventKind::ProviderStarted => Self::ProviderStarted(de(data)?),
            EventKind::ProviderStartFailed => Self::ProviderStartFailed(de(data)?),
            EventKind::ProviderStopped => Self::ProviderStopped(de(data)?),
            EventKind::HealthCheckPassed => Self::HealthCheckPassed(de(data)?),
            EventKind::HealthCheckFailed => Self::HealthCheckFailed(de(data)?),
            EventKind::LinkdefSet => Self::LinkdefSet(de(data)?),
            EventKind::LinkdefDeleted => Self::LinkdefDeleted(de(data)?),
            EventKind::ConfigSet => Self::ConfigSet(de(data)?),
            EventKind::ConfigDeleted => Self::ConfigDeleted(de(data)?),
            EventKind::SecretAccessed => Self::SecretAccessed(de(data)?),
        })
    }

    /// Sets the payload's host id from the envelope when the data left it out.
    fn fill_host_id(&mut self, source: &str) {
        let host_id = match self {
            Self::HostStarted(e) => &mut e.host_id,
            Self::HostStopped(e) => &mut e.host_id,
            Self::HostHeartbeat(e) => &mut e.host_id,
            Self::ComponentScaled(e) => &mut e.host_id,
            Self::ComponentScaleFailed(e) => &mut e.host_id,
            Self::ProviderStarted(e) => &mut e.host_id,
            Self::ProviderStartFailed(e) => &mut e.host_id,
            Self::ProviderStopped(e) => &mut e.host_id,
            Self::HealthCheckPassed(e) | Self::HealthCheckFailed(e) => &mut e.host_id,
            Self::SecretAccessed(e) => &mut e.host_id,
            Self::LinkdefSet(_)
            | Self::LinkdefDeleted(_)
            | Self::ConfigSet(_)
            | Self::ConfigDeleted(_) => return,
        };
        if host_id.is_empty() {
            source.clone_into(host_id);
        }
    }
}

/// The CloudEvents 1.0 JSON envelope (structured mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event (a UUID).
    pub id: String,
    /// Who published it: the host id for host events.
    pub source: String,
    /// `com.wasmcloud.lattice.{kind}`.
    #[serde(rename = "type")]
    pub ty: String,
    /// When it happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Always `application/json` for lattice events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// Parses a received event envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self, LatticeError> {
        serde_json::from_slice(bytes).map_err(|e| LatticeError::json("CloudEvent", e))
    }

    /// Serializes the envelope for publishing.
    pub fn to_json(&self) -> Result<Vec<u8>, LatticeError> {
        serde_json::to_vec(self).map_err(|e| LatticeError::json("CloudEvent", e))
    }

    /// The kind of this event, or an error for types that are not lattice events.
    pub fn kind(&self) -> Result<EventKind, LatticeError> {
        EventKind::from_cloud_event_type(&self.ty).ok_or_else(|| LatticeError::UnknownEvent {
            ty: self.ty.clone(),
        })
    }

    /// Decodes the typed payload, taking the host id from `source` if the
    /// data does not carry one.
    pub fn parse(&self) -> Result<LatticeEvent, LatticeError> {
        let kind = self.kind()?;
        let mut event = LatticeEvent::from_data(kind, self.data.clone()).map_err(|source| {
            LatticeError::EventData {
                ty: self.ty.clone(),
                source,
            }
        })?;
        event.fill_host_id(&self.source);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(kind: EventKind) -> LatticeEvent {
        match kind {
            EventKind::HostStarted => LatticeEvent::HostStarted(HostStarted {
                host_id: "NHOST".into(),
                friendly_name: "quiet-river".into(),
                ..Default::default()
            }),
            EventKind::HostStopped => LatticeEvent::HostStopped(HostStopped {
                host_id: "NHOST".into(),
                ..Default::default()
            }),
            EventKind::HostHeartbeat => LatticeEvent::HostHeartbeat(HostHeartbeat {
                host_id: "NHOST".into(),
                uptime_seconds: 30,
                ..Default::default()
            }),
            EventKind::ComponentScaled => LatticeEvent::ComponentScaled(ComponentScaled {
                host_id: "NHOST".into(),
                component_id: "echo".into(),
                max_instances: 2,
                ..Default::default()
            }),
            EventKind::ComponentScaleFailed => {
                LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
                    host_id: "NHOST".into(),
                    error: "unsigned".into(),
                    ..Default::default()
                })
            }
            EventKind::ProviderStarted => LatticeEvent::ProviderStarted(ProviderStarted {
                host_id: "NHOST".into(),
                provider_id: "kv".into(),
                ..Default::default()
            }),
            EventKind::ProviderStartFailed => {
                LatticeEvent::ProviderStartFailed(ProviderStartFailed {
                    host_id: "NHOST".into(),
                    error: "no such file".into(),
                    ..Default::default()
                })
            }
            EventKind::ProviderStopped => LatticeEvent::ProviderStopped(ProviderStopped {
                host_id: "NHOST".into(),
                reason: "stop".into(),
                ..Default::default()
            }),
            EventKind::HealthCheckPassed => LatticeEvent::HealthCheckPassed(ProviderHealthCheck {
                host_id: "NHOST".into(),
                provider_id: "kv".into(),
                message: None,
            }),
            EventKind::HealthCheckFailed => LatticeEvent::HealthCheckFailed(ProviderHealthCheck {
                host_id: "NHOST".into(),
                provider_id: "kv".into(),
                message: Some("redis down".into()),
            }),
            EventKind::LinkdefSet => LatticeEvent::LinkdefSet(Link {
                source_id: "counter".into(),
                target: "kv".into(),
                name: "default".into(),
                wit_namespace: "wasi".into(),
                wit_package: "keyvalue".into(),
                interfaces: vec!["store".into()],
                ..Default::default()
            }),
            EventKind::LinkdefDeleted => LatticeEvent::LinkdefDeleted(LinkdefDeleted {
                source_id: "counter".into(),
                name: "default".into(),
                ..Default::default()
            }),
            EventKind::ConfigSet => LatticeEvent::ConfigSet(ConfigChanged {
                config_name: "cfg".into(),
            }),
            EventKind::ConfigDeleted => LatticeEvent::ConfigDeleted(ConfigChanged {
                config_name: "cfg".into(),
            }),
            EventKind::SecretAccessed => LatticeEvent::SecretAccessed(SecretAccessed {
                secret: "db".into(),
                entity_id: "counter".into(),
                host_id: "NHOST".into(),
                allowed: true,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn every_kind_round_trips_through_a_cloud_event() {
        for kind in EventKind::ALL {
            let event = sample(kind);
            assert_eq!(event.kind(), kind);
            let envelope = event.to_cloud_event("NHOST").unwrap();
            assert_eq!(
                envelope.ty,
                format!("com.wasmcloud.lattice.{}", kind.as_str())
            );
            let bytes = envelope.to_json().unwrap();
            let back = CloudEvent::from_json(&bytes).unwrap();
            assert_eq!(back, envelope);
            assert_eq!(back.parse().unwrap(), event, "{kind:?}");
        }
    }

    #[test]
    fn kind_names_parse_back() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(
                EventKind::from_cloud_event_type(&kind.cloud_event_type()),
                Some(kind)
            );
        }
        assert_eq!(EventKind::from_name("refmap_set"), None);
    }

    #[test]
    fn host_id_is_taken_from_source_when_data_lacks_it() {
        let envelope = CloudEvent {
            specversion: SPEC_VERSION.into(),
            id: "1".into(),
            source: "NSOURCE".into(),
            ty: EventKind::ComponentScaled.cloud_event_type(),
            time: None,
            datacontenttype: None,
            data: json!({"component_id": "echo", "max_instances": 1}),
        };
        let LatticeEvent::ComponentScaled(scaled) = envelope.parse().unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(scaled.host_id, "NSOURCE");
    }

    #[test]
    fn unknown_event_types_are_refused_by_name() {
        let envelope = CloudEvent {
            specversion: SPEC_VERSION.into(),
            id: "1".into(),
            source: "N".into(),
            ty: "com.wasmcloud.lattice.refmap_set".into(),
            time: None,
            datacontenttype: None,
            data: json!({}),
        };
        let err = envelope.parse().unwrap_err().to_string();
        assert!(err.contains("refmap_set"), "{err}");
    }

    #[test]
    fn data_of_the_wrong_shape_is_refused() {
        let envelope = CloudEvent {
            specversion: SPEC_VERSION.into(),
            id: "1".into(),
            source: "N".into(),
            ty: EventKind::ConfigSet.cloud_event_type(),
            time: None,
            datacontenttype: None,
            data: json!({"config_name": 42}),
        };
        assert!(matches!(
            envelope.parse(),
            Err(LatticeError::EventData { .. })
        ));
    }
}
