//! `wash claims`: sign components and providers, and show what their
//! claims say (`inspect`, in its own module, also reads from registries).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use trellis_claims::{
    KeyKind, KeyPair, SignOptions, now_unix, read_component_claims, sign_component,
};
use trellis_oci::RegistryArgs;

use crate::keystore;
use crate::output::{Format, OutputArgs};

mod inspect;

const DAY: u64 = 24 * 60 * 60;
/// The account that signs when no `--issuer` is given.
const DEFAULT_ACCOUNT: &str = "default";

#[derive(Debug, Subcommand)]
pub enum ClaimsCommand {
    /// Sign a component, replacing any claims it already carries.
    Sign(Box<SignArgs>),
    /// Sign a provider executable for this machine's target; the claims
    /// go next to it in `<file>.jwt`, where hosts look for them.
    SignProvider(Box<SignProviderArgs>),
    /// Show the claims of a component or provider, from a file or a
    /// registry, and whether they verify.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A component (.wasm), a provider executable (claims in FILE.jwt), or
    /// a registry reference such as `oci://127.0.0.1:5000/acme/counter:0.1.0`.
    #[arg(value_name = "FILE|REF")]
    artifact: String,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The component to sign.
    input: PathBuf,
    /// Where to write the signed component [default: <input>_s.wasm].
    #[arg(short = 'o', long = "output", visible_alias = "destination")]
    destination: Option<PathBuf>,
    /// Account seed, or a file holding one [default: the `default` account
    /// in the key directory, created on first use].
    #[arg(long, env = "TRELLIS_ISSUER")]
    issuer: Option<String>,
    /// Component identity: a seed, a seed file or an `M…` public key
    /// [default: the identity the input is already signed with, else
    /// `<name>_component.nk` in the key directory, created on first use].
    #[arg(long)]
    subject: Option<String>,
    /// Friendly name [default: the file name].
    #[arg(long)]
    name: Option<String>,
    /// Version string.
    #[arg(long)]
    ver: Option<String>,
    /// Revision number.
    #[arg(long)]
    rev: Option<i32>,
    /// A tag; repeat for more.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Alias other components may call this one by.
    #[arg(long)]
    call_alias: Option<String>,
    /// Days until the claims expire [default: never].
    #[arg(long)]
    expires_in_days: Option<u64>,
    /// Days until the claims become valid [default: now].
    #[arg(long)]
    not_before_days: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SignProviderArgs {
    /// The provider executable to sign.
    input: PathBuf,
    /// Account seed, or a file holding one [default: the `default` account].
    #[arg(long, env = "TRELLIS_ISSUER")]
    issuer: Option<String>,
    /// Friendly name [default: the file name].
    #[arg(long)]
    name: Option<String>,
    /// Who publishes the provider.
    #[arg(long, default_value = "trellis")]
    vendor: String,
    /// Version string.
    #[arg(long)]
    ver: Option<String>,
    /// The target the executable is built for [default: this machine's,
    /// e.g. x86_64-linux].
    #[arg(long, value_name = "TARGET")]
    file_target: Option<String>,
    /// Another platform's build of the same provider, as TARGET=PATH (e.g.
    /// `aarch64-linux=dist/kv-arm64`); repeat for more. One JWT then covers
    /// them all, as a multi-platform `wash push` needs.
    #[arg(long = "target", value_name = "TARGET=PATH", value_parser = super::push::parse_target_file)]
    targets: Vec<super::push::TargetFile>,
    /// Days until the claims expire [default: never].
    #[arg(long)]
    expires_in_days: Option<u64>,
}

pub fn run(command: ClaimsCommand) -> anyhow::Result<()> {
    match command {
        // `-o` names the signed file here, as in `wash claims sign in.wasm
        // -o out.wasm`, so the summary is printed as text.
        ClaimsCommand::Sign(args) => sign(*args, Format::Text),
        ClaimsCommand::SignProvider(args) => sign_provider_file(*args),
        ClaimsCommand::Inspect(args) => inspect::run(args),
    }
}

fn sign(args: SignArgs, format: Format) -> anyhow::Result<()> {
    let wasm =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let name = args.name.clone().unwrap_or_else(|| file_stem(&args.input));
    let issuer = match &args.issuer {
        Some(value) => keystore::seed_or_file(value, KeyKind::Account, "issuer")?,
        None => announce(keystore::load_or_create(DEFAULT_ACCOUNT, KeyKind::Account)?),
    };
    let subject = subject_for(&args, &wasm, &name)?;
    let now = now_unix();
    let options = SignOptions {
        name: Some(name),
        ver: args.ver,
        rev: args.rev,
        tags: args.tags,
        call_alias: args.call_alias,
        expires_at: args.expires_in_days.map(|days| now + days * DAY),
        not_before: args.not_before_days.map(|days| now + days * DAY),
    };
    let signed = sign_component(&wasm, &issuer, &subject, &options)
        .with_context(|| format!("signing {}", args.input.display()))?;
    let destination = args
        .destination
        .unwrap_or_else(|| default_destination(&args.input));
    std::fs::write(&destination, &signed)
        .with_context(|| format!("writing {}", destination.display()))?;
    eprintln!(
        "signed {} -> {}",
        args.input.display(),
        destination.display()
    );
    inspect::file(&destination, format)
}

fn sign_provider_file(args: SignProviderArgs) -> anyhow::Result<()> {
    let executable =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let name = args.name.clone().unwrap_or_else(|| file_stem(&args.input));
    let issuer = match &args.issuer {
        Some(value) => keystore::seed_or_file(value, KeyKind::Account, "issuer")?,
        None => announce(keystore::load_or_create(DEFAULT_ACCOUNT, KeyKind::Account)?),
    };
    let subject = announce(keystore::load_or_create(&name, KeyKind::Provider)?).public_key();
    let target = args
        .file_target
        .unwrap_or_else(trellis_claims::native_target);
    let mut executables = vec![(target, executable)];
    for extra in &args.targets {
        let bytes = std::fs::read(&extra.path)
            .with_context(|| format!("reading {} (for {})", extra.path.display(), extra.target))?;
        if executables.iter().any(|(t, _)| *t == extra.target) {
            anyhow::bail!("target {} is given twice", extra.target);
        }
        executables.push((extra.target.clone(), bytes));
    }
    let options = trellis_claims::ProviderSignOptions {
        name: Some(name),
        vendor: args.vendor,
        ver: args.ver,
        rev: None,
        expires_at: args.expires_in_days.map(|days| now_unix() + days * DAY),
    };
    write_provider_claims(&args.input, &executables, &issuer, &subject, &options)?;
    println!("{subject}");
    Ok(())
}

/// Signs `executables` (target, bytes) and writes the JWT beside `input`,
/// where hosts look for it.
fn write_provider_claims(
    input: &Path,
    executables: &[(String, Vec<u8>)],
    issuer: &KeyPair,
    subject: &str,
    options: &trellis_claims::ProviderSignOptions,
) -> anyhow::Result<()> {
    let token = trellis_claims::sign_provider(
        executables.iter().map(|(t, b)| (t.as_str(), b.as_slice())),
        issuer,
        subject,
        options,
    )
    .with_context(|| format!("signing {}", input.display()))?;
    let destination = trellis_claims::provider_claims_path(input);
    std::fs::write(&destination, &token.jwt)
        .with_context(|| format!("writing {}", destination.display()))?;
    let targets: Vec<&str> = executables.iter().map(|(t, _)| t.as_str()).collect();
    eprintln!(
        "signed {} for {} -> {}",
        input.display(),
        targets.join(", "),
        destination.display()
    );
    Ok(())
}

/// The account that signs for `wash build` and `wash dev`: `$TRELLIS_ISSUER`
/// (a seed or a seed file) when set, else the `default` account.
fn project_issuer() -> anyhow::Result<KeyPair> {
    match std::env::var("TRELLIS_ISSUER") {
        Ok(value) if !value.trim().is_empty() => {
            keystore::seed_or_file(&value, KeyKind::Account, "issuer")
        }
        _ => Ok(announce(keystore::load_or_create(
            DEFAULT_ACCOUNT,
            KeyKind::Account,
        )?)),
    }
}

/// Signs a component `wash build` just built: named and versioned as its
/// project, with the project's saved component key, so every rebuild keeps
/// the identity that links and policies name.
pub(crate) fn sign_project(wasm: &[u8], name: &str, ver: &str) -> anyhow::Result<Vec<u8>> {
    let issuer = project_issuer()?;
    let subject = announce(keystore::load_or_create(name, KeyKind::Component)?).public_key();
    let options = SignOptions {
        name: Some(name.to_owned()),
        ver: Some(ver.to_owned()),
        rev: None,
        tags: Vec::new(),
        call_alias: None,
        expires_at: None,
        not_before: None,
    };
    sign_component(wasm, &issuer, &subject, &options)
        .with_context(|| format!("signing the component {name}"))
}

/// Signs a provider executable of this machine, as `wash dev` does for the
/// providers it starts.
pub(crate) fn sign_local_provider(input: &Path, name: &str) -> anyhow::Result<()> {
    let executable =
        std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let issuer = project_issuer()?;
    let subject = announce(keystore::load_or_create(name, KeyKind::Provider)?).public_key();
    let options = trellis_claims::ProviderSignOptions {
        name: Some(name.to_owned()),
        vendor: "trellis".into(),
        ver: None,
        rev: None,
        expires_at: None,
    };
    let executables = [(trellis_claims::native_target(), executable)];
    write_provider_claims(input, &executables, &issuer, &subject, &options)
}

/// Keeps a component's identity stable across rebuilds: an explicit
/// subject wins, then the identity already embedded, then a saved key.
fn subject_for(args: &SignArgs, wasm: &[u8], name: &str) -> anyhow::Result<String> {
    if let Some(value) = &args.subject {
        let value = value.trim();
        if value.starts_with('M') {
            KeyKind::Component.check_public("subject", value)?;
            return Ok(value.to_owned());
        }
        return Ok(keystore::seed_or_file(value, KeyKind::Component, "subject")?.public_key());
    }
    if let Ok(Some(existing)) = read_component_claims(wasm) {
        return Ok(existing.sub);
    }
    Ok(announce(keystore::load_or_create(name, KeyKind::Component)?).public_key())
}

fn announce((pair, path, created): (KeyPair, PathBuf, bool)) -> KeyPair {
    if created {
        eprintln!(
            "generated {} and saved its seed to {}",
            pair.public_key(),
            path.display()
        );
    }
    pair
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches("_s").to_owned())
        .unwrap_or_else(|| "component".into())
}

fn default_destination(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component".into());
    input.with_file_name(format!("{stem}_s.wasm"))
}
