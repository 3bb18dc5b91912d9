//! `wash call`: call one function of a running component, as another
//! component on the lattice would.
//!
//! Two shapes of call. `wasi:http/incoming-handler.handle` takes an HTTP
//! request built from `--method`, `--path`, `--header` and `--body`, as the
//! http-server provider would send it, and prints the response body. Any
//! other function takes its parameters as JSON arguments, which travel as
//! one MessagePack array; the results come back as an array and are
//! printed as JSON.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::Value as Json;
use trellis_lattice::WitFunction;
use trellis_lattice::http::{HttpRequest, HttpResponse, INCOMING_HANDLER};
use trellis_lattice::link::DEFAULT_LINK_NAME;
use trellis_lattice::rpc::{self, CallHeaders};

use super::lattice::LatticeArgs;
use crate::output::{self, Format, OutputArgs};

/// The caller id `wash` puts in the call headers.
const SOURCE_ID: &str = "wash";

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The component (or provider) to call.
    target: String,
    /// The function, `namespace:package/interface.function`.
    function: String,
    /// The function's arguments, each as JSON (a bare word is sent as a string).
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// HTTP method, for wasi:http/incoming-handler.handle [default: GET].
    #[arg(long)]
    method: Option<String>,
    /// HTTP path and query, for wasi:http/incoming-handler.handle [default: /].
    #[arg(long)]
    path: Option<String>,
    /// An HTTP header `name:value`, for wasi:http/incoming-handler.handle (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// HTTP request body, for wasi:http/incoming-handler.handle.
    #[arg(long)]
    body: Option<String>,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

impl CallArgs {
    fn has_http_flags(&self) -> bool {
        self.method.is_some()
            || self.path.is_some()
            || !self.headers.is_empty()
            || self.body.is_some()
    }
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let function = WitFunction::parse(&args.function).context("reading FUNCTION")?;
    let is_http = function.to_string() == INCOMING_HANDLER;
    if is_http && !args.args.is_empty() {
        bail!(
            "{INCOMING_HANDLER} takes no arguments; describe the request with --method, --path, --header and --body"
        );
    }
    if !is_http && args.has_http_flags() {
        bail!("--method, --path, --header and --body only apply to {INCOMING_HANDLER}");
    }
    let body = if is_http {
        rpc::encode(&http_request(&args)?)?
    } else {
        rpc::encode(&arguments(&args.args)?)?
    };

    let ctl = args.lattice.connect().await?;
    let headers = CallHeaders {
        source_id: SOURCE_ID.to_owned(),
        link_name: DEFAULT_LINK_NAME.to_owned(),
        ..CallHeaders::default()
    };
    let what = || format!("calling {function} on `{}`", args.target);
    let reply = ctl
        .call(&args.target, &function, body, &headers)
        .await
        .with_context(what)?;

    if is_http {
        let response = rpc::decode_reply::<HttpResponse>(&reply).with_context(what)?;
        print_http(&response, args.format.output)
    } else {
        let results = rpc::decode_reply::<rmpv::Value>(&reply).with_context(what)?;
        output::print(Format::Json, &to_json(results), &[])
    }
}

fn http_request(args: &CallArgs) -> anyhow::Result<HttpRequest> {
    let mut request = HttpRequest::get(args.path.as_deref().unwrap_or("/"));
    if let Some(method) = &args.method {
        request.method = method.to_uppercase();
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("header {header:?} is not `name:value`");
        };
        request
            .headers
            .push((name.trim().to_owned(), value.trim().as_bytes().to_vec()));
    }
    if let Some(body) = &args.body {
        request.body = body.as_bytes().to_vec();
    }
    Ok(request)
}

/// The arguments as one MessagePack array, each parsed as JSON if it can be.
fn arguments(args: &[String]) -> anyhow::Result<rmpv::Value> {
    let values = args
        .iter()
        .map(|arg| serde_json::from_str(arg).unwrap_or_else(|_| Json::String(arg.clone())))
        .collect();
    rmpv::ext::to_value(Json::Array(values)).context("encoding the arguments as MessagePack")
}

/// The HTTP response as JSON shows it: text where the bytes are text.
#[derive(Serialize)]
struct HttpView {
    status: u16,
    headers: Vec<(String, Json)>,
    body: Json,
}

fn print_http(response: &HttpResponse, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        let view = HttpView {
            status: response.status,
            headers: response
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), bytes_to_json(value.clone())))
                .collect(),
            body: bytes_to_json(response.body.clone()),
        };
        return output::print(format, &view, &[]);
    }
    if response.status >= 400 {
        eprintln!("HTTP {}", response.status);
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&response.body)?;
    stdout.flush()?;
    Ok(())
}

/// Converts a MessagePack value to JSON: binary becomes a string if it is
/// UTF-8 (most WIT `list<u8>` results are text) and an array otherwise.
fn to_json(value: rmpv::Value) -> Json {
    use rmpv::Value as Mp;
    match value {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => u.into(),
            (None, Some(s)) => s.into(),
            (None, None) => Json::Null,
        },
        Mp::F32(f) => float(f64::from(f)),
        Mp::F64(f) => float(f),
        Mp::String(s) => match s.into_str() {
            Some(text) => Json::String(text),
            None => Json::Null,
        },
        Mp::Binary(bytes) => bytes_to_json(bytes),
        Mp::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Mp::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let key = match to_json(key) {
                        Json::String(text) => text,
                        other => other.to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Mp::Ext(tag, data) => serde_json::json!({"ext": tag, "data": data}),
    }
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn bytes_to_json(bytes: Vec<u8>) -> Json {
    match String::from_utf8(bytes) {
        Ok(text) => Json::String(text),
        Err(err) => Json::Array(err.into_bytes().into_iter().map(Json::from).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_json_with_bare_words_as_strings() {
        let args = ["42", "hello", r#"{"a":[1,true]}"#, "\"quoted\"", "-3"].map(String::from);
        let value = arguments(&args).unwrap();
        assert_eq!(
            to_json(value),
            json!([42, "hello", {"a": [1, true]}, "quoted", -3])
        );
    }

    #[test]
    fn arguments_travel_as_one_msgpack_array() {
        let bytes = rpc::encode(&arguments(&["1".into(), "x".into()]).unwrap()).unwrap();
        let decoded: (u32, String) = rpc::decode(&bytes).unwrap();
        assert_eq!(decoded, (1, "x".into()));
    }

    #[test]
    fn binary_results_are_text_when_they_can_be() {
        let value = rmpv::Value::Array(vec![
            rmpv::Value::Binary(b"hi".to_vec()),
            rmpv::Value::Binary(vec![0xff, 0]),
        ]);
        assert_eq!(to_json(value), json!(["hi", [255, 0]]));
    }

    #[test]
    fn a_typed_reply_reads_as_an_array_of_results() {
        let reply = rpc::encode_reply::<(Option<String>, u64)>(&Ok((Some("v".into()), 7))).unwrap();
        let value = rpc::decode_reply::<rmpv::Value>(&reply).unwrap();
        assert_eq!(to_json(value), json!(["v", 7]));
    }
}
