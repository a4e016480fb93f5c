#!/usr/bin/env bash
# The coordinator at scale on this machine: for N = 100, 1000, 10000 fake agents (the
# coordinator_sim example, all in one process on 127.0.0.x) it starts `system_monitor coordinator
# --agents-file …` beside them, waits until every agent is online, and measures round time,
# coordinator CPU and memory, and query latency (bench/coordinator_scale.py prints the table).
#
#   bench/coordinator_scale.sh                          # N = 100 1000 10000, 30 s windows
#   bench/coordinator_scale.sh --nodes 1000 --duration 10
#   bench/coordinator_scale.sh --sim-args "--cores 8" --coord-args "--poll-concurrency 1024"
#   bench/coordinator_scale.sh --json /tmp/scale.json
#
# Needs: Linux (/proc), python3, and an open-files limit of 2 × N + slack for the simulator (a
# listener and a connection per agent): the bench raises it, the hard limit too when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin system_monitor --example coordinator_sim
if ! target/release/system_monitor coordinator --help >/dev/null 2>&1; then
    echo "target/release/system_monitor has no 'coordinator' subcommand: build a tree that has it" >&2
    exit 2
fi

python3 bench/coordinator_scale.py \
    --coordinator target/release/system_monitor \
    --simulator target/release/examples/coordinator_sim \
    "$@" &
bench=$!
# Ctrl-C or a TERM to this script stops the bench, which stops its children (they also get
# SIGTERM by PR_SET_PDEATHSIG if the bench itself is killed).
trap 'kill -TERM "$bench" 2>/dev/null || true' INT TERM
status=0
wait "$bench" || status=$?
# A trapped signal interrupts the first wait; wait again for the bench to finish its cleanup.
if kill -0 "$bench" 2>/dev/null; then
    wait "$bench" || status=$?
fi
exit "$status"
