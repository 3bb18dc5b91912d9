//! `wash claims`: sign components and show what their claims say.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use trellis_claims::{
    Claims, ClaimsError, ComponentMetadata, KeyKind, KeyPair, Policy, SignOptions, now_unix,
    read_component_claims, sign_component, verify_component,
};

use crate::keystore;
use crate::output::{self, Format, OutputArgs};

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
    /// Show a component's claims and whether they verify.
    Inspect {
        /// The .wasm file to inspect.
        file: PathBuf,
        #[command(flatten)]
        format: OutputArgs,
    },
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
    /// The target triple the executable is for [default: this machine's, e.g. x86_64-linux].
    #[arg(long)]
    target: Option<String>,
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
        ClaimsCommand::Inspect { file, format } => inspect(&file, format.output),
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
    inspect(&destination, format)
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
    let target = args.target.unwrap_or_else(trellis_claims::native_target);
    let options = trellis_claims::ProviderSignOptions {
        name: Some(name),
        vendor: args.vendor,
        ver: args.ver,
        rev: None,
        expires_at: args.expires_in_days.map(|days| now_unix() + days * DAY),
    };
    let token = trellis_claims::sign_provider(
        [(target.as_str(), executable.as_slice())],
        &issuer,
        &subject,
        &options,
    )
    .with_context(|| format!("signing {}", args.input.display()))?;
    let destination = trellis_claims::provider_claims_path(&args.input);
    std::fs::write(&destination, &token.jwt)
        .with_context(|| format!("writing {}", destination.display()))?;
    eprintln!(
        "signed {} for {target} -> {}",
        args.input.display(),
        destination.display()
    );
    println!("{subject}");
    Ok(())
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

/// What `inspect` reports, in both formats.
#[derive(Serialize)]
struct Inspection {
    name: Option<String>,
    issuer: String,
    subject: String,
    hash: String,
    issued_at: u64,
    expires: Option<u64>,
    not_before: Option<u64>,
    version: Option<String>,
    revision: Option<i32>,
    tags: Vec<String>,
    call_alias: Option<String>,
    wascap_revision: Option<u32>,
    valid: bool,
    problem: Option<String>,
}

fn inspect(file: &Path, format: Format) -> anyhow::Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let Some(claims) = read_component_claims(&wasm)
        .with_context(|| format!("reading the claims of {}", file.display()))?
    else {
        bail!("{}: {}", file.display(), ClaimsError::NoClaims);
    };
    let problem = verify_component(&wasm, &Policy::any_issuer(), now_unix())
        .err()
        .map(|e| e.to_string());
    let report = inspection(claims, problem);
    output::print(format, &report, &rows(&report))?;
    match &report.problem {
        None => Ok(()),
        Some(problem) => bail!("{} does not verify: {problem}", file.display()),
    }
}

fn inspection(claims: Claims<ComponentMetadata>, problem: Option<String>) -> Inspection {
    let meta = claims.metadata.unwrap_or_default();
    Inspection {
        name: meta.name,
        issuer: claims.iss,
        subject: claims.sub,
        hash: meta.hash,
        issued_at: claims.iat,
        expires: claims.exp,
        not_before: claims.nbf,
        version: meta.ver,
        revision: meta.rev,
        tags: meta.tags.unwrap_or_default(),
        call_alias: meta.call_alias,
        wascap_revision: claims.wascap_revision,
        valid: problem.is_none(),
        problem,
    }
}

fn rows(report: &Inspection) -> Vec<(&'static str, String)> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    vec![
        ("Name", or_none(&report.name)),
        ("Issuer", report.issuer.clone()),
        ("Subject", report.subject.clone()),
        ("Hash", report.hash.clone()),
        ("Issued", timestamp(report.issued_at)),
        ("Expires", report.expires.map_or("never".into(), timestamp)),
        (
            "Not Before",
            report.not_before.map_or("immediately".into(), timestamp),
        ),
        ("Version", or_none(&report.version)),
        (
            "Revision",
            report.revision.map_or("-".into(), |r| r.to_string()),
        ),
        (
            "Tags",
            if report.tags.is_empty() {
                "-".into()
            } else {
                report.tags.join(", ")
            },
        ),
        ("Call Alias", or_none(&report.call_alias)),
        (
            "Verified",
            match &report.problem {
                None => "yes".into(),
                Some(problem) => format!("NO: {problem}"),
            },
        ),
    ]
}

fn timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}
