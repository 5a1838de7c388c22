# Shared helpers of scripts/test and scripts/run. Every ensure_* is idempotent and quick when
# the thing is already present, and installs only from rustup, crates.io or apt.

# b3sum is pinned so every machine compares against the same tool.
B3SUM_VERSION=1.8.2

step() { printf '\n==> %s\n' "$*"; }

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_b3sum() {
  if ! command -v b3sum >/dev/null 2>&1; then
    step "installing b3sum $B3SUM_VERSION (the reference our content ids are checked against)"
    cargo install --locked b3sum --version "$B3SUM_VERSION"
  fi
}

# The wasm-bindgen CLI must match the wasm-bindgen crate exactly (wasm/Cargo.toml pins it).
WASM_BINDGEN_VERSION=0.2.130

ensure_wasm_bindgen() {
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (from crates.io)"
    # Not --locked: its lockfile names a webpki-roots version the registry lacks.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
}

# Debian's Chromium and its matching chromedriver, for the browser tests.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    step "installing chromium and chromium-driver (apt)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver
  fi
}

# Debian's Prometheus server and promtool, for the metrics tests (started by the tests).
ensure_prometheus() {
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    step "installing prometheus and promtool (apt)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus
  fi
}

# Firefox ESR (apt) and geckodriver (crates.io; Debian does not package it), for the dashboard
# test in Firefox.
GECKODRIVER_VERSION=0.37.1

ensure_firefox() {
  if [ ! -x /usr/bin/firefox-esr ]; then
    step "installing firefox-esr (apt)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q firefox-esr
  fi
  if [ "$(geckodriver --version 2>/dev/null | head -n 1 | cut -d' ' -f2)" != "$GECKODRIVER_VERSION" ]; then
    step "installing geckodriver $GECKODRIVER_VERSION (from crates.io)"
    cargo install --locked geckodriver --version "$GECKODRIVER_VERSION"
  fi
}

# Chromium offers WebRTC host candidates only on the interface of the default route, never on
# loopback: two pages on a machine with no default route cannot connect to each other. On
# such a machine (an offline sandbox), give it a veth interface with a test address
# (198.18.0.0/15 is reserved for benchmarks) and a default route through it.
ensure_browser_route() {
  if ip -4 route show default 2>/dev/null | grep -q .; then
    return
  fi
  step "no default route: adding a veth interface for WebRTC between local browsers"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  ip link show pollen-test0 >/dev/null 2>&1 ||
    $sudo ip link add pollen-test0 type veth peer name pollen-test1
  $sudo ip link set pollen-test1 up
  $sudo ip addr replace 198.18.0.1/24 dev pollen-test0
  $sudo ip link set pollen-test0 up
  $sudo ip route replace default dev pollen-test0
}

# Builds the browser peer and the dashboard into target/pollen-www: the pages, and pkg/ from
# wasm-bindgen (pollen_wasm.js for the minimal peer page, pollen_web.js for the dashboard).
build_www() {
  step "build the browser peer (pollen-wasm) and the dashboard (pollen-web) into target/pollen-www"
  cargo build -p pollen-wasm -p pollen-web --target wasm32-unknown-unknown --release --locked
  mkdir -p target/pollen-www
  for crate in pollen_wasm pollen_web; do
    wasm-bindgen --target web --no-typescript --out-dir target/pollen-www/pkg \
      "target/wasm32-unknown-unknown/release/$crate.wasm"
  done
  cp wasm/www/* web/www/* target/pollen-www/
}
