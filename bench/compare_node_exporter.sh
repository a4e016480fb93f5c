#!/usr/bin/env bash
# Runs our agent and node_exporter side by side on this machine, polls each once per second for
# DURATION seconds (default 60), and prints CPU time, RSS and latency ratios (agent / node_exporter).
# Installs node_exporter (Debian package prometheus-node-exporter) when missing; builds the release
# binary. Everything listens on 127.0.0.1 only.
#
#   bench/compare_node_exporter.sh            # 60 s
#   DURATION=20 bench/compare_node_exporter.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus-node-exporter >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
cargo build --release --locked --bin system_monitor >/dev/null
exec python3 bench/compare_node_exporter.py \
    --agent target/release/system_monitor \
    --node-exporter "$(command -v prometheus-node-exporter)" \
    --duration "${DURATION:-60}" "$@"
