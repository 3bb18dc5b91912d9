//! Reading the OAM document into the model, field by field.
//!
//! Each function reads one part of the format, records a problem for every
//! field that is missing, unknown, of the wrong type or meaningless, and
//! returns what it could read. The format is closed: a field wasmCloud's
//! wadm would not accept (or that Trellis does not support, like
//! `field` in a secret) is an error rather than silently ignored.

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_lattice::config::{NamedConfig, validate_config_name};
use trellis_lattice::link::DEFAULT_LINK_NAME;
use trellis_lattice::subject::{validate_token, validate_wit_part};

use super::document::{Fields, Node};
use super::error::Problem;
use super::validate::{CrossRefs, LinkSlot};
use super::{
    API_VERSION, Component, ComponentKind, ConfigRef, DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_SPREAD_WEIGHT, DESCRIPTION_ANNOTATION, KIND, LinkTrait, Manifest, Scaler, ScalerKind,
    Spread, VERSION_ANNOTATION,
};

/// The version `latest` means "the newest" to `wash app deploy`, so no
/// manifest may claim it.
const LATEST: &str = "latest";

const SPREADSCALER: &str = "spreadscaler";
const DAEMONSCALER: &str = "daemonscaler";
const LINK: &str = "link";

/// Reads a whole manifest; `unversioned` supplies the version when the
/// manifest has none.
pub(super) fn manifest(
    document: &Value,
    unversioned: impl FnOnce() -> String,
) -> Result<Manifest, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut refs = CrossRefs::default();
    let root = Node::root(document);
    let Some(fields) = root.fields(&["apiVersion", "kind", "metadata", "spec"], &mut problems)
    else {
        return Err(problems);
    };
    expect_exactly(&fields, "apiVersion", API_VERSION, &mut problems);
    expect_exactly(&fields, "kind", KIND, &mut problems);
    let metadata = fields
        .required("metadata", "a map with `name`", &mut problems)
        .and_then(|node| metadata(&node, &mut problems));
    let app = metadata.as_ref().and_then(|m| m.name.as_deref());
    let components = fields
        .required("spec", "a map with `components`", &mut problems)
        .and_then(|node| spec(&node, app, &mut refs, &mut problems));
    refs.check(&mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }
    // Every part that could not be read recorded a problem, so all are here.
    let (Some(metadata), Some(mut components)) = (metadata, components) else {
        return Err(problems);
    };
    let Some(name) = metadata.name else {
        return Err(problems);
    };
    resolve_config_refs(&mut components, &refs.owned_configs());
    let annotations = metadata.annotations;
    Ok(Manifest {
        name,
        version: annotations
            .get(VERSION_ANNOTATION)
            .cloned()
            .unwrap_or_else(unversioned),
        description: annotations.get(DESCRIPTION_ANNOTATION).cloned(),
        annotations,
        labels: metadata.labels,
        components,
    })
}

fn expect_exactly(fields: &Fields<'_>, key: &str, expected: &str, problems: &mut Vec<Problem>) {
    let Some(node) = fields.required(key, &format!("`{expected}`"), problems) else {
        return;
    };
    if let Some(found) = node.string(problems)
        && found != expected
    {
        node.problem(problems, format!("expected `{expected}`, found `{found}`"));
    }
}

struct Metadata {
    name: Option<String>,
    annotations: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

fn metadata(node: &Node<'_>, problems: &mut Vec<Problem>) -> Option<Metadata> {
    let fields = node.fields(&["name", "annotations", "labels"], problems)?;
    let name = fields
        .required("name", "the application's name", problems)
        .and_then(|n| name(&n, "application name", problems));
    let annotations = fields
        .optional("annotations")
        .and_then(|n| n.string_map(problems))
        .unwrap_or_default();
    if let Some(version) = annotations.get(VERSION_ANNOTATION) {
        let path = format!("{}.{VERSION_ANNOTATION}", fields.path_of("annotations"));
        if version.trim().is_empty() {
            problems.push(Problem::new(
                path,
                "is empty; give a version such as `v1.0.0`, or leave the annotation out",
            ));
        } else if version == LATEST {
            problems.push(Problem::new(
                path,
                "`latest` is reserved to mean the newest version; give a real version",
            ));
        }
    }
    let labels = fields
        .optional("labels")
        .and_then(|n| n.string_map(problems))
        .unwrap_or_default();
    Some(Metadata {
        name,
        annotations,
        labels,
    })
}

/// A name that becomes part of ids, subjects and KV keys.
fn name(node: &Node<'_>, what: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let value = node.non_empty_string(problems)?;
    let valid = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        node.problem(
            problems,
            format!(
                "invalid {what} {value:?}: use ASCII letters, digits, `-` and `_`, starting \
                 with a letter or digit (it becomes part of NATS subjects and JetStream keys)"
            ),
        );
        return None;
    }
    Some(value.to_owned())
}

fn spec(
    node: &Node<'_>,
    app: Option<&str>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Component>> {
    let fields = node.fields(&["components", "policies"], problems)?;
    if let Some(policies) = fields.optional("policies") {
        refs.secret_policies = secret_policies(&policies, problems);
    }
    let list = fields
        .required("components", "a list of components", problems)?
        .list(problems)?;
    let components: Vec<Option<Component>> = list
        .iter()
        .enumerate()
        .map(|(index, node)| component(node, index, app, refs, problems))
        .collect();
    components.into_iter().collect()
}

fn component(
    node: &Node<'_>,
    index: usize,
    app: Option<&str>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Component> {
    let fields = node.fields(&["name", "type", "properties", "traits"], problems)?;
    let name = fields
        .required("name", "the component's name", problems)
        .and_then(|n| name(&n, "component name", problems));
    if let Some(name) = &name {
        refs.component(name, fields.path_of("name"));
    }
    let kind = fields
        .required("type", "`component` or `capability`", problems)
        .and_then(|n| kind(&n, problems));
    let properties = fields
        .required("properties", "a map with `image`", problems)
        .and_then(|n| properties(&n, refs, problems));
    let (scaler, declared, links) = match fields.optional("traits") {
        Some(node) => traits(&node, index, refs, problems),
        None => (None, false, Vec::new()),
    };
    // A component or capability without a scaler would be accepted and
    // run nowhere: an HTTP route with nothing behind it, found by curl.
    // One that should stay declared but stopped says `instances: 0`.
    if !declared {
        let what = name
            .as_deref()
            .map_or(String::from("this entry"), |n| format!("`{n}`"));
        problems.push(Problem::new(
            fields.path_of("traits"),
            format!(
                "{what} has no spreadscaler or daemonscaler trait, so it would run nowhere; \
                 add one (`- type: spreadscaler` with `properties: {{instances: 1}}`), or \
                 `instances: 0` to declare it stopped"
            ),
        ));
    }

    let (name, kind, properties) = (name?, kind?, properties?);
    let own_secrets = properties
        .config
        .iter()
        .any(|c| matches!(c, ConfigRef::Secret { .. }));
    if kind == ComponentKind::Capability && own_secrets {
        problems.push(Problem::new(
            format!("{}.secrets", fields.path_of("properties")),
            "a provider is given secrets through its links, not its own properties; grant \
             them under the link's `target.secrets` (or `source.secrets`)",
        ));
        return None;
    }
    let id = match (properties.id, app) {
        (Some(id), _) => id,
        (None, Some(app)) => format!("{app}-{name}"),
        // Without an app name the manifest is already refused.
        (None, None) => name.clone(),
    };
    refs.id(&id, node.path().to_owned());
    let scaler = scaler?;
    Some(Component {
        name,
        id,
        kind,
        image: properties.image,
        config: properties.config,
        allowed_hosts: properties.allowed_hosts,
        data_movable: properties.data_movable,
        scaler,
        links,
    })
}

fn kind(node: &Node<'_>, problems: &mut Vec<Problem>) -> Option<ComponentKind> {
    match node.string(problems)? {
        "component" | "actor" => Some(ComponentKind::Component),
        "capability" => Some(ComponentKind::Capability),
        other => {
            node.problem(
                problems,
                format!("expected `component` or `capability`, found `{other}`"),
            );
            None
        }
    }
}

struct Properties {
    image: String,
    id: Option<String>,
    config: Vec<ConfigRef>,
    allowed_hosts: Vec<String>,
    data_movable: bool,
}

fn properties(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Properties> {
    let fields = node.fields(
        &[
            "image",
            "id",
            "config",
            "secrets",
            "allowedHosts",
            "localData",
        ],
        problems,
    )?;
    let image = fields
        .required(
            "image",
            "an image reference (OCI reference or file:// path)",
            problems,
        )
        .and_then(|n| n.non_empty_string(problems));
    let id = fields.optional("id").and_then(|n| {
        let id = n.string(problems)?;
        match validate_token("component id", id) {
            Ok(()) => Some(id.to_owned()),
            Err(err) => {
                n.problem(problems, err.to_string());
                None
            }
        }
    });
    let mut config = fields
        .optional("config")
        .and_then(|n| config_list(&n, refs, problems))
        .unwrap_or_default();
    if let Some(secrets) = fields
        .optional("secrets")
        .and_then(|n| secret_list(&n, refs, problems))
    {
        config.extend(secrets);
    }
    // Outbound HTTP is granted host by host; a bad entry names itself.
    let allowed_hosts = fields
        .optional("allowedHosts")
        .and_then(|n| {
            let hosts = n.string_list(problems)?;
            match trellis_lattice::grant::OutboundGrant::parse(&hosts) {
                Ok(_) => Some(hosts),
                Err(err) => {
                    n.problem(problems, err.to_string());
                    None
                }
            }
        })
        .unwrap_or_default();
    let data_movable = fields
        .optional("localData")
        .and_then(|n| match n.string(problems)? {
            "pinned" => Some(false),
            "movable" => Some(true),
            other => {
                n.problem(
                    problems,
                    format!(
                        "expected `pinned` (keep the provider on the host holding its data) or \
                         `movable` (it may start elsewhere, without that data), found `{other}`"
                    ),
                );
                None
            }
        })
        .unwrap_or(false);
    Some(Properties {
        image: image?.to_owned(),
        id,
        config,
        allowed_hosts,
        data_movable,
    })
}

/// The scaler (at most one; `None` if it was invalid), whether a scaler
/// trait was written at all, and the links of a component.
fn traits(
    node: &Node<'_>,
    index: usize,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> (Option<Scaler>, bool, Vec<LinkTrait>) {
    let mut scaler: Option<(Scaler, String)> = None;
    let mut declared = false;
    let mut links = Vec::new();
    for item in node.list(problems).unwrap_or_default() {
        let Some(fields) = item.fields(&["type", "properties"], problems) else {
            continue;
        };
        let Some(type_node) =
            fields.required("type", "`spreadscaler`, `daemonscaler` or `link`", problems)
        else {
            continue;
        };
        let Some(trait_type) = type_node.string(problems) else {
            continue;
        };
        let kind = match trait_type {
            SPREADSCALER => Some(ScalerKind::Spread),
            DAEMONSCALER => Some(ScalerKind::Daemon),
            LINK => None,
            other => {
                type_node.problem(
                    problems,
                    format!(
                        "unknown trait type `{other}`; expected `{SPREADSCALER}`, \
                         `{DAEMONSCALER}` or `{LINK}`"
                    ),
                );
                continue;
            }
        };
        let Some(props) = fields.required("properties", "the trait's properties", problems) else {
            continue;
        };
        match kind {
            Some(kind) => {
                declared = true;
                let Some(read) = scaler_properties(&props, kind, problems) else {
                    continue;
                };
                if let Some((_, first)) = &scaler {
                    type_node.problem(
                        problems,
                        format!(
                            "a component takes one scaler, and `{first}` is already this \
                             one's; merge them into one (use `spread` for several host groups)"
                        ),
                    );
                } else {
                    scaler = Some((read, item.path().to_owned()));
                }
            }
            None => links.extend(link(&props, index, item.path(), refs, problems)),
        }
    }
    (scaler.map(|(s, _)| s), declared, links)
}

fn scaler_properties(
    node: &Node<'_>,
    kind: ScalerKind,
    problems: &mut Vec<Problem>,
) -> Option<Scaler> {
    let fields = node.fields(
        &["instances", "replicas", "spread", "maxUnavailable"],
        problems,
    )?;
    let instances =
        if fields.optional("instances").is_none() && fields.optional("replicas").is_none() {
            problems.push(Problem::new(
                fields.path_of("instances"),
                "missing; expected the number of instances",
            ));
            None
        } else {
            fields
                .either("instances", "replicas", problems)
                .and_then(|n| n.count(problems))
        };
    let spread_node = fields.optional("spread");
    let spread = match &spread_node {
        Some(n) => spreads(n, problems)?,
        None => Vec::new(),
    };
    let max_unavailable = match fields.optional("maxUnavailable") {
        Some(n) => match n.count(problems)? {
            0 => {
                n.problem(
                    problems,
                    "0 would never upgrade a host; expected how many hosts may swap to a new \
                     image at once (1 or more; 1 when absent)",
                );
                return None;
            }
            count => count,
        },
        None => DEFAULT_MAX_UNAVAILABLE,
    };
    let instances = instances?;
    if let Some(n) = &spread_node
        && kind == ScalerKind::Spread
        && instances > 0
        && !spread.is_empty()
        && spread.iter().all(|s| s.weight == 0)
    {
        n.problem(
            problems,
            "every spread has weight 0, so no instance can be placed; give at least one \
             spread a weight above 0",
        );
        return None;
    }
    Some(Scaler {
        kind,
        instances,
        spread,
        max_unavailable,
    })
}

fn spreads(node: &Node<'_>, problems: &mut Vec<Problem>) -> Option<Vec<Spread>> {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut read = Vec::new();
    for item in node.list(problems)? {
        let Some(fields) = item.fields(&["name", "requirements", "weight"], problems) else {
            read.push(None);
            continue;
        };
        let name = fields
            .required("name", "the spread's name", problems)
            .and_then(|n| n.non_empty_string(problems))
            .map(str::to_owned);
        if let Some(name) = &name {
            if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                problems.push(Problem::new(
                    fields.path_of("name"),
                    format!("duplicate spread name `{name}`; the first is at `{first}`"),
                ));
            }
            names.push((name.clone(), fields.path_of("name")));
        }
        let requirements = match fields.optional("requirements") {
            Some(n) => n.string_map(problems),
            None => Some(BTreeMap::new()),
        };
        let weight = match fields.optional("weight") {
            Some(n) => n.count(problems),
            None => Some(DEFAULT_SPREAD_WEIGHT),
        };
        read.push(match (name, requirements, weight) {
            (Some(name), Some(requirements), Some(weight)) => Some(Spread {
                name,
                requirements,
                weight,
            }),
            _ => None,
        });
    }
    read.into_iter().collect()
}

fn link(
    node: &Node<'_>,
    source: usize,
    trait_path: &str,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<LinkTrait> {
    let fields = node.fields(
        &[
            "target",
            "namespace",
            "package",
            "interfaces",
            "name",
            "source",
            "source_config",
            "target_config",
        ],
        problems,
    )?;
    let target = fields
        .required(
            "target",
            "the name of a component in this manifest, or a map with `name` and `config`",
            problems,
        )
        .and_then(|n| link_end(&n, refs, problems));
    let namespace = wit_part(&fields, "namespace", "WIT namespace", problems);
    let package = wit_part(&fields, "package", "WIT package", problems);
    let interfaces = interfaces(&fields, problems);
    let name = match fields.optional("name") {
        Some(n) => link_name(&n, problems),
        None => Some(DEFAULT_LINK_NAME.to_owned()),
    };
    let source_config = config_in_one_place(&fields, "source", "source_config", refs, problems);
    let separate_target_config = fields
        .optional("target_config")
        .and_then(|n| config_list(&n, refs, problems));

    let (target_name, nested_target_config) = target?;
    if nested_target_config.is_some() && separate_target_config.is_some() {
        problems.push(Problem::new(
            fields.path_of("target_config"),
            "the target's config is also given in `target.config`; keep one of the two",
        ));
    }
    let (namespace, package, name) = (namespace?, package?, name?);
    refs.link_slot(
        LinkSlot {
            source,
            name: name.clone(),
            namespace: namespace.clone(),
            package: package.clone(),
        },
        trait_path.to_owned(),
    );
    Some(LinkTrait {
        name,
        target: target_name,
        namespace,
        package,
        interfaces: interfaces?,
        source_config: source_config?,
        target_config: nested_target_config
            .or(separate_target_config)
            .unwrap_or_default(),
    })
}

/// A link's `target`: a component name, or `{name, config}`.
fn link_end(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<(String, Option<Vec<ConfigRef>>)> {
    if let Value::String(_) = node.value() {
        let target = node.non_empty_string(problems)?;
        refs.link_target(target, node.path().to_owned());
        return Some((target.to_owned(), None));
    }
    let fields = node.fields(&["name", "config", "secrets"], problems)?;
    let name_node = fields.required("name", "the name of a component in this manifest", problems);
    let config = with_secrets(
        &fields,
        fields
            .optional("config")
            .map(|n| config_list(&n, refs, problems)),
        refs,
        problems,
    );
    let target = name_node.as_ref()?.non_empty_string(problems)?;
    refs.link_target(target, fields.path_of("name"));
    match config {
        Some(config) => Some((target.to_owned(), Some(config?))),
        None => Some((target.to_owned(), None)),
    }
}

/// Config given either as `{block}: {config: [...]}` or as `{flat}: [...]`.
fn config_in_one_place(
    fields: &Fields<'_>,
    block: &str,
    flat: &str,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Vec<ConfigRef>> {
    let nested = match fields.optional(block) {
        Some(n) => {
            let inner = n.fields(&["config", "secrets"], problems)?;
            let config = inner
                .optional("config")
                .map(|c| config_list(&c, refs, problems));
            Some(with_secrets(&inner, config, refs, problems).unwrap_or(Some(Vec::new()))?)
        }
        None => None,
    };
    let separate = match fields.optional(flat) {
        Some(n) => Some(config_list(&n, refs, problems)?),
        None => None,
    };
    if nested.is_some() && separate.is_some() {
        problems.push(Problem::new(
            fields.path_of(flat),
            format!("this config is also given in `{block}.config`; keep one of the two"),
        ));
        return None;
    }
    Some(nested.or(separate).unwrap_or_default())
}

fn wit_part(
    fields: &Fields<'_>,
    key: &str,
    what: &'static str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let node = fields.required(key, &format!("the {what}, e.g. `wasi`"), problems)?;
    let value = node.string(problems)?;
    match validate_wit_part(what, value) {
        Ok(()) => Some(value.to_owned()),
        Err(err) => {
            node.problem(problems, err.to_string());
            None
        }
    }
}

fn interfaces(fields: &Fields<'_>, problems: &mut Vec<Problem>) -> Option<Vec<String>> {
    let node = fields.required(
        "interfaces",
        "a list of interfaces of the package, e.g. `[store]`",
        problems,
    )?;
    let list = node.string_list(problems)?;
    if list.is_empty() {
        node.problem(
            problems,
            "is empty; name at least one interface of the package",
        );
        return None;
    }
    let mut valid = true;
    for interface in &list {
        if let Err(err) = validate_wit_part("WIT interface", interface) {
            node.problem(problems, err.to_string());
            valid = false;
        }
    }
    valid.then_some(list)
}

fn link_name(node: &Node<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    let value = node.string(problems)?;
    match validate_token("link name", value) {
        Ok(()) => Some(value.to_owned()),
        Err(err) => {
            node.problem(problems, err.to_string());
            None
        }
    }
}

/// A list of `{name, properties?}` config entries.
fn config_list(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Vec<ConfigRef>> {
    entry_list(node, refs, problems, config_entry)
}

/// Reads every item of a list with `entry`, recording each item's problems;
/// `None` if any item could not be read.
fn entry_list(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
    entry: fn(&Node<'_>, &mut CrossRefs, &mut Vec<Problem>) -> Option<ConfigRef>,
) -> Option<Vec<ConfigRef>> {
    let entries: Vec<Option<ConfigRef>> = node
        .list(problems)?
        .iter()
        .map(|item| entry(item, refs, problems))
        .collect();
    entries.into_iter().collect()
}

fn config_entry(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<ConfigRef> {
    let fields = node.fields(&["name", "properties"], problems)?;
    let name_node = fields.required("name", "the config's name", problems)?;
    match fields.optional("properties") {
        Some(props) => {
            let name = name(&name_node, "config name", problems);
            let values = props.string_map(problems);
            let (name, values) = (name?, values?);
            refs.owned_config(&name, &values, node.path().to_owned());
            Some(ConfigRef::Owned { name, values })
        }
        None => {
            let name = name_node.non_empty_string(problems)?;
            if let Err(err) = validate_config_name(name) {
                name_node.problem(problems, err.to_string());
                return None;
            }
            Some(ConfigRef::External {
                name: name.to_owned(),
            })
        }
    }
}

/// `config` (if given) with the block's `secrets` appended.
fn with_secrets(
    fields: &Fields<'_>,
    config: Option<Option<Vec<ConfigRef>>>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Option<Vec<ConfigRef>>> {
    let Some(node) = fields.optional("secrets") else {
        return config;
    };
    let secrets = secret_list(&node, refs, problems);
    Some(match (config.unwrap_or(Some(Vec::new())), secrets) {
        (Some(mut config), Some(secrets)) => {
            config.extend(secrets);
            Some(config)
        }
        _ => None,
    })
}

/// The type of a secrets policy.
const SECRET_POLICY: &str = "policy.secret.wasmcloud.dev/v1alpha1";

/// `spec.policies`: `{name, type: policy.secret.wasmcloud.dev/v1alpha1,
/// properties: {backend}}`, by name.
fn secret_policies(node: &Node<'_>, problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut policies = BTreeMap::new();
    for item in node.list(problems).unwrap_or_default() {
        let Some(fields) = item.fields(&["name", "type", "properties"], problems) else {
            continue;
        };
        let name = fields
            .required("name", "the policy's name", problems)
            .and_then(|n| name(&n, "policy name", problems));
        expect_exactly(&fields, "type", SECRET_POLICY, problems);
        let backend = fields
            .required("properties", "a map with `backend`", problems)
            .and_then(|n| {
                let props = n.fields(&["backend"], problems)?;
                let backend = props.required(
                    "backend",
                    "the id of a secrets backend, e.g. `secrets-nats-kv`",
                    problems,
                )?;
                let value = backend.non_empty_string(problems)?;
                match validate_token("secrets backend", value) {
                    Ok(()) => Some(value.to_owned()),
                    Err(err) => {
                        backend.problem(problems, err.to_string());
                        None
                    }
                }
            });
        if let (Some(name), Some(backend)) = (name, backend) {
            policies.insert(name, backend);
        }
    }
    policies
}

/// A list of `{name, properties: {policy, key, version?}}` secrets, each
/// naming a policy of `spec.policies`.
fn secret_list(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<Vec<ConfigRef>> {
    entry_list(node, refs, problems, secret_entry)
}

/// A secret's name, or its key in a backend.
fn secret_name(node: &Node<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    let value = node.non_empty_string(problems)?;
    match trellis_lattice::secret::validate_secret_name(value) {
        Ok(()) => Some(value.to_owned()),
        Err(err) => {
            node.problem(problems, err.to_string());
            None
        }
    }
}

fn secret_entry(
    node: &Node<'_>,
    refs: &mut CrossRefs,
    problems: &mut Vec<Problem>,
) -> Option<ConfigRef> {
    let fields = node.fields(&["name", "properties"], problems)?;
    let name = fields
        .required("name", "the name the component asks for", problems)
        .and_then(|n| secret_name(&n, problems));
    let props = fields
        .required("properties", "a map with `policy` and `key`", problems)?
        .fields(&["policy", "key", "version"], problems)?;
    let policy = props.required(
        "policy",
        "the name of a policy in `spec.policies`",
        problems,
    );
    let backend = policy.as_ref().and_then(|n| {
        let policy = n.non_empty_string(problems)?;
        match refs.secret_policies.get(policy) {
            Some(backend) => Some(backend.clone()),
            None => {
                n.problem(
                    problems,
                    format!(
                        "names policy `{policy}`, which `spec.policies` does not define; add \
                         `{{name: {policy}, type: {SECRET_POLICY}, properties: {{backend: \
                         secrets-nats-kv}}}}`"
                    ),
                );
                None
            }
        }
    });
    let key = props
        .required("key", "the secret's name in the backend", problems)
        .and_then(|n| secret_name(&n, problems));
    let version = match props.optional("version") {
        None => Some(None),
        Some(n) => {
            let text = n.scalar_text(problems)?;
            match text.parse::<u64>() {
                Ok(version) => Some(Some(version)),
                Err(_) => {
                    n.problem(problems, format!("expected a whole number, found `{text}`"));
                    None
                }
            }
        }
    };
    let reference = trellis_lattice::secret::SecretRef {
        name: name?,
        backend: backend?,
        key: key?,
        version: version?,
    };
    refs.secret(
        &reference.name,
        reference.to_config(),
        node.path().to_owned(),
    );
    Some(ConfigRef::Secret { reference })
}

/// Turns bare references to config the manifest defines into owned ones.
fn resolve_config_refs(components: &mut [Component], owned: &BTreeMap<String, NamedConfig>) {
    let resolve = |refs: &mut Vec<ConfigRef>| {
        for r in refs.iter_mut() {
            if let ConfigRef::External { name } = r
                && let Some(values) = owned.get(name.as_str())
            {
                *r = ConfigRef::Owned {
                    name: name.clone(),
                    values: values.clone(),
                };
            }
        }
    };
    for component in components {
        resolve(&mut component.config);
        for link in &mut component.links {
            resolve(&mut link.source_config);
            resolve(&mut link.target_config);
        }
    }
}
