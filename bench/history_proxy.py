#!/usr/bin/env python3
"""The cost of asking a node's history through the coordinator (standard library only).

The coordinator keeps no node's history: `/api/system/history?node_id=` is asked of the node's
agent. This measures what that hop costs, against an agent that has been running long enough to
hold the window (an hour for the default 1 h question):

    system_monitor --node-id bench-hist --rest-api-port 0 --portfile /tmp/a.ports &   # wait 1 h
    system_monitor coordinator --agents http://127.0.0.1:<agent rest> --rest-api-port 0 \\
        --portfile /tmp/c.ports &
    bench/history_proxy.py --agent http://127.0.0.1:<agent rest> \\
        --coordinator http://127.0.0.1:<coordinator rest> --node-id bench-hist

For each question (the last WINDOW seconds, less 10 s so that it starts inside the raw tier; a
fixed `from`/`to` so that both paths answer the same thing): the answer's size, then ROUNDS requests alternating direct and through the
coordinator over one keep-alive connection each, and the median and 90th percentile of each,
and the median difference. Checks that both answers are the same JSON. Prints a Markdown table
(and --json).
"""
import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse


def connection(base):
    url = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def fetch(conn, path):
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        sys.exit(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, body


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", required=True, help="the agent's REST base URL")
    parser.add_argument("--coordinator", required=True, help="the coordinator's REST base URL")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--window", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    # The window ends a second ago (every sample in it kept) and starts 10 s after now − WINDOW,
    # so that a 1 h question starts inside the agent's 1 h raw tier (an older start is answered
    # per minute).
    now = int(time.time() * 1000)
    to = now - 1000
    start = now - args.window * 1000 + 10_000
    questions = [
        ("headline fields, default step", ""),
        ("cpu.overall, step 1m", "&fields=cpu.overall&step=1m"),
        ("every field (fields=*)", "&fields=*"),
    ]
    direct, through = connection(args.agent), connection(args.coordinator)
    rows = []
    for name, extra in questions:
        path = f"/api/system/history?node_id={args.node_id}&from={start}&to={to}{extra}"
        _, a = fetch(direct, path)
        _, c = fetch(through, path)
        if json.loads(a) != json.loads(c):
            sys.exit(f"{name}: the coordinator's answer differs from the agent's")
        answer = json.loads(a)[0]
        points = len(answer["timestamps"])
        series = len(answer["series"])
        d_times, c_times = [], []
        for _ in range(args.rounds):
            d_times.append(fetch(direct, path)[0])
            c_times.append(fetch(through, path)[0])

        def p90(xs):
            return sorted(xs)[int(0.9 * (len(xs) - 1))]

        rows.append({
            "question": name,
            "points": points,
            "series": series,
            "bytes": len(a),
            "direct_median_ms": statistics.median(d_times) * 1000,
            "direct_p90_ms": p90(d_times) * 1000,
            "through_median_ms": statistics.median(c_times) * 1000,
            "through_p90_ms": p90(c_times) * 1000,
            "added_median_ms": (statistics.median(c_times) - statistics.median(d_times)) * 1000,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"Window {(to - start) / 1000:.0f} s, {args.rounds} rounds each, alternating.\n")
    print("| question | points × series | answer | direct median / p90 | through the coordinator median / p90 | added (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['question']} | {r['points']} × {r['series']} | {r['bytes'] / 1024:.0f} KiB "
            f"| {r['direct_median_ms']:.1f} / {r['direct_p90_ms']:.1f} ms "
            f"| {r['through_median_ms']:.1f} / {r['through_p90_ms']:.1f} ms "
            f"| {r['added_median_ms']:+.1f} ms |"
        )


if __name__ == "__main__":
    main()
