#!/usr/bin/env python3
"""The coordinator's dashboard at scale: N fake agents (examples/coordinator_sim), a coordinator
polling them, and headless Chromium (Debian's ``chromium``, driven by Playwright) on its ``/``.
Prints, as JSON: how long the page takes until its list holds every node, what one WebSocket
frame (every node's headline, ``/api/system/ws?view=headline``, after each poll round; the size
of the full array is printed beside it) costs the page to parse and apply, the
page's CPU share (Chrome's own task time over wall time), its JS heap, how many DOM elements
and WebSocket connections it holds, and how long a jump to the end of the list takes to draw.

    cargo build --bin system_monitor --example coordinator_sim
    .venv/bin/python bench/dashboard_scale.py --nodes 1000 --seconds 20
    .venv/bin/python bench/dashboard_scale.py --nodes 1000 --sim-args "--cores 64 --gpus 8"

Loopback only; everything it starts is stopped at the end. Figures are in bench/RESULTS.md.
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wait_for(what, check, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(interval)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", REPO / "target")
    parser.add_argument("--coordinator", default=f"{target}/debug/system_monitor")
    parser.add_argument("--simulator", default=f"{target}/debug/examples/coordinator_sim")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20, help="how long to watch live updates")
    parser.add_argument("--poll-interval", default="1s")
    parser.add_argument("--sim-args", default="", help="extra flags for coordinator_sim")
    parser.add_argument("--coord-args", default="", help="extra flags for the coordinator")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or sys.exit("chromium is not installed (apt-get install chromium)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.nodes + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    children = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            agents_file = Path(tmp) / "agents.txt"
            sim = subprocess.Popen(
                [args.simulator, "--agents", str(args.nodes), "--agents-file", str(agents_file),
                 "--stats-interval", "0", *shlex.split(args.sim_args)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            children.append(sim)
            wait_for("the simulator", lambda: sim.stdout.readline().startswith("ready"), 120, 0)
            portfile = Path(tmp) / "ports"
            coordinator = subprocess.Popen(
                [args.coordinator, "coordinator", "--agents-file", str(agents_file),
                 "--rest-api-port", "0", "--portfile", str(portfile),
                 "--poll-interval", args.poll_interval, *shlex.split(args.coord_args)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            children.append(coordinator)
            wait_for("the coordinator's portfile", portfile.exists, 30)
            rest = next(line.split("=")[1] for line in portfile.read_text().splitlines()
                        if line.startswith("rest="))
            base = f"http://127.0.0.1:{rest}"
            wait_for("every agent online", lambda: sum(
                n["status"] == "online" for n in get_json(f"{base}/api/cluster/info")["nodes"]) == args.nodes, 120)
            full_bytes = len(urllib.request.urlopen(f"{base}/api/system/metrics", timeout=30).read())
            headline_bytes = len(urllib.request.urlopen(
                f"{base}/api/system/metrics?view=headline", timeout=30).read())

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                errors = []
                page.on("console", lambda m: m.type == "error" and "/history" not in m.location.get("url", "")
                        and errors.append(m.text))
                page.on("pageerror", lambda e: errors.append(str(e)))
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                started = time.monotonic()
                page.goto(base + "/")
                page.wait_for_function(
                    "n => document.querySelector('#node-count')?.textContent === `${n} of ${n} nodes`",
                    arg=args.nodes, timeout=120_000)
                load_s = time.monotonic() - started

                def task_seconds():
                    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                    return metrics["TaskDuration"], metrics["JSHeapUsedSize"]

                frames_before = page.evaluate("window.dashboardStats.frames")
                skipped_before = page.evaluate("window.dashboardStats.skipped")
                total_before = page.evaluate("window.dashboardStats.totalFrameMs")
                task_before, _ = task_seconds()
                watch_started = time.monotonic()
                page.wait_for_timeout(args.seconds * 1000)
                wall = time.monotonic() - watch_started
                task_after, heap = task_seconds()
                stats = page.evaluate("window.dashboardStats")
                frames = stats["frames"] - frames_before
                jump_started = time.monotonic()
                page.evaluate("() => { const b = document.querySelector('#nodes-body'); b.scrollTop = b.scrollHeight; }")
                last_id = f"sim-{args.nodes - 1:05d}"
                page.wait_for_selector(f"#node-{last_id}", timeout=10_000)
                jump_ms = (time.monotonic() - jump_started) * 1000
                result = {
                    "nodes": args.nodes,
                    "sim_args": args.sim_args,
                    "poll_interval": args.poll_interval,
                    "frame_bytes": stats["lastFrameBytes"],
                    "headline_array_bytes": headline_bytes,
                    "full_array_bytes": full_bytes,
                    "page_load_to_full_list_s": round(load_s, 2),
                    "frames_applied": frames,
                    "frames_skipped": stats["skipped"] - skipped_before,
                    "seconds": round(wall, 1),
                    "frame_mean_ms": round((stats["totalFrameMs"] - total_before) / max(frames, 1), 1),
                    "frame_max_ms": round(stats["maxFrameMs"], 1),
                    "page_cpu_share": round((task_after - task_before) / wall, 3),
                    "js_heap_mib": round(heap / 2**20, 1),
                    "dom_elements": page.evaluate("document.getElementsByTagName('*').length"),
                    "node_rows_in_dom": page.evaluate("document.querySelectorAll('#nodes-body .nrow').length"),
                    "websockets": stats["sockets"],
                    "jump_to_end_ms": round(jump_ms, 1),
                    "console_errors": errors,
                }
                browser.close()
            print(json.dumps(result, indent=2))
        finally:
            for child in reversed(children):
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


if __name__ == "__main__":
    main()
