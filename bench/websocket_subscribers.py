#!/usr/bin/env python3
"""Many WebSocket subscribers on one agent (standard library only).

Starts `system_monitor` (BINARY, default target/release/system_monitor) on a fixture tree at
--interval 1s, opens N subscribers to /api/system/ws (default 1,000, over one thread with
selectors: each answers pings with a masked pong, as a client must), lets them receive for
DURATION seconds (default 30), and reports over that window:

- the agent's CPU seconds (utime + stime from /proc/<pid>/stat) and its share of one core;
- the agent's RSS: the max of VmRSS sampled every 0.5 s, and VmHWM (peak since start);
- frames received per subscriber (min / median / max) and subscribers dropped.

Prints a Markdown table (and --json).
"""
import argparse
import base64
import json
import os
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_agent(binary, fixture, interval):
    tmp = tempfile.mkdtemp(prefix="ws-bench-")
    portfile = os.path.join(tmp, "ports")
    root = os.path.join(REPO, "tests", "fixtures", fixture)
    args = [
        binary, "--backend", "linux",
        "--path.procfs", os.path.join(root, "proc"),
        "--path.sysfs", os.path.join(root, "sys"),
        "--path.rootfs", os.path.join(root, "root"),
        "--interval", interval, "--rest-api-port", "0", "--portfile", portfile,
        "--max-connections", "4096",
    ]
    agent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "stderr"), "w"))
    for _ in range(400):
        if os.path.exists(portfile):
            ports = dict(line.split("=", 1) for line in open(portfile).read().split())
            return agent, int(ports["rest"])
        if agent.poll() is not None:
            sys.exit(f"the agent exited: {open(os.path.join(tmp, 'stderr')).read()}")
        time.sleep(0.05)
    agent.kill()
    sys.exit("no portfile within 20 s")


class Subscriber:
    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tracklab.metrics.v1\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self.sock.setblocking(False)
        self.frames = 0
        self.open = True

    def pong(self, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.send(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)

    def readable(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.open = False
            return
        self.buf += chunk
        while len(self.buf) >= 2:
            opcode, length = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if length == 126:
                if len(self.buf) < 4:
                    return
                length, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif length == 127:
                if len(self.buf) < 10:
                    return
                length, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + length:
                return
            payload, self.buf = self.buf[at:at + length], self.buf[at + length:]
            if opcode == 0x1:
                self.frames += 1
            elif opcode == 0x9:
                self.pong(payload)
            elif opcode == 0x8:
                self.open = False
                return


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "system_monitor"))
    parser.add_argument("--fixture", default="server")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, opts.subscribers + 256)), hard))
    agent, port = start_agent(opts.binary, opts.fixture, opts.interval)
    try:
        time.sleep(1.5)
        idle_rss = status_kib(agent.pid, "VmRSS")
        selector = selectors.DefaultSelector()
        subscribers = []
        opened_at = time.monotonic()
        for _ in range(opts.subscribers):
            subscriber = Subscriber(port, "/api/system/ws")
            subscribers.append(subscriber)
            selector.register(subscriber.sock, selectors.EVENT_READ, subscriber)
        open_seconds = time.monotonic() - opened_at
        for s in subscribers:
            s.frames = 0
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        max_rss, next_rss = 0, t0
        while time.monotonic() - t0 < opts.duration:
            for key, _ in selector.select(timeout=0.1):
                key.data.readable()
                if not key.data.open:
                    selector.unregister(key.fileobj)
            if time.monotonic() >= next_rss:
                max_rss = max(max_rss, status_kib(agent.pid, "VmRSS"))
                next_rss += 0.5
        cpu = cpu_seconds(agent.pid) - cpu0
        elapsed = time.monotonic() - t0
        frames = [s.frames for s in subscribers]
        result = {
            "binary": opts.binary,
            "subscribers": opts.subscribers,
            "interval": opts.interval,
            "duration_s": round(elapsed, 1),
            "open_all_s": round(open_seconds, 2),
            "agent_cpu_s": round(cpu, 2),
            "agent_cpu_share_of_one_core": round(cpu / elapsed, 3),
            "agent_rss_idle_mib": round(idle_rss / 1024, 1),
            "agent_rss_max_mib": round(max_rss / 1024, 1),
            "agent_hwm_mib": round(status_kib(agent.pid, "VmHWM") / 1024, 1),
            "frames_min": min(frames),
            "frames_median": statistics.median(frames),
            "frames_max": max(frames),
            "dropped": sum(not s.open for s in subscribers),
        }
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
    if opts.json:
        print(json.dumps(result, indent=2))
    print("| " + " | ".join(result) + " |")
    print("|" + " --- |" * len(result))
    print("| " + " | ".join(str(v) for v in result.values()) + " |")


if __name__ == "__main__":
    main()
