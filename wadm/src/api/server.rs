//! Serving the API: one queue subscription on `wadm.api.{lattice}.model.>`,
//! each request handled on its own task against the shared store.

use futures::StreamExt;
use serde::Serialize;

use super::{
    ApiReply, ApiResult, AppSummary, Deployed, QUEUE_GROUP, StatusReport, VersionRequest,
    VersionSummary, model_prefix,
};
use crate::manifest::Manifest;
use crate::observe::LatticeReader;
use crate::planner::{PlanAction, PlanReport, plan, plan_undeploy};
use crate::store::{AppStatus, DeployStatus, ManifestStore, StoreError};

/// Answers API requests for `lattice` until the NATS connection closes;
/// `reader` reads the lattice for `plan`.
pub async fn serve(
    nats: async_nats::Client,
    lattice: &str,
    store: ManifestStore,
    reader: LatticeReader,
) -> Result<(), async_nats::SubscribeError> {
    let prefix = model_prefix(lattice);
    let mut requests = nats
        .queue_subscribe(format!("{prefix}.>"), QUEUE_GROUP.to_owned())
        .await?;
    tracing::info!(subject = %format!("{prefix}.>"), "serving the wadm API");
    while let Some(message) = requests.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let operation = message
            .subject
            .strip_prefix(prefix.as_str())
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or_default()
            .to_owned();
        let store = store.clone();
        let reader = reader.clone();
        let nats = nats.clone();
        tokio::spawn(async move {
            let reply = match operation.strip_prefix("plan.") {
                Some(what) => plan_reply(&store, &reader, what, &message.payload).await,
                None => handle(&store, &operation, &message.payload).await,
            };
            // A reply too large for one message (the list of very many
            // manifests) is offered in chunks.
            let limits = trellis_lattice::chunk::ChunkLimits::default();
            let sent = trellis_lattice::chunk::publish(
                &nats,
                reply_to,
                async_nats::HeaderMap::new(),
                reply.into(),
                &limits,
            )
            .await;
            if let Err(err) = sent {
                tracing::warn!(error = %err, operation, "could not send an API reply");
            }
        });
    }
    Ok(())
}

/// The JSON reply to one request.
async fn handle(store: &ManifestStore, operation: &str, body: &[u8]) -> Vec<u8> {
    let (verb, name) = match operation.split_once('.') {
        Some((verb, name)) => (verb, Some(name)),
        None => (operation, None),
    };
    tracing::debug!(verb, name, "API request");
    match (verb, name) {
        ("put", None) => match std::str::from_utf8(body) {
            Ok(text) => reply(store.put(text).await, |o| {
                if o.created {
                    format!("stored `{}` version {}", o.name, o.version)
                } else {
                    format!("`{}` version {} was already stored", o.name, o.version)
                }
            }),
            Err(_) => error("the manifest is not UTF-8 text"),
        },
        ("list", None) => reply(list(store).await, |apps| format!("{} apps", apps.len())),
        ("get", Some(name)) => match version_request(body) {
            Ok(request) => reply(store.get(name, request.version.as_deref()).await, |v| {
                format!("`{name}` version {}", v.version)
            }),
            Err(message) => error(&message),
        },
        ("versions", Some(name)) => reply(versions(store, name).await, |v| {
            format!("`{name}` has {} versions", v.len())
        }),
        ("del", Some(name)) => reply(store.delete(name).await, |()| {
            format!("deleted `{name}`; what it ran is being removed")
        }),
        ("deploy", Some(name)) => match version_request(body) {
            Ok(request) => reply(
                store
                    .deploy(name, request.version.as_deref())
                    .await
                    .map(|version| Deployed {
                        name: name.to_owned(),
                        version,
                    }),
                |d| format!("deploying `{}` version {}", d.name, d.version),
            ),
            Err(message) => error(&message),
        },
        ("rollback", Some(name)) => reply(
            store.rollback(name).await.map(|version| Deployed {
                name: name.to_owned(),
                version,
            }),
            |d| format!("rolling `{}` back to version {}", d.name, d.version),
        ),
        ("undeploy", Some(name)) => reply(store.undeploy(name).await, |()| {
            format!("undeploying `{name}`")
        }),
        ("status", Some(name)) => reply(status(store, name).await, |s| {
            format!("`{name}` is {}", s.status.status.as_str())
        }),
        _ => error(&format!(
            "unknown wadm API operation `{operation}`; expected put, list, get.{{name}}, \
             versions.{{name}}, del.{{name}}, deploy.{{name}}, rollback.{{name}}, \
             undeploy.{{name}}, status.{{name}}, plan.deploy or plan.undeploy.{{name}}"
        )),
    }
}

/// The reply to `plan.{what}`: `deploy` with a manifest, `undeploy.{name}`.
async fn plan_reply(
    store: &ManifestStore,
    reader: &LatticeReader,
    what: &str,
    body: &[u8],
) -> Vec<u8> {
    let report = async {
        let (action, name, manifest) = match what.split_once('.') {
            None if what == "deploy" => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| String::from("the manifest is not UTF-8 text"))?;
                let manifest = Manifest::parse(text).map_err(|e| e.to_string())?;
                (PlanAction::Deploy, manifest.name.clone(), Some(manifest))
            }
            Some(("undeploy", name)) => (PlanAction::Undeploy, name.to_owned(), None),
            _ => {
                return Err(format!(
                    "unknown plan `{what}`; expected plan.deploy (the manifest as the body) \
                     or plan.undeploy.{{name}}"
                ));
            }
        };
        let stored = store.app(&name).await.map_err(|e| e.to_string())?;
        if manifest.is_none() && stored.is_none() {
            return Err(StoreError::NoSuchApp(name).to_string());
        }
        let lattice = reader.snapshot().await.map_err(|e| e.to_string())?;
        let deployed = stored.and_then(|app| app.deployed);
        Ok(match manifest {
            Some(manifest) => PlanReport::new(
                &name,
                action,
                Some(manifest.version.clone()),
                deployed,
                &plan(&manifest, &lattice),
                &lattice,
            ),
            None => PlanReport::new(
                &name,
                action,
                None,
                deployed,
                &plan_undeploy(&name, &lattice),
                &lattice,
            ),
        })
    }
    .await;
    match report {
        Ok(report) => to_json(&ApiReply {
            result: ApiResult::Success,
            message: if report.is_empty() {
                format!("no changes for `{}`", report.app)
            } else {
                format!("the plan for `{}`", report.app)
            },
            response: Some(report),
        }),
        Err(message) => error(&message),
    }
}

fn version_request(body: &[u8]) -> Result<VersionRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(VersionRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("the request body is not {{\"version\": …}}: {e}"))
}

async fn list(store: &ManifestStore) -> Result<Vec<AppSummary>, StoreError> {
    let mut summaries = Vec::new();
    for app in store.list().await? {
        let status = store.status(&app.name).await?;
        summaries.push(AppSummary {
            latest_version: app
                .versions
                .last()
                .map(|v| v.version.clone())
                .unwrap_or_default(),
            deployed_version: app.deployed.clone(),
            name: app.name,
            status,
        });
    }
    Ok(summaries)
}

async fn versions(store: &ManifestStore, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
    let app = store
        .app(name)
        .await?
        .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
    Ok(app
        .versions
        .iter()
        .map(|v| VersionSummary {
            version: v.version.clone(),
            put_at: v.put_at,
            deployed: app.deployed.as_ref() == Some(&v.version),
        })
        .collect())
}

async fn status(store: &ManifestStore, name: &str) -> Result<StatusReport, StoreError> {
    let app = store
        .app(name)
        .await?
        .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
    let status = store
        .status(name)
        .await?
        .unwrap_or_else(|| AppStatus::now(DeployStatus::Undeployed, None, Vec::new()));
    Ok(StatusReport {
        name: app.name,
        deployed_version: app.deployed,
        status,
    })
}

fn reply<T: Serialize>(
    result: Result<T, StoreError>,
    message: impl FnOnce(&T) -> String,
) -> Vec<u8> {
    match result {
        Ok(value) => to_json(&ApiReply {
            result: ApiResult::Success,
            message: message(&value),
            response: Some(value),
        }),
        Err(err) => error(&err.to_string()),
    }
}

fn error(message: &str) -> Vec<u8> {
    to_json(&ApiReply::<()> {
        result: ApiResult::Error,
        message: message.to_owned(),
        response: None,
    })
}

fn to_json<T: Serialize>(reply: &ApiReply<T>) -> Vec<u8> {
    // Every reply type is plain data with string keys, which always encodes.
    serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(r#"{{"result":"error","message":"encoding the reply failed: {e}"}}"#).into_bytes()
    })
}
