#!/usr/bin/env bash
# Starts a working Trellis node on this machine with the example app:
# installs what is missing, builds Trellis and the example components from
# source, signs the components and providers with your development account
# ($TRELLIS_HOME/keys, default ~/.trellis/keys, created on first use),
# starts a node in the background (`wash up --detach`: NATS if none
# answers, a host and wadm), and deploys examples/manifests/dev.yaml on it:
# the kv-counter component behind the http-server provider on
# 127.0.0.1:8080, counting in SQLite through keyvalue-sqlite. Then it asks
# the counter once.
#
# Running it again is safe: a node that is already up is reused, and the
# app is deployed again (the same version: nothing changes).
source "$(dirname "$0")/lib.sh"

# The address examples/manifests/dev.yaml gives the http-server.
ADDRESS=127.0.0.1:8080

need_cargo
ensure_wasm_target
ensure_server nats-server nats-server
ensure_current_nats

say "building Trellis (release)"
(cd "$ROOT" && cargo build --release --workspace --bins --quiet)
BIN="$ROOT/target/release"
WASH="$BIN/wash"

build_examples
SIGNED="$ROOT/examples/build"
mkdir -p "$SIGNED"
for wasm in "$ROOT"/examples/target/$WASM_TARGET/release/*.wasm; do
    name=$(basename "$wasm" .wasm)
    say "signing ${name//_/-}"
    "$WASH" claims sign "$wasm" --name "${name//_/-}" -o "$SIGNED/${name}_s.wasm" >/dev/null
done
for provider in trellis-keyvalue-sqlite trellis-keyvalue-redis trellis-http-server trellis-messaging-nats trellis-blobstore-fs trellis-blobstore-nats; do
    # A copy, so a later `cargo build` cannot change the signed bytes.
    if ! cmp -s "$BIN/$provider" "$SIGNED/$provider"; then
        cp "$BIN/$provider" "$SIGNED/$provider"
    fi
    say "signing the ${provider#trellis-} provider"
    "$WASH" claims sign-provider "$SIGNED/$provider" --name "${provider#trellis-}" >/dev/null
done

say "starting a node (wash up --detach; if it starts NATS, it runs $(nats_server_version))"
"$WASH" up --detach

# wash up starts wadm beside the host; give its API a moment to answer.
for _ in $(seq 1 100); do
    "$WASH" app list >/dev/null 2>&1 && break
    sleep 0.2
done
say "deploying the counter app: wash app deploy examples/manifests/dev.yaml"
"$WASH" app deploy "$ROOT/examples/manifests/dev.yaml" --wait
"$WASH" get inventory

say "asking the counter: curl http://$ADDRESS/"
for _ in $(seq 1 50); do
    if count=$(curl -fsS "http://$ADDRESS/" 2>/dev/null); then
        printf 'count: %s\n' "$count"
        break
    fi
    sleep 0.2
done
[ -n "${count:-}" ] || die "the counter did not answer on http://$ADDRESS/; see 'wash get inventory' and the node's log in ${TRELLIS_HOME:-$HOME/.trellis}"

cat >&2 <<MSG

The node is up, running the counter app on http://$ADDRESS/. Try:
  export PATH="$ROOT/target/release:\$PATH"
  curl http://$ADDRESS/                 # counts up, in SQLite
  wash app deploy examples/manifests/prod.yaml   # the same running component, now on Redis
  wash get inventory
  wash down                             # stop the node and its providers
MSG
