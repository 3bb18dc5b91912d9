#!/usr/bin/env bash
# Runs the whole Trellis test suite on this machine. Installs what the tests
# need (the wasm32-wasip2 target, nats-server, redis-server, docker-registry)
# when missing.
# Tests start their own private servers; nothing here uses the machine's
# shared NATS or Redis.
source "$(dirname "$0")/lib.sh"

need_cargo
ensure_wasm_target
ensure_server nats-server nats-server
ensure_current_nats
ensure_server redis-server redis-server
ensure_server docker-registry docker-registry
# The security tests make their own certificate authority with openssl.
ensure_server openssl openssl
build_examples

cd "$ROOT"
# End-to-end tests run the real trellis-host and wash binaries; build them
# up front rather than from inside the first tests that need them.
say "building the binaries the end-to-end tests run"
cargo build --workspace --bins --quiet

say "tests run $(nats_server_version)"
if cargo nextest --version >/dev/null 2>&1; then
    say "running the tests with cargo-nextest"
    cargo nextest run --workspace --no-fail-fast
    say "running the doc tests"
    cargo test --workspace --doc
    # The newest server ran everything above; the cluster, JetStream and
    # failover tests run again against Debian's, which users still have.
    debian=/usr/sbin/nats-server
    if [ -z "${TRELLIS_NATS_SERVER:-}" ] && [ -x "$debian" ] &&
        [ "$(nats_server_choice | cut -d' ' -f1)" != "$debian" ]; then
        say "running the cluster and JetStream tests against $(TRELLIS_NATS_SERVER=$debian nats_server_version)"
        TRELLIS_NATS_SERVER=$debian cargo nextest run --no-fail-fast \
            -p trellis-lattice -p wadm -p trellis-e2e \
            -E 'binary(cluster) | binary(client) | binary(chunk) | package(wadm) | test(/^failover::/) | test(/^cluster::/)'
    fi
else
    say "running the tests with cargo test (install cargo-nextest for faster runs)"
    cargo test --workspace --no-fail-fast
fi
