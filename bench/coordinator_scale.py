#!/usr/bin/env python3
"""Coordinator at scale on one machine (standard library only).

For each N, starts the coordinator_sim example (N fake agents on 127.0.0.x, each answering like a
real agent; one process per --agents-per-sim agents) and `system_monitor coordinator --agents-file …` side by side, waits until the
coordinator reports all N agents online, then measures over DURATION seconds:

- round time: `system_monitor_coordinator_round_duration_seconds` (sampled each second: median
  and max) and rounds per second (`system_monitor_coordinator_rounds_total`);
- per-agent poll latency: `system_monitor_coordinator_poll_duration_seconds` (mean from _sum and
  _count, p99 as the upper bound of the bucket holding it), and poll errors by kind;
- coordinator CPU: /proc/<pid>/task/*/schedstat (ns), cross-checked with utime+stime (ticks);
- coordinator memory: VmRSS (max over the window) and VmHWM (peak since start);
- the simulator's own CPU, since both share the machine.

Then, while the coordinator keeps refreshing, the latency of `GET /api/system/metrics?node_id=ID`
(random ids) and of the all-nodes `GET /api/system/metrics`, one kept-alive connection, for
QUERY_SECONDS each. Prints a Markdown table (and --json).
"""
import argparse
import ctypes
import glob
import http.client
import json
import os
import random
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class BenchError(Exception):
    """A failure worth one clear line (and a log tail), not a traceback."""


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when this script dies, however it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def cpu_ticks_seconds(pid):
    """utime+stime of the whole process in seconds (10 ms resolution; includes exited threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_seconds(pid):
    """CPU time of the process's live threads from schedstat (ns precision), in seconds."""
    total = 0
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(task) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread exited meanwhile
    return total / 1e9


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def parse_metrics(text):
    """Prometheus text → {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


def metric(samples, name, **labels):
    want = set(labels.items())
    for (n, ls), v in samples.items():
        if n == name and want <= set(ls):
            return v
    return None


def metric_sum(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


def by_label(samples, name, label):
    return {dict(ls).get(label, ""): v for (n, ls), v in samples.items() if n == name}


def buckets(samples, name):
    """Cumulative histogram buckets {le: count}, le as float (+Inf included)."""
    out = {}
    for (n, ls), v in samples.items():
        if n == name + "_bucket":
            le = dict(ls).get("le")
            if le is not None:
                out[float("inf") if le == "+Inf" else float(le)] = v
    return out


def quantile_upper_bound(before, after, q):
    """Upper bound of the bucket holding quantile q of the observations between two scrapes."""
    les = sorted(after)
    delta = [(le, after[le] - before.get(le, 0.0)) for le in les]
    if not delta or delta[-1][1] <= 0:
        return None
    target = q * delta[-1][1]
    for le, cumulative in delta:
        if cumulative >= target:
            return le
    return les[-1]


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Http:
    """One kept-alive connection; reconnects once if the server closed it."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class Child:
    """A started process with its output in a log file (or read line by line)."""

    def __init__(self, name, argv, log_path, pipe_stdout=False):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.lines = []
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if pipe_stdout else self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        if pipe_stdout:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.log.write(raw)
            self.log.flush()

    @property
    def pid(self):
        return self.proc.pid

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}\n"
                             f"  command: {shlex.join(self.argv)}\n{self.tail()}")

    def tail(self, n=15):
        try:
            self.log.flush()
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_for(what, check, timeout, children, interval=0.2):
    deadline = time.time() + timeout
    while True:
        for child in children:
            child.check_alive()
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_portfile(path):
    try:
        with open(path) as f:
            fields = dict(line.strip().split("=", 1) for line in f if "=" in line)
        return int(fields["rest"]) if "rest" in fields else None
    except (OSError, ValueError):
        return None


def scrape(client):
    status, body = client.get("/metrics")
    if status != 200:
        raise BenchError(f"coordinator /metrics answered {status}")
    return parse_metrics(body.decode(errors="replace"))


def query_latencies(client, paths, seconds, max_requests, check):
    """Sequential GETs of paths() for up to `seconds` or `max_requests`; returns (latencies, sizes)."""
    latencies, sizes = [], []
    deadline = time.time() + seconds
    while time.time() < deadline and len(latencies) < max_requests:
        path = paths()
        start = time.perf_counter()
        status, body = client.get(path)
        latencies.append(time.perf_counter() - start)
        sizes.append(len(body))
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body[:200]!r}")
        check(path, body)
    return latencies, sizes


def run_one(args, n, workdir):
    agents_file = os.path.join(workdir, f"agents-{n}.txt")
    portfile = os.path.join(workdir, f"coordinator-{n}.ports")
    # Several simulators when N is large: each needs two descriptors per agent, and a container's
    # hard open-files limit (which only root with CAP_SYS_RESOURCE may raise) is often 20,000.
    sims = []
    for first in range(0, n, args.agents_per_sim):
        count = min(args.agents_per_sim, n - first)
        sims.append(Child(f"coordinator_sim (agents {first}..{first + count})", [
            args.simulator, "--first", str(first), "--agents", str(count),
            "--agents-file", os.path.join(workdir, f"agents-{n}-{first}.txt"),
            "--stats-interval", "0s", *shlex.split(args.sim_args),
        ], os.path.join(workdir, f"sim-{n}-{first}.log"), pipe_stdout=True))
    children = list(sims)
    coordinator = None
    try:
        started = time.time()
        for sim in sims:
            wait_for(f"{sim.name} to start",
                     lambda: any(line.startswith("ready:") for line in sim.lines),
                     args.start_timeout, children)
        sim_ready_s = time.time() - started
        with open(agents_file, "w") as out:
            for first in range(0, n, args.agents_per_sim):
                with open(os.path.join(workdir, f"agents-{n}-{first}.txt")) as part:
                    out.write(part.read())
        for sim in sims:
            ready = next(line for line in sim.lines if line.startswith("ready:"))
            print(f"  simulator {ready}", flush=True)

        coordinator = Child("coordinator", [
            args.coordinator, "coordinator", "--agents-file", agents_file,
            "--rest-api-port", "0", "--grpc-port", "0", "--bind", "127.0.0.1",
            "--portfile", portfile, "--node-id", "bench-coordinator",
            *shlex.split(args.coord_args),
        ], os.path.join(workdir, f"coordinator-{n}.log"))
        children.append(coordinator)
        started = time.time()
        port = wait_for("the coordinator's portfile (rest=)", lambda: read_portfile(portfile),
                        30, children)
        client = Http(port)
        online = {"count": 0}

        def all_online():
            samples = scrape(client)
            count = metric(samples, "system_monitor_coordinator_agents", status="online")
            if count is None:
                return False
            online["count"] = int(count)
            return count >= n

        online_timeout = args.online_timeout or 60 + n / 100
        try:
            wait_for(f"{n} agents online (system_monitor_coordinator_agents{{status=\"online\"}})",
                     all_online, online_timeout, children, interval=0.5)
            all_online_s = time.time() - started
        except BenchError as e:
            if online["count"] == 0:
                raise BenchError(f"{e}; none online. Coordinator log:\n{coordinator.tail()}")
            print(f"  WARNING: only {online['count']}/{n} online after {online_timeout:.0f} s; "
                  "measuring anyway", flush=True)
            all_online_s = None
        time.sleep(args.warmup)

        # The measurement window: no queries but the once-a-second scrape.
        pid = coordinator.pid
        before = scrape(client)
        run0, ticks0 = run_seconds(pid), cpu_ticks_seconds(pid)
        sim_run0 = sum(run_seconds(sim.pid) for sim in sims)
        t0 = time.time()
        rounds, rss = [], []
        next_tick = t0
        while time.time() - t0 < args.duration:
            next_tick += 1.0
            time.sleep(max(0.0, next_tick - time.time()))
            coordinator.check_alive()
            samples = scrape(client)
            value = metric(samples, "system_monitor_coordinator_round_duration_seconds")
            if value is not None:
                rounds.append(value)
            rss.append(status_kib(pid, "VmRSS"))
        after = scrape(client)
        wall = time.time() - t0
        cpu = run_seconds(pid) - run0
        cpu_ticks = cpu_ticks_seconds(pid) - ticks0
        sim_cpu = sum(run_seconds(sim.pid) for sim in sims) - sim_run0
        # The kernel updates VmHWM lazily: never report a peak below an RSS seen.
        hwm = max([status_kib(pid, "VmHWM"), *rss])

        poll = "system_monitor_coordinator_poll_duration_seconds"
        polls = (metric_sum(after, poll + "_count") - metric_sum(before, poll + "_count"))
        poll_sum = (metric_sum(after, poll + "_sum") - metric_sum(before, poll + "_sum"))
        errors_before = by_label(before, "system_monitor_coordinator_poll_errors_total", "kind")
        errors = {k: v - errors_before.get(k, 0.0)
                  for k, v in by_label(after, "system_monitor_coordinator_poll_errors_total",
                                       "kind").items()}
        rounds_total = "system_monitor_coordinator_rounds_total"
        round_count = (metric(after, rounds_total) or 0) - (metric(before, rounds_total) or 0)

        # Queries while the coordinator keeps refreshing.
        ids = [f"sim-{i:05d}" for i in range(n)]

        def check_one(path, body):
            node = path.rsplit("=", 1)[1]
            if f'"node_id":"{node}"'.encode() not in body:
                raise BenchError(f"GET {path} did not return node {node}: {body[:200]!r}")

        one_lat, one_size = query_latencies(
            client, lambda: f"/api/system/metrics?node_id={random.choice(ids)}",
            args.query_seconds, args.max_node_queries, check_one)
        all_lat, all_size = query_latencies(
            client, lambda: "/api/system/metrics", args.query_seconds, args.max_all_queries,
            lambda path, body: None)

        ms = lambda s: None if s is None else round(s * 1e3, 2)
        return {
            "agents": n,
            "sim_ready_s": round(sim_ready_s, 2),
            "all_online_s": None if all_online_s is None else round(all_online_s, 2),
            "online_at_start": online["count"],
            "window_s": round(wall, 1),
            "round_median_s": round(statistics.median(rounds), 3) if rounds else None,
            "round_max_s": round(max(rounds), 3) if rounds else None,
            "rounds_per_s": round(round_count / wall, 2),
            "polls_per_s": round(polls / wall, 1),
            "poll_mean_ms": ms(poll_sum / polls) if polls else None,
            "poll_p99_le_ms": ms(quantile_upper_bound(buckets(before, poll), buckets(after, poll),
                                                      0.99)),
            "poll_errors": {k: int(v) for k, v in errors.items() if v},
            "cpu_cores": round(cpu / wall, 3),
            "cpu_ticks_cores": round(cpu_ticks / wall, 3),
            "rss_max_mib": round(max(rss) / 1024, 1) if rss else None,
            "hwm_mib": round(hwm / 1024, 1),
            "sim_cpu_cores": round(sim_cpu / wall, 3),
            "node_query_count": len(one_lat),
            "node_query_p50_ms": ms(percentile(one_lat, 0.5)),
            "node_query_p99_ms": ms(percentile(one_lat, 0.99)),
            "all_query_count": len(all_lat),
            "all_query_p50_ms": ms(percentile(all_lat, 0.5)),
            "all_query_p99_ms": ms(percentile(all_lat, 0.99)),
            "all_query_mib": round(statistics.median(all_size) / 2**20, 2) if all_size else None,
        }
    except BenchError as e:
        raise BenchError(f"N={n}: {e}") from None
    finally:
        for child in reversed(children):
            child.stop()


def fmt(value, suffix=""):
    return "–" if value is None else f"{value}{suffix}"


def print_table(results):
    print("\n| agents | all online after | round median / max | rounds/s | polls/s | poll mean / p99≤ "
          "| coordinator CPU (cores) | RSS max / HWM | `?node_id=` p50 / p99 | all nodes p50 / p99 "
          "(body) | simulator CPU | poll errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["poll_errors"].items())) or "none"
        print(
            f"| {r['agents']} | {fmt(r['all_online_s'], ' s')} "
            f"| {fmt(r['round_median_s'], ' s')} / {fmt(r['round_max_s'], ' s')} "
            f"| {r['rounds_per_s']} | {r['polls_per_s']} "
            f"| {fmt(r['poll_mean_ms'], ' ms')} / {fmt(r['poll_p99_le_ms'], ' ms')} "
            f"| {r['cpu_cores']} (ticks {r['cpu_ticks_cores']}) "
            f"| {fmt(r['rss_max_mib'], ' MiB')} / {fmt(r['hwm_mib'], ' MiB')} "
            f"| {fmt(r['node_query_p50_ms'], ' ms')} / {fmt(r['node_query_p99_ms'], ' ms')} "
            f"(n={r['node_query_count']}) "
            f"| {fmt(r['all_query_p50_ms'], ' ms')} / {fmt(r['all_query_p99_ms'], ' ms')} "
            f"(n={r['all_query_count']}, {fmt(r['all_query_mib'], ' MiB')}) "
            f"| {r['sim_cpu_cores']} | {errors} |"
        )


def raise_nofile(needed):
    """Raises the open-files limit (inherited by the children) to `needed`, or as far as allowed:
    the hard limit too when running as root."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coordinator", required=True, help="the system_monitor binary")
    parser.add_argument("--simulator", required=True, help="the coordinator_sim binary")
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--duration", type=float, default=30, help="measurement window, seconds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds after all are online")
    parser.add_argument("--query-seconds", type=float, default=10,
                        help="time budget of each query series")
    parser.add_argument("--max-node-queries", type=int, default=2000)
    parser.add_argument("--max-all-queries", type=int, default=100)
    parser.add_argument("--agents-per-sim", type=int, default=5000,
                        help="fake agents per simulator process")
    parser.add_argument("--start-timeout", type=float, default=120)
    parser.add_argument("--online-timeout", type=float, default=0,
                        help="seconds to wait for all agents online (default 60 + N/100)")
    parser.add_argument("--sim-args", default="--cores 64 --gpus 8",
                        help="extra coordinator_sim flags (one string)")
    parser.add_argument("--coord-args", default="", help="extra coordinator flags (one string)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    for path, what in ((args.coordinator, "coordinator"), (args.simulator, "simulator")):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"the {what} binary {path} is missing or not executable")
    # The coordinator needs a descriptor per agent connection: children inherit the raised limit.
    # A simulator holds a listener and a connection per agent; the coordinator a connection each.
    needed = max(2 * min(max(args.nodes), args.agents_per_sim), max(args.nodes)) + 1024
    nofile = raise_nofile(needed)
    if nofile < needed:
        print(f"WARNING: open-files limit {nofile} is low for {max(args.nodes)} agents",
              file=sys.stderr)
    # SIGTERM (e.g. from the wrapper's trap) unwinds through the finally blocks like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results = []
    with tempfile.TemporaryDirectory(prefix="coordinator-scale-") as workdir:
        for n in args.nodes:
            print(f"N={n}: starting ({args.sim_args or 'default element'})", flush=True)
            try:
                results.append(run_one(args, n, workdir))
            except BenchError as e:
                print(f"FAILED {e}", file=sys.stderr)
                if results:
                    print_table(results)
                return 1
            r = results[-1]
            print(f"  all online after {fmt(r['all_online_s'], ' s')}; round median "
                  f"{fmt(r['round_median_s'], ' s')}; CPU {r['cpu_cores']} cores; "
                  f"RSS {fmt(r['rss_max_mib'], ' MiB')}", flush=True)
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
