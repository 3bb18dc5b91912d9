//! Whether every import of every component in a manifest can be served,
//! checked before anything runs: each import is built into the host, or
//! covered by a `default` link from that component, in the manifest or
//! already in the lattice. A component that imports `wasi:keyvalue` with no
//! link to a keyvalue provider would start and then fail its first call;
//! here it is refused with the link to add.
//!
//! Imports are read from the component's image (a `file://` path, or a
//! registry reference it downloads) without compiling it.

use anyhow::{Context, bail};
use trellis_lattice::link::{DEFAULT_LINK_NAME, find_route};
use trellis_lattice::{Link, WitInterface};
use trellis_oci::RegistryArgs;
use wadm::Manifest;
use wadm::manifest::{Component, ComponentKind};

use super::registry;

/// What the check found.
#[derive(Debug, Default)]
pub struct ImportCheck {
    /// Imports nothing serves, each with the fix.
    pub problems: Vec<String>,
    /// Components whose image could not be read, and why.
    pub unchecked: Vec<String>,
}

/// Checks `manifest`'s components against its own links and `lattice`
/// (the links already put).
pub async fn check(manifest: &Manifest, lattice: &[Link], registry: &RegistryArgs) -> ImportCheck {
    let mut check = ImportCheck::default();
    for component in manifest
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::Component)
    {
        let bytes = match read_image(&component.image, registry).await {
            Ok(bytes) => bytes,
            Err(err) => {
                check.unchecked.push(format!(
                    "`{}` ({}): {err:#}",
                    component.name, component.image
                ));
                continue;
            }
        };
        let imports = match trellis_host::lattice_imports(&bytes) {
            Ok(imports) => imports,
            Err(err) => {
                check.problems.push(format!(
                    "`{}`: its image {} is not a component wasmtime can read: {err}",
                    component.name, component.image
                ));
                continue;
            }
        };
        let own = links_of(component);
        for interface in imports {
            let covered = find_route(
                own.iter().chain(lattice),
                &component.id,
                DEFAULT_LINK_NAME,
                &interface,
            );
            if covered.is_none() {
                check.problems.push(missing_link(component, &interface));
            }
        }
    }
    check
}

/// Fails with every problem, or returns the warnings about components
/// that were not checked.
pub fn refuse(check: ImportCheck, what: &str) -> anyhow::Result<Vec<String>> {
    if !check.problems.is_empty() {
        bail!(
            "{what} has imports nothing would serve:\n  {}",
            check.problems.join("\n  ")
        );
    }
    Ok(check.unchecked)
}

/// The lattice links `component`'s link traits make.
fn links_of(component: &Component) -> Vec<Link> {
    component
        .links
        .iter()
        .map(|link| Link {
            source_id: component.id.clone(),
            target: link.target.clone(),
            name: link.name.clone(),
            wit_namespace: link.namespace.clone(),
            wit_package: link.package.clone(),
            interfaces: link.interfaces.clone(),
            ..Link::default()
        })
        .collect()
}

fn missing_link(component: &Component, interface: &WitInterface) -> String {
    let (namespace, package, name) = (
        &interface.namespace,
        &interface.package,
        &interface.interface,
    );
    format!(
        "component `{}` imports `{interface}`, and no `{DEFAULT_LINK_NAME}` link covers it: add \
         to `{}` a link trait with `namespace: {namespace}`, `package: {package}`, \
         `interfaces: [{name}]` and the `target` that serves it, or put one in the lattice with \
         `wash link put {} TARGET {namespace} {package} --interface {name}`",
        component.name, component.name, component.id
    )
}

/// The bytes of a component image: a `file://` path or a registry
/// reference.
async fn read_image(image: &str, args: &RegistryArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = image.strip_prefix("file://") {
        return std::fs::read(path).with_context(|| format!("reading {path}"));
    }
    let registry = registry::client(args)?;
    let reference = registry.parse(image)?;
    let (manifest, _, _) = registry
        .manifest(&reference)
        .await
        .context("reading the image's manifest")?;
    let layer = manifest.component_layer(reference.as_str())?;
    let wasm = registry
        .blob(&reference, layer)
        .await
        .context("downloading the component")?;
    Ok(wasm.to_vec())
}
