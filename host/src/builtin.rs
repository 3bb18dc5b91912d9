//! Interfaces every host serves itself, with no link and no provider:
//!
//! - `wasi:logging/logging`: entries go to the host's log under the
//!   component's id, within its log budget ([`crate::guest_log`]).
//! - `wasi:config/store` (and the older `wasi:config/runtime`): the
//!   component's named config, merged, as it was when the instance was
//!   created.
//! - `wasmcloud:bus/lattice` 1.x and 2.x: `set-link-name` picks the link
//!   that the instance's following calls to the named interfaces go by.
//! - `wasmcloud:secrets/store` and `/reveal` (0.1.0-draft): `get` fetches
//!   a granted secret into an opaque handle ([`crate::secrets`]), and
//!   `reveal` gives its value.
//!
//! Each is defined by name and shape rather than from generated bindings,
//! so every published version of these drafts links: they differ in their
//! version strings, not in the functions a host must supply.

use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Linker, LinkerInstance, Resource, ResourceType, Val};

use crate::HostError;
use crate::engine::InstanceState;
use crate::secrets::SecretsFailure;
use trellis_lattice::link::DEFAULT_LINK_NAME;
use trellis_lattice::secret::SecretValue;
use trellis_lattice::wit::WitInterface;

const LOGGING: &str = "wasi:logging/logging";
/// The longest link name or WIT name part `set-link-name` and
/// `call-target-interface` accept; guests choose these strings.
const MAX_NAME_BYTES: usize = 256;
/// The most interfaces one `set-link-name` call may name.
const MAX_INTERFACES: usize = 64;
/// The most secrets one instance may hold handles to at once: each holds
/// up to 64 KiB, so a guest that never drops them holds at most 4 MiB.
const MAX_OPEN_SECRETS: usize = 64;
const CONFIG: &[&str] = &["wasi:config/store", "wasi:config/runtime"];
const BUS: &str = "wasmcloud:bus/lattice";
const SECRETS_STORE: &str = "wasmcloud:secrets/store";
const SECRETS_REVEAL: &str = "wasmcloud:secrets/reveal";

/// Whether the host serves import `name` (`ns:pkg/iface@version`) itself.
pub fn serves(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap_or(name);
    [LOGGING, BUS, SECRETS_STORE, SECRETS_REVEAL].contains(&unversioned)
        || CONFIG.contains(&unversioned)
}

/// Defines the import `name` (one that [`serves`] accepts), of type
/// `item`, in `linker`.
pub fn add(
    linker: &mut Linker<InstanceState>,
    name: &str,
    item: &ComponentItem,
    engine: &wasmtime::Engine,
) -> Result<(), HostError> {
    let unversioned = name.split('@').next().unwrap_or(name);
    let mut instance = linker.instance(name).map_err(invalid)?;
    match unversioned {
        LOGGING => add_logging(&mut instance),
        BUS => add_bus(&mut instance, name, item, engine),
        SECRETS_STORE => add_secrets_store(&mut instance),
        SECRETS_REVEAL => add_secrets_reveal(&mut instance),
        _ => {
            // The results are written by position: refuse a look-alike
            // whose functions do not return one value each.
            for function in ["get", "get-all"] {
                // A component imports only the functions it calls.
                if function_type(item, engine, function).is_some_and(|f| f.results().len() != 1) {
                    return Err(HostError::InvalidComponent(format!(
                        "`{name}`'s `{function}` does not return one result, as wasi:config/store's does"
                    )));
                }
            }
            add_config(&mut instance)
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> HostError {
    HostError::InvalidComponent(format!("{e:#}"))
}

/// `log(level, context, message)`.
fn add_logging(instance: &mut LinkerInstance<'_, InstanceState>) -> Result<(), HostError> {
    instance
        .func_new("log", |store, _ty, params, _results| {
            let text = |i: usize| match params.get(i) {
                Some(Val::String(s)) => s.as_str(),
                _ => "",
            };
            let level = match params.first() {
                Some(Val::Enum(level)) => level.as_str(),
                _ => "info",
            };
            store.data().log.record(level, text(1), text(2));
            Ok(())
        })
        .map_err(invalid)
}

/// `get(key) -> result<option<string>, error>` and
/// `get-all() -> result<list<tuple<string, string>>, error>`. Config is in
/// memory, so neither fails.
fn add_config(instance: &mut LinkerInstance<'_, InstanceState>) -> Result<(), HostError> {
    let ok = |value: Val| Val::Result(Ok(Some(Box::new(value))));
    instance
        .func_new("get", move |store, _ty, params, results| {
            let value = match params.first() {
                Some(Val::String(key)) => store.data().config.get(key.as_str()).cloned(),
                _ => None,
            };
            results[0] = ok(Val::Option(value.map(|v| Box::new(Val::String(v)))));
            Ok(())
        })
        .map_err(invalid)?;
    instance
        .func_new("get-all", move |store, _ty, _params, results| {
            let pairs = store
                .data()
                .config
                .iter()
                .map(|(k, v)| Val::Tuple(vec![Val::String(k.clone()), Val::String(v.clone())]))
                .collect();
            results[0] = ok(Val::List(pairs));
            Ok(())
        })
        .map_err(invalid)
}

/// A fetched secret in an instance's resource table: what the guest's
/// `secret` handle stands for.
struct GuestSecret(SecretValue);

/// `resource secret` and `get(key) -> result<secret, secrets-error>`.
fn add_secrets_store(instance: &mut LinkerInstance<'_, InstanceState>) -> Result<(), HostError> {
    instance
        .resource(
            "secret",
            ResourceType::host::<GuestSecret>(),
            |mut store, rep| {
                let state = store.data_mut();
                state.table.delete(Resource::<GuestSecret>::new_own(rep))?;
                state.open_secrets = state.open_secrets.saturating_sub(1);
                Ok(())
            },
        )
        .map_err(invalid)?;
    instance
        .func_new_async("get", |mut store, _ty, params, results| {
            Box::new(async move {
                let Some(Val::String(name)) = params.first() else {
                    return Err(wasmtime::Error::msg("get: unexpected parameters"));
                };
                bounded("a secret's name", name)?;
                let failure = |case: &str, message: Option<String>| {
                    let payload = message.map(|m| Box::new(Val::String(m)));
                    Val::Result(Err(Some(Box::new(Val::Variant(case.to_owned(), payload)))))
                };
                let state = store.data();
                if state.open_secrets >= MAX_OPEN_SECRETS {
                    results[0] = failure(
                        "upstream",
                        Some(format!(
                            "this instance holds {MAX_OPEN_SECRETS} secrets, the most one may; \
                             drop a handle before getting another"
                        )),
                    );
                    return Ok(());
                }
                let router = state.router().clone();
                let grant = std::sync::Arc::clone(&state.secrets);
                results[0] = match router.fetch_secret(&grant, name).await {
                    Ok(value) => {
                        let state = store.data_mut();
                        let handle = state.table.push(GuestSecret(value))?;
                        state.open_secrets += 1;
                        let any = handle.try_into_resource_any(&mut store)?;
                        Val::Result(Ok(Some(Box::new(Val::Resource(any)))))
                    }
                    Err(SecretsFailure::NotFound) => failure("not-found", None),
                    Err(SecretsFailure::Upstream(why)) => failure("upstream", Some(why)),
                };
                Ok(())
            })
        })
        .map_err(invalid)
}

/// `reveal(borrow<secret>) -> secret-value`.
fn add_secrets_reveal(instance: &mut LinkerInstance<'_, InstanceState>) -> Result<(), HostError> {
    instance
        .func_new("reveal", |mut store, _ty, params, results| {
            let Some(Val::Resource(any)) = params.first() else {
                return Err(wasmtime::Error::msg("reveal: unexpected parameters"));
            };
            let handle = Resource::<GuestSecret>::try_from_resource_any(*any, &mut store)?;
            let GuestSecret(value) = store.data().table.get(&handle)?;
            results[0] = match value {
                SecretValue::String(text) => {
                    Val::Variant("string".into(), Some(Box::new(Val::String(text.clone()))))
                }
                SecretValue::Bytes(bytes) => Val::Variant(
                    "bytes".into(),
                    Some(Box::new(Val::List(
                        bytes.iter().map(|b| Val::U8(*b)).collect(),
                    ))),
                ),
            };
            Ok(())
        })
        .map_err(invalid)
}

/// An interface a component names to `set-link-name`.
struct CallTarget(WitInterface);

/// `resource call-target-interface { constructor(namespace, package,
/// interface) }` and `set-link-name(name, interfaces)`. In 1.x the list
/// holds owned handles and nothing is returned; in 2.x it holds borrows
/// and the result says when one of the interfaces has no link by that
/// name, in which case nothing changes.
fn add_bus(
    instance: &mut LinkerInstance<'_, InstanceState>,
    name: &str,
    item: &ComponentItem,
    engine: &wasmtime::Engine,
) -> Result<(), HostError> {
    let set_link_name = function_type(item, engine, "set-link-name").ok_or_else(|| {
        HostError::InvalidComponent(format!("`{name}` has no function `set-link-name`"))
    })?;
    let owned = set_link_name
        .params()
        .nth(1)
        .is_some_and(|(_, ty)| matches!(ty, Type::List(list) if matches!(list.ty(), Type::Own(_))));
    let answers = set_link_name.results().len() == 1;
    instance
        .resource(
            "call-target-interface",
            ResourceType::host::<CallTarget>(),
            |mut store, rep| {
                store
                    .data_mut()
                    .table
                    .delete(Resource::<CallTarget>::new_own(rep))?;
                Ok(())
            },
        )
        .map_err(invalid)?;
    instance
        .func_wrap(
            "[constructor]call-target-interface",
            |mut store, (namespace, package, interface): (String, String, String)| {
                for (what, part) in [
                    ("the namespace", &namespace),
                    ("the package", &package),
                    ("the interface", &interface),
                ] {
                    bounded(what, part)?;
                }
                let target = CallTarget(WitInterface {
                    namespace,
                    package,
                    interface,
                });
                Ok((store.data_mut().table.push(target)?,))
            },
        )
        .map_err(invalid)?;
    instance
        .func_new("set-link-name", move |mut store, _ty, params, results| {
            let (Some(Val::String(link_name)), Some(Val::List(handles))) =
                (params.first(), params.get(1))
            else {
                return Err(wasmtime::Error::msg("set-link-name: unexpected parameters"));
            };
            bounded("set-link-name's link name", link_name)?;
            if handles.len() > MAX_INTERFACES {
                return Err(wasmtime::Error::msg(format!(
                    "set-link-name names {} interfaces; at most {MAX_INTERFACES} are accepted",
                    handles.len()
                )));
            }
            let mut interfaces = Vec::with_capacity(handles.len());
            for handle in handles {
                let Val::Resource(any) = handle else {
                    return Err(wasmtime::Error::msg("set-link-name: not a resource"));
                };
                let handle: Resource<CallTarget> = any.try_into_resource(&mut store)?;
                let state = store.data_mut();
                let interface = if owned {
                    state.table.delete(handle)?.0
                } else {
                    state.table.get(&handle)?.0.clone()
                };
                interfaces.push(interface);
            }
            let outcome = store
                .data_mut()
                .set_link_name(link_name, interfaces, answers);
            if answers {
                results[0] = Val::Result(
                    outcome
                        .map(|()| None)
                        .map_err(|why| Some(Box::new(Val::String(why)))),
                );
            } else if let Err(why) = outcome {
                // 1.x cannot answer; the component's log says why its
                // calls keep their old link.
                store.data().log.record("warn", "set-link-name", &why);
            }
            Ok(())
        })
        .map_err(invalid)
}

/// The type of function `name` in the instance type `item`.
fn function_type(
    item: &ComponentItem,
    engine: &wasmtime::Engine,
    name: &str,
) -> Option<ComponentFunc> {
    let ComponentItem::ComponentInstance(instance) = item else {
        return None;
    };
    instance
        .exports(engine)
        .find_map(|(export, item)| match item.ty {
            ComponentItem::ComponentFunc(func) if export == name => Some(func),
            _ => None,
        })
}

/// Traps unless `text` (the guest's `what`) is at most [`MAX_NAME_BYTES`].
fn bounded(what: &str, text: &str) -> wasmtime::Result<()> {
    if text.len() > MAX_NAME_BYTES {
        return Err(wasmtime::Error::msg(format!(
            "{what} is {} bytes; at most {MAX_NAME_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(())
}

impl InstanceState {
    /// Routes this instance's following calls to `interfaces` by the link
    /// `link_name`. Strict (2.x): only if the component has that link for
    /// every one of them, else nothing changes and the error says which is
    /// missing. Otherwise (1.x) the names are set regardless, since a link
    /// may be put later, and the error only reports what is missing now.
    fn set_link_name(
        &mut self,
        link_name: &str,
        interfaces: Vec<WitInterface>,
        strict: bool,
    ) -> Result<(), String> {
        let missing = interfaces.iter().find_map(|interface| {
            self.router()
                .target(&self.component_id, link_name, interface)
                .err()
        });
        if strict && let Some(err) = &missing {
            return Err(err.message.clone());
        }
        for interface in interfaces {
            if link_name == DEFAULT_LINK_NAME {
                self.link_names.remove(&interface);
            } else {
                self.link_names.insert(interface, link_name.to_owned());
            }
        }
        missing.map_or(Ok(()), |err| Err(err.message))
    }
}
