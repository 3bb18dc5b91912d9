#!/usr/bin/env bash
# Starts a working Trellis node on this machine with the example app:
# installs what is missing, builds Trellis and the example components from
# source, signs them with your development account ($TRELLIS_HOME/keys,
# default ~/.trellis/keys, created on first use), starts a node in the
# background (`wash up --detach`: NATS if none answers, plus a host), runs
# the signed http-hello component on it and calls it once.
#
# Running it again is safe: a node that is already up is reused.
source "$(dirname "$0")/lib.sh"

need_cargo
ensure_wasm_target
ensure_server nats-server nats-server

say "building Trellis (release)"
(cd "$ROOT" && cargo build --release --workspace --quiet)
WASH="$ROOT/target/release/wash"

build_examples
SIGNED="$ROOT/examples/build"
mkdir -p "$SIGNED"
for wasm in "$ROOT"/examples/target/$WASM_TARGET/release/*.wasm; do
    name=$(basename "$wasm" .wasm)
    say "signing ${name//_/-}"
    "$WASH" claims sign "$wasm" --name "${name//_/-}" -o "$SIGNED/${name}_s.wasm" >/dev/null
done

say "starting a node (wash up --detach)"
"$WASH" up --detach

say "running http-hello on it"
"$WASH" start component "$SIGNED/http_hello_s.wasm" http-hello --timeout-ms 30000 >/dev/null
"$WASH" get inventory

say "calling it: wash call http-hello wasi:http/incoming-handler.handle"
"$WASH" call http-hello wasi:http/incoming-handler.handle

cat >&2 <<MSG

The node is up. Try:
  export PATH="$ROOT/target/release:\$PATH"
  wash get hosts
  wash call http-hello wasi:http/incoming-handler.handle --path /anything
  wash down            # stop the node
MSG
