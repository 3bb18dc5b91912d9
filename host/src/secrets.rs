//! `wasmcloud:secrets`: a component's granted secrets, fetched from their
//! backend when it asks and only then.
//!
//! A component is granted the secrets its config lists as references
//! (`SECRET_{name}`, see [`trellis_lattice::secret`]). On `store.get` the
//! host refuses a name not granted, and otherwise calls the reference's
//! backend for the component: the call is signed like every call the host
//! makes for it, and carries the component's claims JWT, its app, and this
//! host's public curve25519 key. The value comes back sealed for that key
//! and is opened here, into the instance's resource table, where `reveal`
//! reads it. Nothing is cached: the next call sees a new value.
//!
//! Every refusal here is a `secret_accessed` event; the backend publishes
//! one for every fetch it answers.

use std::sync::Arc;

use trellis_claims::XKey;
use trellis_lattice::LatticeEvent;
use trellis_lattice::link::DEFAULT_LINK_NAME;
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind};
use trellis_lattice::secret::{
    self, SealedSecret, SecretAccessed, SecretRef, SecretRefs, SecretRequest, SecretValue,
};

use crate::events::EventPublisher;
use crate::imports::ImportRouter;

/// What this host needs to fetch secrets: its key for replies, and where
/// refusals are reported.
pub struct SecretsDesk {
    xkey: XKey,
    events: EventPublisher,
    host_id: String,
}

impl SecretsDesk {
    /// A desk with a fresh key: it lives as long as the host process, so a
    /// reply sealed for it cannot be opened by anyone after it stops.
    pub fn new(events: EventPublisher, host_id: String) -> Self {
        SecretsDesk {
            xkey: XKey::new(),
            events,
            host_id,
        }
    }
}

/// Who a component is, for its secrets' backends, and what it was granted.
#[derive(Debug, Default)]
pub struct SecretGrant {
    /// Its lattice id.
    pub entity_id: String,
    /// Its claims JWT; `None` when it runs unsigned.
    pub jwt: Option<String>,
    /// Its claims subject, for audit events.
    pub subject: Option<String>,
    /// Its app, from wadm's annotation.
    pub app: Option<String>,
    /// The references its config lists, by name.
    pub refs: SecretRefs,
}

/// Why `store.get` failed, as `wasmcloud:secrets/store.secrets-error` has it.
#[derive(Debug)]
pub enum SecretsFailure {
    /// No such secret for this component.
    NotFound,
    /// The backend refused or failed; the message says why.
    Upstream(String),
}

impl ImportRouter {
    /// Fetches secret `name` for the component `grant` describes.
    pub(crate) async fn fetch_secret(
        &self,
        grant: &SecretGrant,
        name: &str,
    ) -> Result<SecretValue, SecretsFailure> {
        let Some(desk) = self.secrets_desk() else {
            return Err(SecretsFailure::Upstream(
                "this host serves no secrets".into(),
            ));
        };
        let Some(reference) = grant.refs.get(name) else {
            let reason = format!(
                "secret `{name}` is not granted to component `{}`; list it in the component's \
                 `secrets` in its manifest (or put the reference config `SECRET_{name}` and add \
                 it to the component's config)",
                grant.entity_id
            );
            desk.audit(grant, name, "", Some(reason.clone())).await;
            return Err(SecretsFailure::Upstream(reason));
        };
        let sealed = self
            .fetch_sealed(grant, reference, &desk.xkey.public_key())
            .await
            .map_err(SecretsFailure::Upstream)?
            .ok_or(SecretsFailure::NotFound)?;
        desk.open(&sealed).map_err(|why| {
            SecretsFailure::Upstream(format!("backend `{}`: {why}", reference.backend))
        })
    }

    /// Asks `reference`'s backend for its value on behalf of `grant`'s
    /// component or provider, sealed for `reply_xkey`; `None` when the
    /// backend holds no such secret, and the error says why it gave none.
    pub(crate) async fn fetch_sealed(
        &self,
        grant: &SecretGrant,
        reference: &SecretRef,
        reply_xkey: &str,
    ) -> Result<Option<SealedSecret>, String> {
        let request = SecretRequest {
            key: reference.key.clone(),
            version: reference.version,
            entity_jwt: grant.jwt.clone(),
            app: grant.app.clone(),
            reply_xkey: reply_xkey.to_owned(),
        };
        let body = rpc::encode(&request).map_err(|e| e.to_string())?;
        self.send_to(
            &reference.backend,
            (&grant.entity_id, DEFAULT_LINK_NAME),
            &secret::backend_get(),
            &body.into(),
        )
        .await
        .and_then(|bytes| rpc::decode_reply::<Option<SealedSecret>>(&bytes))
        .map_err(|err| describe(&reference.backend, &err))
    }
}

fn describe(backend: &str, err: &RpcError) -> String {
    match err.kind {
        RpcErrorKind::NoTarget => format!(
            "no secrets backend `{backend}` answers on this lattice; start it (see the README's \
             Secrets section)"
        ),
        _ => format!("secrets backend `{backend}`: {}", err.message),
    }
}

impl SecretsDesk {
    /// Opens a reply sealed for this host.
    fn open(&self, sealed: &SealedSecret) -> Result<SecretValue, String> {
        let sender = XKey::from_public_key(&sealed.sender_xkey)
            .map_err(|e| format!("the reply's sender key is not a curve25519 public key: {e}"))?;
        let plain = self
            .xkey
            .open(&sealed.sealed, &sender)
            .map_err(|_| "the reply was not sealed for this host".to_owned())?;
        SecretValue::decode(&plain).map_err(|e| format!("the opened reply does not decode: {e}"))
    }

    /// Publishes a refusal of `name` for `grant`'s component.
    async fn audit(&self, grant: &SecretGrant, name: &str, backend: &str, reason: Option<String>) {
        self.events
            .publish(LatticeEvent::SecretAccessed(SecretAccessed {
                secret: name.to_owned(),
                backend: backend.to_owned(),
                entity_id: grant.entity_id.clone(),
                subject: grant.subject.clone(),
                host_id: self.host_id.clone(),
                app: grant.app.clone(),
                allowed: false,
                reason,
            }))
            .await;
    }
}

/// The grant for a component, shared by its instances.
pub(crate) type SharedGrant = Arc<SecretGrant>;
