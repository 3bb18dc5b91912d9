#!/usr/bin/env bash
# Three "machines" on one box, each a Linux network namespace with its own
# clustered nats-server (deploy/nats/cluster.conf) and trellis-host; wadm
# runs on the first two. With --edge, a fourth namespace is an edge site:
# a leaf-node nats-server (deploy/nats/leaf.conf) and a host labelled
# site=edge. Needs root (ip netns), openssl, and built binaries.
#
#   deploy/local-cluster.sh up [--edge]   create the machines and start everything
#   deploy/local-cluster.sh status        what runs where
#   deploy/local-cluster.sh env           the variables for wash (connects to m3)
#   deploy/local-cluster.sh kill N        kill -9 machine N's nats-server and host
#   deploy/local-cluster.sh restart N     start machine N's nats-server and host again
#   deploy/local-cluster.sh partition N   cut machine N off the network
#   deploy/local-cluster.sh heal N        connect it again
#   deploy/local-cluster.sh down          stop everything, remove the machines
#
# Settings (environment):
#   TRELLIS_LOCAL_CLUSTER_NAME     prefix of namespaces and links [tlc] (at most 10 characters)
#   TRELLIS_LOCAL_CLUSTER_SUBNET   first three octets of the /24 [10.77.0]
#   TRELLIS_LOCAL_CLUSTER_DIR      state: certificates, passwords, logs, data [/tmp/trellis-$NAME]
#   TRELLIS_BIN                    where trellis-host, wadm and wash are [target/release, else target/debug]
#   TRELLIS_ALLOWED_ISSUERS        accounts hosts run code from [wash's `default` account]
#   TRELLIS_HOST_TIMEOUT_SECS      wadm's host timeout [60]
#   TRELLIS_NATS_SERVER            the nats-server to run [the newest found]
#
# Machine N has address $SUBNET.N (the edge .10); the box itself is
# $SUBNET.254 on the bridge. Redis, when installed, runs on m3 at
# $SUBNET.3:6379 for examples/manifests/prod.yaml. Traffic only ever goes
# to these addresses.
source "$(dirname "$0")/../scripts/lib.sh"

NAME=${TRELLIS_LOCAL_CLUSTER_NAME:-tlc}
SUBNET=${TRELLIS_LOCAL_CLUSTER_SUBNET:-10.77.0}
STATE=${TRELLIS_LOCAL_CLUSTER_DIR:-/tmp/trellis-$NAME}
HOST_TIMEOUT=${TRELLIS_HOST_TIMEOUT_SECS:-60}
# Hosts beat four times per host timeout, so wadm notices a dead one
# within the timeout of its death.
HEARTBEAT=$((HOST_TIMEOUT / 4 > 0 ? HOST_TIMEOUT / 4 : 1))
BRIDGE="$NAME-br"
MACHINES=(1 2 3)
CONF="$ROOT/deploy/nats"

[ ${#NAME} -le 10 ] || die "TRELLIS_LOCAL_CLUSTER_NAME must be at most 10 characters (Linux link names are short)"

binary_dir() {
    if [ -n "${TRELLIS_BIN:-}" ]; then
        echo "$TRELLIS_BIN"
    elif [ -x "$ROOT/target/release/trellis-host" ]; then
        echo "$ROOT/target/release"
    elif [ -x "$ROOT/target/debug/trellis-host" ]; then
        echo "$ROOT/target/debug"
    else
        die "no trellis-host built; run: cargo build --release --workspace --bins (or set TRELLIS_BIN)"
    fi
}

ns() { echo "$NAME-m$1"; }
addr() { if [ "$1" = edge ]; then echo "$SUBNET.10"; else echo "$SUBNET.$1"; fi; }
urls() {
    # This machine's own server first, then the others.
    local own=$1 list="tls://$(addr "$1"):4222" m
    for m in "${MACHINES[@]}"; do
        [ "$m" = "$own" ] || list="$list,tls://$(addr "$m"):4222"
    done
    echo "$list"
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "local-cluster.sh makes network namespaces and needs root; run it with sudo"
    command -v ip >/dev/null || die "the ip command is missing; install iproute2"
    command -v openssl >/dev/null || die "openssl is missing; install openssl"
}

# One CA and one certificate for every machine: it names each machine's
# address, and serves for both server and client use, since routes and
# leaf connections use it both ways.
make_certs() {
    local dir="$STATE/tls" sans="IP:127.0.0.1" m
    mkdir -p "$dir"
    for m in "${MACHINES[@]}" edge; do sans="$sans,IP:$(addr "$m")"; done
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=trellis local cluster CA" \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=trellis-nats" \
        -keyout "$dir/server-key.pem" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 30 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
    chmod 600 "$dir"/*-key.pem
}

# The public key of wash's `default` account (what scripts/up.sh signs
# with), or nothing.
default_account() {
    "$1" keys list -o json | sed -n '/default_account.nk"/{n;s/.*"public_key": "\(.*\)".*/\1/p}'
}

make_secrets() {
    local wash cluster_seed issuers
    wash="$(binary_dir)/wash"
    cluster_seed=$("$wash" keys gen cluster -o json | sed -n 's/.*"seed": "\(.*\)".*/\1/p')
    issuers=${TRELLIS_ALLOWED_ISSUERS:-}
    if [ -z "$issuers" ]; then
        issuers=$(default_account "$wash")
        if [ -z "$issuers" ]; then
            "$wash" keys gen account --name default >/dev/null
            issuers=$(default_account "$wash")
        fi
    fi
    umask 077
    {
        for role in HOST PROVIDER WADM OPERATOR SECRETS LEAF; do
            # A letter first: nats-server reads a value from the
            # environment as config, where a leading digit makes a number.
            echo "TRELLIS_${role}_PASSWORD=p$(openssl rand -hex 24)"
        done
        echo "TRELLIS_CLUSTER_SEED=$cluster_seed"
        echo "TRELLIS_ALLOWED_ISSUERS=$issuers"
    } >"$STATE/secrets.env"
    umask 022
}

load_secrets() {
    [ -f "$STATE/secrets.env" ] || die "no local cluster is up (no $STATE/secrets.env); run: $0 up"
    set -a
    # shellcheck disable=SC1091
    . "$STATE/secrets.env"
    set +a
}

make_machine() {
    local m=$1 n
    n=$(ns "$m")
    ip netns add "$n"
    ip link add "$NAME-v$m" type veth peer name eth0 netns "$n"
    ip link set "$NAME-v$m" master "$BRIDGE" up
    ip -n "$n" addr add "$(addr "$m")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    mkdir -p "$STATE/m$m"
}

# Starts `$@` in machine $1's namespace in the background; its pid goes to
# $STATE/m$1/$2.pid and its output to $STATE/m$1/$2.log.
spawn() {
    local m=$1 what=$2
    shift 2
    ip netns exec "$(ns "$m")" "$@" >"$STATE/m$m/$what.log" 2>&1 </dev/null &
    echo $! >"$STATE/m$m/$what.pid"
}

tls_env() {
    export TRELLIS_NATS_TLS_CERT="$STATE/tls/server.pem" TRELLIS_NATS_TLS_KEY="$STATE/tls/server-key.pem" \
        TRELLIS_NATS_TLS_CA="$STATE/tls/ca.pem"
}

start_nats() {
    local m=$1 nats
    nats=$(nats_server_choice) || die "nats-server is not installed; run scripts/up.sh, or apt-get install nats-server"
    tls_env
    mkdir -p "$STATE/m$m/jetstream"
    if [ "$m" = edge ]; then
        TRELLIS_NATS_NAME=edge TRELLIS_NATS_LISTEN="$(addr edge):4222" \
            TRELLIS_NATS_HUB_1="nats-leaf://leaf:$TRELLIS_LEAF_PASSWORD@$(addr 1):7422" \
            TRELLIS_NATS_HUB_2="nats-leaf://leaf:$TRELLIS_LEAF_PASSWORD@$(addr 2):7422" \
            TRELLIS_NATS_HUB_3="nats-leaf://leaf:$TRELLIS_LEAF_PASSWORD@$(addr 3):7422" \
            spawn edge nats "${nats%% *}" -c "$CONF/leaf.conf"
        return
    fi
    TRELLIS_NATS_NAME="m$m" TRELLIS_NATS_LISTEN="$(addr "$m"):4222" \
        TRELLIS_NATS_CLUSTER_LISTEN="$(addr "$m"):6222" TRELLIS_NATS_LEAF_LISTEN="$(addr "$m"):7422" \
        TRELLIS_NATS_ROUTE_1="nats-route://$(addr 1):6222" TRELLIS_NATS_ROUTE_2="nats-route://$(addr 2):6222" \
        TRELLIS_NATS_ROUTE_3="nats-route://$(addr 3):6222" TRELLIS_NATS_STORE="$STATE/m$m/jetstream" \
        spawn "$m" nats "${nats%% *}" -c "$CONF/cluster.conf"
}

wait_nats() {
    local m=$1 tries=0
    until ip netns exec "$(ns "$m")" bash -c "exec 3<>/dev/tcp/$(addr "$m")/4222" 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || die "machine $m's nats-server did not answer; see $STATE/m$m/nats.log"
        sleep 0.1
    done
}

common_flags() {
    echo --nats-tls-ca "$STATE/tls/ca.pem"
}

start_host() {
    local m=$1 url label
    local extra=()
    if [ "$m" = edge ]; then
        url="tls://$(addr edge):4222"
        label=site=edge
        extra=(--js-domain hub)
    else
        url=$(urls "$m")
        label=site=hub
    fi
    TRELLIS_NATS_PASSWORD=$TRELLIS_HOST_PASSWORD TRELLIS_PROVIDER_NATS_PASSWORD=$TRELLIS_PROVIDER_PASSWORD \
        spawn "$m" host "$(binary_dir)/trellis-host" --nats-url "$url" $(common_flags) \
        --nats-user host --provider-nats-user provider \
        --allowed-issuers "$TRELLIS_ALLOWED_ISSUERS" --data-dir "$STATE/m$m/data" \
        --label "machine=m$m" --label "$label" --heartbeat-secs "$HEARTBEAT" "${extra[@]}"
}

start_wadm() {
    local m=$1
    TRELLIS_NATS_PASSWORD=$TRELLIS_WADM_PASSWORD \
        spawn "$m" wadm "$(binary_dir)/wadm" --nats-url "$(urls "$m")" $(common_flags) --nats-user wadm \
        --host-timeout-secs "$HOST_TIMEOUT"
}

start_redis() {
    command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || return 0
    # Protected mode refuses every address but loopback; this network is
    # the namespaces' own.
    spawn 3 redis redis-server --bind "$(addr 3)" --port 6379 --save "" --appendonly no --protected-mode no
}

stop_pid() {
    local file=$1 signal=${2:-TERM} pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill -"$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}

machine_or_die() {
    case "${1:-}" in
    1 | 2 | 3 | edge) ;;
    *) die "name a machine: 1, 2, 3 or edge" ;;
    esac
    [ -e "/run/netns/$(ns "$1")" ] || die "machine $1 is not up"
}

cmd_up() {
    need_root
    local edge=0
    [ "${1:-}" = --edge ] && edge=1
    [ ! -e "/run/netns/$(ns 1)" ] || die "a local cluster named $NAME is already up; $0 down first"
    rm -rf "$STATE"
    mkdir -p "$STATE"
    say "making machines $(ns 1) $(ns 2) $(ns 3)$([ $edge = 1 ] && echo " and the edge $(ns edge)") on $SUBNET.0/24"
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.254/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for m in "${MACHINES[@]}"; do make_machine "$m"; done
    [ $edge = 1 ] && make_machine edge
    make_certs
    make_secrets
    load_secrets
    say "starting $(nats_server_version) on each machine, clustered"
    for m in "${MACHINES[@]}"; do start_nats "$m"; done
    for m in "${MACHINES[@]}"; do wait_nats "$m"; done
    if [ $edge = 1 ]; then
        start_nats edge
        wait_nats edge
    fi
    start_redis
    say "starting a host on each machine, and wadm on m1 and m2"
    for m in "${MACHINES[@]}"; do start_host "$m"; done
    [ $edge = 1 ] && start_host edge
    start_wadm 1
    start_wadm 2
    wait_hosts $((3 + edge))
    cmd_status
    cat >&2 <<MSG

Drive it with wash, connected to m3:
  eval "\$($0 env)"
  wash get hosts
MSG
}

# Waits until $1 hosts answer (a cluster that just booted elects its
# JetStream leaders first, which takes a few seconds).
wait_hosts() {
    local want=$1 seen=0
    eval "$(cmd_env)"
    for _ in $(seq 1 180); do
        seen=$("$(binary_dir)/wash" get hosts -o json 2>/dev/null | grep -c '"friendly_name"' || true)
        [ "$seen" -ge "$want" ] && return
        sleep 0.5
    done
    die "only $seen of $want hosts answered within 90 s; see the logs in $STATE/m*/host.log"
}

cmd_env() {
    load_secrets
    echo "export TRELLIS_NATS_URL=$(urls 3) TRELLIS_NATS_TLS_CA=$STATE/tls/ca.pem TRELLIS_NATS_USER=operator TRELLIS_NATS_PASSWORD=$TRELLIS_OPERATOR_PASSWORD"
}

cmd_status() {
    local m what pid state
    for m in "${MACHINES[@]}" edge; do
        [ -d "$STATE/m$m" ] || continue
        printf 'm%-5s %-15s' "$m" "$(addr "$m")"
        if ip link show "$NAME-v$m" 2>/dev/null | grep -q "state DOWN\|,DOWN\|<.*NO-CARRIER"; then
            printf ' [partitioned]'
        fi
        for what in nats host wadm redis; do
            [ -f "$STATE/m$m/$what.pid" ] || continue
            pid=$(cat "$STATE/m$m/$what.pid")
            if kill -0 "$pid" 2>/dev/null; then state=up; else state=dead; fi
            printf ' %s:%s' "$what" "$state"
        done
        echo
    done
}

cmd_kill() {
    machine_or_die "${1:-}"
    stop_pid "$STATE/m$1/host.pid" KILL
    stop_pid "$STATE/m$1/nats.pid" KILL
}

cmd_restart() {
    machine_or_die "${1:-}"
    load_secrets
    stop_pid "$STATE/m$1/host.pid"
    stop_pid "$STATE/m$1/nats.pid"
    start_nats "$1"
    wait_nats "$1"
    start_host "$1"
}

cmd_partition() {
    machine_or_die "${1:-}"
    ip link set "$NAME-v$1" down
}

cmd_heal() {
    machine_or_die "${1:-}"
    ip link set "$NAME-v$1" up
}

cmd_down() {
    need_root
    local m what
    for m in "${MACHINES[@]}" edge; do
        for what in wadm host redis nats; do stop_pid "$STATE/m$m/$what.pid"; done
        ip netns del "$(ns "$m")" 2>/dev/null || true
        ip link del "$NAME-v$m" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$STATE"
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
kill) cmd_kill "${2:-}" ;;
restart) cmd_restart "${2:-}" ;;
partition) cmd_partition "${2:-}" ;;
heal) cmd_heal "${2:-}" ;;
*) die "usage: $0 up [--edge] | status | env | kill N | restart N | partition N | heal N | down" ;;
esac
