#!/usr/bin/env python3
"""Side-by-side cost of our agent and node_exporter on this machine (standard library only).

Both run at once on loopback. Each second, /metrics is fetched from both and
/api/system/metrics from the agent, over kept-alive connections; latency is the wall time of one
request (send to last byte). CPU time comes from /proc/<pid>/task/*/schedstat (nanoseconds) and,
as a cross-check, from utime+stime (clock ticks); RSS from /proc/<pid>/status; all over the whole
window, after a warm-up. Both CPU ratios must meet the target. node_exporter runs twice: with its default collectors (how people run it)
and with only the collectors that cover what the agent exports (the like-for-like comparison).
"""
import argparse
import glob
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")

# node_exporter collectors covering what the agent samples (cpu, freq, load, procs, memory, PSI,
# disks, filesystems, network, hwmon/thermal, TCP connections, and the network kernel collectors).
LIKE_FOR_LIKE = [
    "cpu", "cpufreq", "loadavg", "stat", "processes", "meminfo", "pressure", "diskstats",
    "filesystem", "netdev", "hwmon", "thermal_zone", "tcpstat",
    "netclass", "netstat", "sockstat", "softnet", "udp_queues", "conntrack", "arp",
]


def cpu_seconds(pid):
    """CPU time of the whole process, in clock ticks (10 ms resolution; includes exited threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; after the comm they are at index 11 and 12.
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_seconds(pid):
    """CPU time of the process's live threads from schedstat, in nanoseconds made seconds: the
    precise figure (ticks are too coarse for a process that uses a few ms per second)."""
    total = 0
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(task) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread exited meanwhile
    return total / 1e9


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


class Poller:
    def __init__(self, port, path):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.path = path
        self.latencies = []
        self.sizes = []

    def poll(self):
        start = time.perf_counter()
        self.conn.request("GET", self.path)
        response = self.conn.getresponse()
        body = response.read()
        self.latencies.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"{self.path} answered {response.status}")
        self.sizes.append(len(body))


def run(args, ne_flags, label):
    agent = subprocess.Popen(
        [args.agent, "--rest-api-port", str(args.agent_port), "--interval", "1s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ne = subprocess.Popen(
        [args.node_exporter, f"--web.listen-address=127.0.0.1:{args.ne_port}", *ne_flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(args.agent_port)
        wait_port(args.ne_port)
        agent_metrics = Poller(args.agent_port, "/metrics")
        agent_rest = Poller(args.agent_port, "/api/system/metrics")
        ne_metrics = Poller(args.ne_port, "/metrics")
        for p in (agent_metrics, agent_rest, ne_metrics):  # warm-up: connections, first scrape
            p.poll()
            p.latencies.clear()
        time.sleep(2)
        cpu0 = {"agent": cpu_seconds(agent.pid), "ne": cpu_seconds(ne.pid)}
        run0 = {"agent": run_seconds(agent.pid), "ne": run_seconds(ne.pid)}
        t0 = time.time()
        rss = {"agent": [], "ne": []}
        next_tick = time.time()
        for _ in range(args.duration):
            next_tick += 1.0
            for p in (ne_metrics, agent_metrics, agent_rest):
                p.poll()
            rss["agent"].append(rss_bytes(agent.pid))
            rss["ne"].append(rss_bytes(ne.pid))
            time.sleep(max(0.0, next_tick - time.time()))
        wall = time.time() - t0
        cpu = {k: cpu_seconds(p.pid) - cpu0[k] for k, p in (("agent", agent), ("ne", ne))}
        run = {k: run_seconds(p.pid) - run0[k] for k, p in (("agent", agent), ("ne", ne))}
    finally:
        for p in (agent, ne):
            p.send_signal(signal.SIGTERM)
        for p in (agent, ne):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    med = statistics.median
    result = {
        "label": label,
        "duration_s": round(wall, 1),
        "agent_cpu_s": round(run["agent"], 4),
        "node_exporter_cpu_s": round(run["ne"], 4),
        "agent_cpu_ticks_s": round(cpu["agent"], 3),
        "node_exporter_cpu_ticks_s": round(cpu["ne"], 3),
        "agent_rss_mib": round(max(rss["agent"]) / 2**20, 1),
        "node_exporter_rss_mib": round(max(rss["ne"]) / 2**20, 1),
        "agent_metrics_median_ms": round(med(agent_metrics.latencies) * 1e3, 3),
        "node_exporter_metrics_median_ms": round(med(ne_metrics.latencies) * 1e3, 3),
        "agent_rest_median_ms": round(med(agent_rest.latencies) * 1e3, 3),
        "agent_metrics_bytes": agent_metrics.sizes[-1],
        "node_exporter_metrics_bytes": ne_metrics.sizes[-1],
    }
    ratio = lambda a, b: a / b if b else float("inf")
    result["cpu_ratio"] = round(ratio(run["agent"], run["ne"]), 3)
    result["cpu_ticks_ratio"] = round(ratio(cpu["agent"], cpu["ne"]), 3)
    result["rss_ratio"] = round(ratio(max(rss["agent"]), max(rss["ne"])), 3)
    result["metrics_latency_ratio"] = round(
        ratio(med(agent_metrics.latencies), med(ne_metrics.latencies)), 3)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--node-exporter", required=True)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--agent-port", type=int, default=18080)
    parser.add_argument("--ne-port", type=int, default=19100)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    like = ["--collector.disable-defaults", *[f"--collector.{c}" for c in LIKE_FOR_LIKE]]
    results = [run(args, [], "node_exporter defaults"), run(args, like, "node_exporter like-for-like")]
    targets = [("cpu_ratio", 0.15), ("rss_ratio", 0.5), ("metrics_latency_ratio", 0.1)]
    ok = True
    for r in results:
        print(f"\n## agent vs {r['label']} ({r['duration_s']} s, polled once per second)")
        print(f"CPU time      agent {r['agent_cpu_s']:.4f} s  node_exporter {r['node_exporter_cpu_s']:.4f} s  ratio {r['cpu_ratio']:.3f} (target <= 0.15; schedstat)")
        print(f"  (in ticks   agent {r['agent_cpu_ticks_s']:.2f} s   node_exporter {r['node_exporter_cpu_ticks_s']:.2f} s   ratio {r['cpu_ticks_ratio']:.3f}, 10 ms resolution)")
        print(f"max RSS       agent {r['agent_rss_mib']:.1f} MiB  node_exporter {r['node_exporter_rss_mib']:.1f} MiB  ratio {r['rss_ratio']:.3f} (target <= 0.5)")
        print(f"/metrics p50  agent {r['agent_metrics_median_ms']:.3f} ms  node_exporter {r['node_exporter_metrics_median_ms']:.3f} ms  ratio {r['metrics_latency_ratio']:.3f} (target <= 0.1)")
        print(f"REST p50      agent /api/system/metrics {r['agent_rest_median_ms']:.3f} ms (target <= 1 ms)")
        print(f"/metrics size agent {r['agent_metrics_bytes']} B  node_exporter {r['node_exporter_metrics_bytes']} B")
        for key, bound in targets:
            ok &= r[key] <= bound
        ok &= r["cpu_ticks_ratio"] <= 0.15
        ok &= r["agent_rest_median_ms"] <= 1.0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print("\nall targets met" if ok else "\nsome targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
