//! `trellis-secrets-nats-kv`: a secrets backend that keeps values in a
//! JetStream KV bucket, sealed with a curve25519 key (nkeys xkeys) that
//! never leaves its machine.
//!
//! It is a provider process run beside the lattice's hosts, with its own
//! NATS user (the `secrets` role in `deploy/nats/roles.conf`): unlike a
//! provider a host starts, it needs JetStream. It serves:
//!
//! - `{lattice}.{id}.rpc.trellis:secrets/backend.get`, the fetch a host
//!   makes for a component or provider. The call must carry a host's
//!   invocation signature (the provider SDK checks it against
//!   `--cluster-issuers`), and its [`SecretRequest`] the caller's claims
//!   JWT, whose signature is checked here and whose subject (with the app)
//!   the secret's access rules must name. The value goes back sealed for
//!   the key the request names.
//! - `trellis.secrets.v1.{lattice}.{id}.{op}`, what `wash secrets` sends
//!   (see [`trellis_lattice::secret::AdminOp`]).
//!
//! Every fetch is published as a `secret_accessed` event. Values are
//! stored per name ([`entry::Entry`]); a put replaces the value, and its
//! KV revision is the version. `rotate-key` makes a new key current,
//! re-seals every value with it, and only then retires the old one:
//! values stay readable throughout, and a rotation cut short by a crash is
//! finished by the next one.

pub mod entry;
pub mod keyring;

use std::sync::Arc;

use async_nats::jetstream::kv;
use base64::Engine as _;
use futures::StreamExt;
use tokio::sync::RwLock;
use trellis_claims::{Policy, Token, XKey};
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_lattice::secret::{
    self, AccessRule, AdminOp, BackendKey, DeleteSecret, MAX_SECRET_BYTES, PutOutcome, PutSecret,
    RotateOutcome, SealedSecret, SecretAccessed, SecretInfo, SecretRequest, SecretValue,
};
use trellis_lattice::{LatticeEvent, Link};
use trellis_provider_sdk::{IncomingCall, Provider, ProviderHandle, ProviderLink, reply};

use entry::Entry;
use keyring::Keyring;

/// The bucket a backend uses on `lattice` unless told otherwise.
pub fn default_bucket(lattice: &str) -> String {
    format!("SECRETS_{lattice}")
}

/// How many times a re-seal retries a value that changed under it.
const RESEAL_ATTEMPTS: usize = 5;

/// The backend: its bucket, its keys, and whose claims it accepts.
pub struct Backend {
    handle: ProviderHandle,
    kv: kv::Store,
    keys: RwLock<Keyring>,
    /// Held for a whole rotation, so two never interleave; fetches and
    /// puts go on meanwhile, under `keys`' read lock.
    rotating: tokio::sync::Mutex<()>,
    /// Checks callers' claims: their issuers and validity.
    claims: Policy,
}

impl Backend {
    /// A backend on `kv` with the keys in `keys`, accepting claims that
    /// `claims` admits.
    pub fn new(handle: ProviderHandle, kv: kv::Store, keys: Keyring, claims: Policy) -> Self {
        Backend {
            handle,
            kv,
            keys: RwLock::new(keys),
            rotating: tokio::sync::Mutex::new(()),
            claims,
        }
    }

    /// Serves the administration subjects until the connection closes.
    pub async fn serve_admin(self: Arc<Self>) -> Result<(), String> {
        let nats = self.handle.nats().clone();
        let lattice = self.handle.subjects().lattice().to_owned();
        let id = self.handle.provider_id().to_owned();
        let mut subscriptions = futures::stream::SelectAll::new();
        for op in AdminOp::ALL {
            let subject = op.subject(&lattice, &id).map_err(|e| e.to_string())?;
            let subscriber = nats
                .subscribe(subject.clone())
                .await
                .map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
            subscriptions.push(subscriber.map(move |message| (op, message)));
        }
        nats.flush().await.map_err(|e| e.to_string())?;
        while let Some((op, message)) = subscriptions.next().await {
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let backend = Arc::clone(&self);
            // Rotation takes a while; the rest are quick, but none should
            // wait behind it.
            tokio::spawn(async move {
                let body = backend.admin(op, &message.payload).await;
                if let Err(err) = backend.handle.nats().publish(reply_to, body.into()).await {
                    tracing::warn!(error = %err, "cannot reply to an admin request");
                }
            });
        }
        Ok(())
    }

    async fn admin(&self, op: AdminOp, payload: &[u8]) -> Vec<u8> {
        fn respond<T: serde::Serialize>(result: Result<T, String>) -> Vec<u8> {
            let response = match result {
                Ok(value) => CtlResponse::ok(value),
                Err(message) => CtlResponse::error(message),
            };
            serde_json::to_vec(&response).unwrap_or_default()
        }
        fn body<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
            serde_json::from_slice(payload)
                .map_err(|e| format!("the request is not valid JSON for its operation: {e}"))
        }
        match op {
            AdminOp::Xkey => respond(Ok(BackendKey {
                xkey: self.keys.read().await.current().public_key(),
            })),
            AdminOp::Put => respond(match body::<PutSecret>(payload) {
                Ok(put) => self.put(put).await,
                Err(e) => Err(e),
            }),
            AdminOp::List => respond(self.list().await),
            AdminOp::Del => respond(match body::<DeleteSecret>(payload) {
                Ok(del) => self.delete(&del.name).await.map(|()| del),
                Err(e) => Err(e),
            }),
            AdminOp::RotateKey => respond(self.rotate().await),
        }
    }

    async fn put(&self, put: PutSecret) -> Result<PutOutcome, String> {
        secret::validate_secret_name(&put.name).map_err(|e| e.to_string())?;
        for rule in &put.allow {
            AccessRule::parse(&rule.to_string()).map_err(|e| format!("`allow`: {e}"))?;
        }
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&put.sealed)
            .map_err(|e| format!("`sealed` is not base64: {e}"))?;
        if sealed.len() > MAX_SECRET_BYTES + 1024 {
            return Err(format!(
                "the value is larger than {MAX_SECRET_BYTES} bytes, the most a secret may hold"
            ));
        }
        let sender = XKey::from_public_key(&put.sender_xkey)
            .map_err(|e| format!("`sender_xkey` is not a curve25519 public key: {e}"))?;
        let keys = self.keys.read().await;
        let plain = keys.current().open(&sealed, &sender).map_err(|_| {
            format!(
                "the value is not sealed for this backend's key {}; ask for the key again \
                     (`xkey`) and seal for it",
                keys.current().public_key()
            )
        })?;
        let value = SecretValue::decode(&plain).map_err(|e| e.to_string())?;
        if value.as_bytes().len() > MAX_SECRET_BYTES {
            return Err(format!(
                "the value holds {} bytes; a secret may hold at most {MAX_SECRET_BYTES}",
                value.as_bytes().len()
            ));
        }
        let entry = Entry::seal(&value, keys.current(), put.allow)?;
        let version = self
            .kv
            .put(&put.name, entry.encode().into())
            .await
            .map_err(|e| format!("cannot store `{}`: {e}", put.name))?;
        tracing::info!(secret = %put.name, version, "secret stored");
        Ok(PutOutcome {
            name: put.name,
            version,
        })
    }

    async fn list(&self) -> Result<Vec<SecretInfo>, String> {
        let mut infos = Vec::new();
        for name in self.names().await? {
            if let Some((entry, version)) = self.read(&name).await? {
                infos.push(SecretInfo {
                    name,
                    version,
                    kind: entry.kind,
                    allow: entry.allow,
                    sealed_with: entry.kid,
                });
            }
        }
        Ok(infos)
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        secret::validate_secret_name(name).map_err(|e| e.to_string())?;
        if self.read(name).await?.is_none() {
            return Err(format!(
                "there is no secret `{name}`; `wash secrets list` shows them"
            ));
        }
        // Purged, not just deleted: no sealed copy stays behind.
        self.kv
            .purge(name)
            .await
            .map_err(|e| format!("cannot delete `{name}`: {e}"))?;
        tracing::info!(secret = %name, "secret deleted");
        Ok(())
    }

    async fn rotate(&self) -> Result<RotateOutcome, String> {
        let _one_at_a_time = self.rotating.lock().await;
        // The write lock is held only to change the ring: once the new key
        // is current, every put seals with it, and every fetch opens with
        // whichever key its entry names, both still held.
        let retiring = {
            let mut keys = self.keys.write().await;
            let retiring = keys.current().public_key();
            keys.begin_rotation()?;
            retiring
        };
        let keys = self.keys.read().await;
        let current = keys.current().public_key();
        let mut resealed = 0;
        for name in self.names().await? {
            for attempt in 1..=RESEAL_ATTEMPTS {
                let Some(stored) = self.kv.entry(&name).await.map_err(|e| e.to_string())? else {
                    break;
                };
                if stored.operation != kv::Operation::Put {
                    break;
                }
                let entry = Entry::decode(&stored.value)?;
                if entry.kid == current {
                    break;
                }
                let key = keys.find(&entry.kid).ok_or_else(|| {
                    format!(
                        "secret `{name}` is sealed with {}, a key this backend no longer holds; \
                         put it again",
                        entry.kid
                    )
                })?;
                let value = entry.open(key)?;
                let fresh = Entry::seal(&value, keys.current(), entry.allow)?;
                match self
                    .kv
                    .update(&name, fresh.encode().into(), stored.revision)
                    .await
                {
                    Ok(_) => {
                        resealed += 1;
                        break;
                    }
                    Err(err) if attempt < RESEAL_ATTEMPTS => {
                        tracing::debug!(secret = %name, error = %err, "changed while re-sealing; again");
                    }
                    Err(err) => return Err(format!("cannot re-seal `{name}`: {err}")),
                }
            }
        }
        drop(keys);
        // Fetches that read an entry under the old key finish before it
        // goes: they hold the read lock this waits for.
        let retired = self.keys.write().await.retire()?;
        tracing::info!(xkey = %current, resealed, retired = ?retired, "sealing key rotated");
        Ok(RotateOutcome {
            xkey: current,
            retired: retiring,
            resealed,
        })
    }

    async fn names(&self) -> Result<Vec<String>, String> {
        let mut keys = match self.kv.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(format!("cannot list the bucket: {e}")),
        };
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| format!("cannot list the bucket: {e}"))?);
        }
        names.sort();
        Ok(names)
    }

    /// The entry stored under `name` and its version, if any.
    async fn read(&self, name: &str) -> Result<Option<(Entry, u64)>, String> {
        match self.kv.entry(name).await {
            Ok(Some(stored)) if stored.operation == kv::Operation::Put => {
                Ok(Some((Entry::decode(&stored.value)?, stored.revision)))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(format!("cannot read `{name}`: {e}")),
        }
    }

    /// Serves one fetch for `entity_id`, and reports it.
    async fn fetch(
        &self,
        entity_id: &str,
        request: SecretRequest,
    ) -> Result<Option<SealedSecret>, RpcError> {
        let mut audit = SecretAccessed {
            secret: request.key.clone(),
            backend: self.handle.provider_id().to_owned(),
            entity_id: entity_id.to_owned(),
            app: request.app.clone(),
            ..Default::default()
        };
        let outcome = self.answer(&request, &mut audit).await;
        audit.allowed = matches!(outcome, Ok(Some(_)));
        if let Err(err) = &outcome {
            audit.reason = Some(err.message.clone());
        } else if !audit.allowed {
            audit.reason = Some("no such secret".into());
        }
        self.publish(audit).await;
        outcome
    }

    async fn answer(
        &self,
        request: &SecretRequest,
        audit: &mut SecretAccessed,
    ) -> Result<Option<SealedSecret>, RpcError> {
        let refused = |message: String| RpcError::new(RpcErrorKind::Refused, message);
        secret::validate_secret_name(&request.key).map_err(|e| refused(e.to_string()))?;
        let subject = match &request.entity_jwt {
            None => None,
            Some(jwt) => {
                let token = Token::<serde_json::Value>::decode(jwt)
                    .map_err(|e| refused(format!("the caller's claims do not verify: {e}")))?;
                self.claims
                    .check(&token.claims, trellis_claims::now_unix())
                    .map_err(|e| refused(format!("the caller's claims are not accepted: {e}")))?;
                Some(token.claims.sub)
            }
        };
        audit.subject.clone_from(&subject);
        let failed = |e: String| RpcError::new(RpcErrorKind::Application, e);
        // The keys first: a rotation cannot retire the key the entry names
        // between reading it and opening it.
        let keys = self.keys.read().await;
        let Some((entry, version)) = self.read(&request.key).await.map_err(failed)? else {
            return Ok(None);
        };
        let allowed = entry
            .allow
            .iter()
            .any(|rule| rule.allows(subject.as_deref(), request.app.as_deref()));
        if !allowed {
            let who = match &subject {
                Some(subject) => format!("subject {subject}"),
                None => "unsigned code".to_owned(),
            };
            let app = request
                .app
                .as_deref()
                .map_or_else(String::new, |app| format!(" in app `{app}`"));
            return Err(refused(format!(
                "secret `{}` is not readable by `{}` ({who}{app}): no access rule names it; put \
                 it again with `--allow SUBJECT[@APP]` to grant it",
                request.key, audit.entity_id
            )));
        }
        if let Some(wanted) = request.version
            && wanted != version
        {
            return Err(failed(format!(
                "version {wanted} of secret `{}` is gone: the current one is {version}, and this \
                 backend keeps only the current one; pin {version} or no version",
                request.key
            )));
        }
        let recipient = XKey::from_public_key(&request.reply_xkey)
            .map_err(|e| refused(format!("`reply_xkey` is not a curve25519 public key: {e}")))?;
        let key = keys.find(&entry.kid).ok_or_else(|| {
            failed(format!(
                "secret `{}` is sealed with {}, a key this backend does not hold",
                request.key, entry.kid
            ))
        })?;
        let value = entry.open(key).map_err(failed)?;
        let plain = value.encode().map_err(|e| failed(e.to_string()))?;
        let sealed = keys
            .current()
            .seal(&plain, &recipient)
            .map_err(|e| failed(format!("cannot seal the reply: {e}")))?;
        Ok(Some(SealedSecret {
            version,
            sender_xkey: keys.current().public_key(),
            sealed,
        }))
    }

    async fn publish(&self, audit: SecretAccessed) {
        let subject = self
            .handle
            .subjects()
            .event(trellis_lattice::EventKind::SecretAccessed);
        let event = LatticeEvent::SecretAccessed(audit);
        let bytes = match event
            .to_cloud_event(self.handle.provider_id())
            .and_then(|e| e.to_json())
        {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode an audit event");
                return;
            }
        };
        if let Err(err) = self.handle.nats().publish(subject, bytes.into()).await {
            tracing::warn!(error = %err, "cannot publish an audit event");
        }
    }
}

/// The backend as the provider SDK serves it: one function, no links.
pub struct BackendProvider(pub Arc<Backend>);

impl Provider for BackendProvider {
    async fn link_put(&self, _link: &ProviderLink) -> Result<(), String> {
        Err(
            "a secrets backend is not linked to; components name it in their secret references"
                .into(),
        )
    }

    async fn link_del(&self, _link: &Link) {}

    async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
        if call.function.to_string() != secret::BACKEND_GET {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!(
                    "a secrets backend serves only {}, not {}",
                    secret::BACKEND_GET,
                    call.function
                ),
            ));
        }
        let request: SecretRequest = trellis_lattice::rpc::decode(&call.body)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let answer = self.0.fetch(&call.headers.source_id, request).await?;
        reply(&answer)
    }

    async fn health(&self) -> Result<(), String> {
        self.0
            .kv
            .status()
            .await
            .map(drop)
            .map_err(|e| format!("the secrets bucket is unreachable: {e}"))
    }
}
