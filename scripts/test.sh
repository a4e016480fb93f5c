#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what cargo cannot (promtool from Debian's
# `prometheus` package, a Python venv with aiohttp/grpcio for the client tests), then runs the Rust
# tests (unit, integration, golden, promtool) and the Python client tests against the real binary.
#
#   ./scripts/test.sh            # everything
#   SKIP_INSTALL=1 ./scripts/test.sh   # reuse what is installed
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

if [ -z "${SKIP_INSTALL:-}" ]; then
    if ! command -v promtool >/dev/null; then
        log "installing promtool (Debian package prometheus)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
    if [ ! -x .venv/bin/python ]; then
        log "creating the Python venv (.venv)"
        python3 -m venv .venv
    fi
    log "installing Python test requirements"
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
fi

log "building"
cargo build --locked --workspace --all-targets

log "Rust tests"
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --locked --workspace --no-fail-fast
    # nextest does not run doc tests.
    cargo test --locked --doc
else
    cargo test --locked --workspace --no-fail-fast
fi

log "Python client tests (aiohttp REST, grpcio)"
SYSTEM_MONITOR_BIN="$PWD/target/debug/system_monitor" .venv/bin/python -m pytest -q tests/python
