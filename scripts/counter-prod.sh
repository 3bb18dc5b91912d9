#!/usr/bin/env bash
# The dev-to-prod swap, by hand until wadm lands: moves the running counter
# app that scripts/up.sh started from SQLite to Redis. It starts the
# keyvalue-redis provider, stores the Redis URL as named config, and puts
# the counter's keyvalue link again with keyvalue-redis as its target. The
# component is neither rebuilt nor restarted; new increments go to Redis,
# and the SQLite file keeps the count it had.
#
# TRELLIS_REDIS_URL picks the Redis (default redis://127.0.0.1:6379/).
source "$(dirname "$0")/lib.sh"

REDIS_URL="${TRELLIS_REDIS_URL:-redis://127.0.0.1:6379/}"
ADDRESS="${TRELLIS_COUNTER_ADDRESS:-127.0.0.1:8080}"
WASH="$ROOT/target/release/wash"
SIGNED="$ROOT/examples/build"
[ -x "$WASH" ] && [ -f "$SIGNED/trellis-keyvalue-redis.jwt" ] ||
    die "run ./scripts/up.sh first: it builds and signs what this script starts"

say "starting keyvalue-redis for $REDIS_URL"
"$WASH" start provider "$SIGNED/trellis-keyvalue-redis" keyvalue-redis >/dev/null
"$WASH" config put counter-redis "url=$REDIS_URL" >/dev/null
say "relinking kv-counter to keyvalue-redis"
"$WASH" link put kv-counter keyvalue-redis wasi keyvalue --interface store --interface atomics \
    --target-config counter-redis >/dev/null

say "asking the counter: curl http://$ADDRESS/"
curl -sS "http://$ADDRESS/"
say "stored in Redis under the key default:counter (bucket:key)"
