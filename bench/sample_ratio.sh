#!/usr/bin/env bash
# One full sample against the bare reading of the same /proc and /sys files (criterion), and the
# ratio of their mean times. Target: full <= 2x bare_read.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench sample -- --noplot "$@"
python3 - <<'PY'
import json
est = lambda name: json.load(open(f"target/criterion/sample/{name}/new/estimates.json"))["mean"]["point_estimate"]
full, bare = est("full"), est("bare_read")
print(f"full sample {full/1e3:.1f} us, bare read {bare/1e3:.1f} us, ratio {full/bare:.2f} (target <= 2)")
PY
