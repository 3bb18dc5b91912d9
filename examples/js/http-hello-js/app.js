// http-hello-js: the hello-world component in JavaScript.
//
// componentize-js embeds StarlingMonkey (SpiderMonkey built for WASI) with
// this file, and its `fetch-event` feature turns each
// wasi:http/incoming-handler call into a web-standard fetch event, so the
// handler is the one a service worker or Cloudflare Worker would have.
// `GET /?name=Ada` greets Ada; every answer names the runtime, so a test
// can tell this component from the Rust http-hello.

addEventListener("fetch", (event) => event.respondWith(answer(event.request)));

function answer(request) {
  const url = new URL(request.url);
  const name = url.searchParams.get("name") || "Trellis";
  return new Response(`Hello, ${name}, from JavaScript\n`, {
    headers: { "content-type": "text/plain" },
  });
}
