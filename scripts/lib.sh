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
