//! Call latency of a Trellis host, printed as a table.
//!
//! Measures, in one run on one machine:
//! - cold start: verify + compile + link (the scale command's round trip on
//!   a fresh host with no compile cache), then instantiate + first call of
//!   `http-hello` in-process;
//! - a restart: the same scale on a host restarted on the same data dir,
//!   which loads the component from its disk compile cache;
//! - warm calls of `http-hello` in-process (each call instantiates afresh);
//! - the same call as `wash call` makes it: an RPC over loopback NATS;
//! - a raw NATS request/reply to an echo responder, as the floor.
//!
//! Run with `cargo bench -p trellis-host`. A private nats-server is started.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use trellis_claims::{KeyKind, SignOptions};
use trellis_host::{Host, HostConfig};
use trellis_lattice::client::CtlClient;
use trellis_lattice::connect::NatsConnection;
use trellis_lattice::ctl::ScaleComponentCommand;
use trellis_lattice::http::{HttpRequest, HttpResponse, INCOMING_HANDLER};
use trellis_lattice::rpc::{self, CallHeaders};
use trellis_lattice::wit::WitFunction;
use trellis_test_support::{NatsServer, example_component};

const COLD_SAMPLES: usize = 5;
const WARM_CALLS: usize = 2_000;

struct Stats {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Stats {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index]
    }

    fn row(&self) -> String {
        let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
        format!(
            "{:<44} {:>6} {:>10} {:>10} {:>10}",
            self.name,
            self.samples.len(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99)),
            ms(*self.samples.iter().max().unwrap()),
        )
    }
}

async fn time<F: std::future::Future>(f: F) -> (Duration, F::Output) {
    let started = Instant::now();
    let out = f.await;
    (started.elapsed(), out)
}

/// How long `host` takes to answer a scale of `image` to 16 instances of
/// `hello`.
async fn scale_hello(ctl: &CtlClient, host: &Host, image: &str) -> Duration {
    let command = ScaleComponentCommand {
        component_id: "hello".into(),
        component_ref: image.to_owned(),
        max_instances: 16,
        host_id: host.id().into(),
        ..Default::default()
    };
    let (took, result) = time(ctl.scale_component(&command)).await;
    result.unwrap();
    took
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(example_component("http-hello").unwrap()).unwrap();
    let account = KeyKind::Account.generate();
    let subject = KeyKind::Component.generate().public_key();
    let signed =
        trellis_claims::sign_component(&wasm, &account, &subject, &SignOptions::default()).unwrap();
    let image = dir.path().join("hello_s.wasm");
    std::fs::write(&image, signed).unwrap();
    let image = format!("file://{}", image.display());
    let request = HttpRequest::get("/");

    let nats_client = async_nats::connect(nats.url()).await.unwrap();
    let ctl = CtlClient::new(nats_client.clone(), "bench")
        .unwrap()
        .with_timeout(Duration::from_secs(60));
    let data_dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        data_dir: data_dir.path().to_owned(),
        lattice: "bench".into(),
        nats: NatsConnection::new(nats.url()),
        allow_any_issuer: true,
        ..HostConfig::default()
    };

    let mut compile = Stats {
        name: "cold: verify + compile + link (scale)",
        samples: vec![],
    };
    let mut first = Stats {
        name: "cold: instantiate + first call, in-process",
        samples: vec![],
    };
    let uncached = HostConfig {
        compile_cache_max_bytes: 0,
        ..config.clone()
    };
    for _ in 0..COLD_SAMPLES {
        let host = Host::start(uncached.clone()).await.unwrap();
        let took = scale_hello(&ctl, &host, &image).await;
        compile.samples.push(took);
        let component = host.inner().component("hello").unwrap();
        let (took, response) = time(component.handle_http(request.clone())).await;
        assert_eq!(response.unwrap().status, 200);
        first.samples.push(took);
        host.stop("benchmark sample done").await;
    }

    let mut restart = Stats {
        name: "restart: verify + load cached + link (scale)",
        samples: vec![],
    };
    // The first start fills the cache; each later one is a restart.
    for sample in 0..=COLD_SAMPLES {
        let host = Host::start(config.clone()).await.unwrap();
        let took = scale_hello(&ctl, &host, &image).await;
        if sample > 0 {
            assert_eq!(host.compile_cache_hits(), 1, "a restart compiled again");
            restart.samples.push(took);
        }
        host.stop("benchmark sample done").await;
    }

    let host = Host::start(config.clone()).await.unwrap();
    scale_hello(&ctl, &host, &image).await;
    let component = host.inner().component("hello").unwrap();
    let mut warm = Stats {
        name: "warm call, in-process",
        samples: vec![],
    };
    for _ in 0..WARM_CALLS {
        let (took, response) = time(component.handle_http(request.clone())).await;
        assert_eq!(response.unwrap().status, 200);
        warm.samples.push(took);
    }

    let handle = WitFunction::parse(INCOMING_HANDLER).unwrap();
    let body = rpc::encode(&request).unwrap();
    let headers = CallHeaders {
        source_id: "bench".into(),
        link_name: "default".into(),
        ..Default::default()
    };
    let mut over_nats = Stats {
        name: "call over loopback NATS (wash call path)",
        samples: vec![],
    };
    for _ in 0..WARM_CALLS {
        let (took, reply) = time(ctl.call("hello", &handle, body.clone(), &headers)).await;
        let response: HttpResponse = rpc::decode_reply(&reply.unwrap()).unwrap();
        assert_eq!(response.status, 200);
        over_nats.samples.push(took);
    }

    let mut echo = nats_client.subscribe("bench.echo").await.unwrap();
    let responder_client = nats_client.clone();
    let responder = tokio::spawn(async move {
        while let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                let _ = responder_client.publish(reply, message.payload).await;
            }
        }
    });
    nats_client.flush().await.unwrap();
    let mut raw = Stats {
        name: "raw NATS request/reply (echo)",
        samples: vec![],
    };
    for _ in 0..WARM_CALLS {
        let (took, reply) = time(nats_client.request("bench.echo", body.clone().into())).await;
        reply.unwrap();
        raw.samples.push(took);
    }
    responder.abort();
    host.stop("benchmark done").await;

    println!();
    println!(
        "trellis-host call latency (http-hello, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<44} {:>6} {:>10} {:>10} {:>10}",
        "measurement", "n", "p50 ms", "p99 ms", "max ms"
    );
    for stats in [&compile, &restart, &first, &warm, &over_nats, &raw] {
        println!("{}", stats.row());
    }
    let ratio =
        |a: &Stats, b: &Stats| a.percentile(0.5).as_secs_f64() / b.percentile(0.5).as_secs_f64();
    println!();
    println!(
        "call over NATS / raw NATS request/reply, p50: {:.2}x (target <= 1.30x)",
        ratio(&over_nats, &raw)
    );
    println!(
        "restart from the disk cache / cold compile, p50: {:.2}x",
        ratio(&restart, &compile)
    );
}
