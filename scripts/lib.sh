# Shared helpers of scripts/test, scripts/run and scripts/fuzz-long. Every ensure_* is
# idempotent and quick when the thing is already present, and installs only from rustup,
# crates.io or apt.

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

# The fuzz targets (fuzz/): built as cargo-fuzz builds them (libFuzzer, sanitizer coverage,
# comparisons traced, debug assertions and overflow checks on; AddressSanitizer only with
# FUZZ_ASAN=1, as no Pollen crate has unsafe code and it costs 3 to 7 times the speed), with
# plain cargo and nightly, so nothing needs installing (not even cargo-fuzz); the binaries
# are libFuzzer's and run directly.
FUZZ_RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

# The names of the fuzz targets.
fuzz_targets() {
  awk '/^\[\[bin\]\]/ { bin = 1 } bin && /^name = / { gsub(/"/, "", $3); print $3; bin = 0 }' \
    fuzz/Cargo.toml
}

# Builds every fuzz target and sets FUZZ_BIN to the directory of the binaries. FUZZ_ASAN=1
# adds AddressSanitizer (for the unsafe code of dependencies).
build_fuzz_targets() {
  local dir host flags=$FUZZ_RUSTFLAGS
  dir="${CARGO_TARGET_DIR:-target}/fuzz"
  if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    flags="$flags -Zsanitizer=address"
    dir="$dir-asan"
  fi
  host=$(rustc +nightly -vV | sed -n 's/^host: //p')
  # An explicit --target keeps the flags off build scripts and proc macros.
  RUSTFLAGS="$flags" cargo +nightly build --manifest-path fuzz/Cargo.toml --locked --release \
    --target "$host" --target-dir "$dir"
  FUZZ_BIN="$dir/$host/release"
}

# Fuzzes target $1 for $2 seconds in directory $3: from a copy of its kept corpus
# (fuzz/corpus/$1, which stays as it is) in $3/corpus, logging to $3/log, a crashing input
# to $3/crash-*, and libFuzzer's exit status to $3/status.
fuzz_target() {
  local target=$1 seconds=$2 work=$3
  rm -rf "$work"
  mkdir -p "$work/corpus"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -R "fuzz/corpus/$target/." "$work/corpus/"
  fi
  if "$FUZZ_BIN/$target" "$work/corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" >"$work/log" 2>&1; then
    echo 0 >"$work/status"
  else
    echo $? >"$work/status"
  fi
}

# Fuzzes every target for $1 seconds, $3 at a time, in directories under $2, and prints
# executions and coverage per target (libFuzzer's last status line and final stats). Fails,
# with the end of the log and how to replay the input, if any target crashed.
fuzz_all() {
  local seconds=$1 root=$2 jobs=$3 target work status last cov ft corp execs rate failed=()
  for target in $(fuzz_targets); do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
      wait -n || true
    done
    fuzz_target "$target" "$seconds" "$root/$target" &
  done
  wait
  printf '%-18s %14s %10s %7s %7s %7s\n' target execs execs/s cov ft corpus
  for target in $(fuzz_targets); do
    work="$root/$target"
    last=$(grep -E '^#[0-9]+' "$work/log" 2>/dev/null | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" 2>/dev/null || true)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" 2>/dev/null || true)
    printf '%-18s %14s %10s %7s %7s %7s\n' "$target" "${execs:-?}" "${rate:-?}" \
      "${cov:-?}" "${ft:-?}" "${corp:-?}"
    if [ "$(cat "$work/status" 2>/dev/null)" != 0 ]; then
      failed+=("$target")
    fi
  done
  for target in "${failed[@]}"; do
    work="$root/$target"
    status=$(cat "$work/status" 2>/dev/null || echo "none: the run broke off")
    echo "!! $target FAILED (libFuzzer exit status $status); the end of $work/log:" >&2
    grep -v '^stat::' "$work/log" 2>/dev/null | tail -n 40 >&2 || true
    for crash in "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/leak-*; do
      if [ -e "$crash" ]; then
        echo "!! replay: $FUZZ_BIN/$target $crash" >&2
      fi
    done
  done
  [ "${#failed[@]}" = 0 ]
}
