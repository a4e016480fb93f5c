#!/usr/bin/env bash
# Soak: wrk against the agent's /api/system/metrics for DURATION seconds (default 300) over
# CONNECTIONS kept-alive connections (default 64), while the agent's VmRSS is read every 5 s.
# Prints requests/s, p50/p99 latency (wrk --latency), RSS after the first minute and at the end,
# and the drift between them. Needs wrk (`apt-get install -y wrk`); BIN defaults to the release
# binary, built when missing. Record the figures in bench/RESULTS.md with the command.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-300}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BIN=${BIN:-target/release/system_monitor}
command -v wrk >/dev/null || { echo "soak: wrk is missing (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --locked

work=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null || true; rm -rf "$work"' EXIT
"$BIN" --rest-api-port 0 --portfile "$work/ports" 2>"$work/stderr" &
agent=$!
for _ in $(seq 100); do [ -s "$work/ports" ] && break; sleep 0.1; done
port=$(sed -n 's/^rest=//p' "$work/ports")
[ -n "$port" ] || { echo "soak: the agent did not start:" >&2; cat "$work/stderr" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$agent/status"; }
(
  start=$(date +%s)
  while kill -0 "$agent" 2>/dev/null; do
    echo "$(( $(date +%s) - start )) $(rss_kib)"
    sleep 5
  done
) >"$work/rss" &
sampler=$!

wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
  "http://127.0.0.1:$port/api/system/metrics" >"$work/wrk"
kill "$sampler" 2>/dev/null || true
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/health" || echo none)

cat "$work/wrk"
python3 - "$work/rss" "$work/wrk" "$DURATION" "$CONNECTIONS" "$health" <<'PY'
import re, sys
rss_path, wrk_path, duration, connections, health = sys.argv[1:]
rows = [tuple(map(int, l.split())) for l in open(rss_path) if len(l.split()) == 2]
wrk = open(wrk_path).read()
def pct(p):
    m = re.search(rf"^\s*{p}%\s+(\S+)", wrk, re.M)
    return m.group(1) if m else "?"
rate = re.search(r"Requests/sec:\s+(\S+)", wrk)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", wrk)
minute = min(60, int(duration) // 5)
first = next((kib for t, kib in rows if t >= minute), rows[0][1])
last = rows[-1][1]
print(f"soak {duration}s, {connections} connections: {rate.group(1) if rate else '?'} req/s, "
      f"p50 {pct(50)}, p99 {pct(99)}, RSS {first/1024:.1f} MiB at {minute}s -> "
      f"{last/1024:.1f} MiB at the end ({(last-first)/first*100:+.1f} %), "
      f"errors: {errors.group(0) if errors else 'none'}, health after: {health}")
PY
