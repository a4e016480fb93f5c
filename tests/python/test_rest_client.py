"""The REST API through aiohttp, exactly as the TrackLab backend calls it, checked against the
contract in DESIGN.md: shapes, types, units, error statuses, CORS and the Host check."""

import asyncio
import ipaddress
import json
import math
import os
import socket
import time
from datetime import datetime, timezone

import aiohttp

from conftest import start_monitor, stop_monitor


async def fetch(url, headers=None):
    """GET as the TrackLab backend does; returns (status, headers, parsed JSON)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers) as r:
            return r.status, r.headers, await r.json()


def get(url, headers=None):
    return asyncio.run(fetch(url, headers))


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def assert_percent(value, what):
    assert is_number(value) and 0 <= value <= 100, f"{what} = {value!r}"


def assert_rate(value, what):
    assert is_number(value) and value >= 0, f"{what} = {value!r}"


def meminfo_bytes(field):
    """An independent reading of /proc/meminfo."""
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name == field:
                return int(rest.split()[0]) * 1024
    raise KeyError(field)


def test_health(monitor):
    status, headers, body = get(f"{monitor.rest_url}/api/health")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["status"] == "healthy"
    assert body["service"] == "system_monitor"
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None, "RFC 3339 needs an offset"
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 30


def test_system_info(monitor):
    status, _, info = get(f"{monitor.rest_url}/api/system/info")
    assert status == 200, info
    for key in ["platform", "architecture", "cpu_model", "hostname", "ip_address"]:
        assert isinstance(info[key], str), f"{key}: {info[key]!r}"
    for key in ["cpu_cores", "cpu_threads", "memory_total", "swap_total", "disk_total", "gpu_count"]:
        assert is_count(info[key]), f"{key}: {info[key]!r}"
    assert isinstance(info["gpu_info"], list) and all(isinstance(g, str) for g in info["gpu_info"])
    assert info["gpu_count"] == len(info["gpu_info"])
    assert 1 <= info["cpu_cores"] <= info["cpu_threads"]
    assert info["cpu_threads"] == os.cpu_count()
    assert info["hostname"] == socket.gethostname()
    if info["ip_address"]:
        ipaddress.ip_address(info["ip_address"])
    if info["platform"] == "linux":
        assert info["memory_total"] == meminfo_bytes("MemTotal")
        assert info["swap_total"] == meminfo_bytes("SwapTotal")


def test_system_metrics_shape_types_and_units(monitor):
    status, _, nodes = get(f"{monitor.rest_url}/api/system/metrics")
    _, _, info = get(f"{monitor.rest_url}/api/system/info")
    assert status == 200, nodes
    assert isinstance(nodes, list) and len(nodes) == 1, nodes
    node = nodes[0]
    assert isinstance(node["node_id"], str) and node["node_id"]
    assert is_count(node["timestamp"])
    assert abs(node["timestamp"] - time.time() * 1000) < 30_000, "unix milliseconds"

    cpu = node["cpu"]
    assert_percent(cpu["overall"], "cpu.overall")
    assert len(cpu["cores"]) == info["cpu_threads"]
    for core in cpu["cores"]:
        assert set(core) >= {"id", "usage", "frequency", "temperature"}, core
        assert is_count(core["id"])
        assert_percent(core["usage"], f"core {core['id']} usage")
        assert core["frequency"] is None or (is_number(core["frequency"]) and core["frequency"] > 0)
        assert core["temperature"] is None or is_number(core["temperature"])
    assert [c["id"] for c in cpu["cores"]] == sorted(c["id"] for c in cpu["cores"])
    assert len(cpu["loadAverage"]) == 3 and all(is_number(v) and v >= 0 for v in cpu["loadAverage"])
    assert is_count(cpu["processes"]) and cpu["processes"] >= 1
    assert is_count(cpu["threads"]) and cpu["threads"] >= cpu["processes"]

    memory = node["memory"]
    assert_percent(memory["usage"], "memory.usage")
    assert is_count(memory["used"]) and is_count(memory["total"])
    assert 0 < memory["used"] <= memory["total"] == info["memory_total"]
    assert abs(memory["usage"] - memory["used"] / memory["total"] * 100) < 0.01
    swap = memory["swap"]
    assert is_count(swap["used"]) and is_count(swap["total"]) and swap["used"] <= swap["total"]
    assert_percent(swap["percentage"], "swap.percentage")

    disk = node["disk"]
    assert_percent(disk["usage"], "disk.usage")
    assert is_count(disk["used"]) and is_count(disk["total"]) and disk["used"] <= disk["total"]
    assert disk["total"] == info["disk_total"]
    for key in ["ioRead", "ioWrite", "iops"]:
        assert_rate(disk[key], f"disk.{key}")

    network = node["network"]
    for key in ["bytesIn", "bytesOut", "packetsIn", "packetsOut"]:
        assert_rate(network[key], f"network.{key}")
    assert is_count(network["connections"])

    assert isinstance(node["accelerators"], list)
    for accelerator in node["accelerators"]:
        assert accelerator["type"] in {"gpu", "npu", "tpu", "other"}
        for key in ["id", "name"]:
            assert isinstance(accelerator[key], str)


def test_metrics_move_on(monitor):
    """Samples keep coming (interval 250 ms): the timestamp advances between two calls."""
    _, _, first = get(f"{monitor.rest_url}/api/system/metrics")
    time.sleep(0.6)
    _, _, second = get(f"{monitor.rest_url}/api/system/metrics")
    assert second[0]["timestamp"] > first[0]["timestamp"]


def test_node_id_filter(monitor, tmp_path):
    """Started as TrackLab's launcher starts it (no --node-id), the monitor takes any
    well-formed node_id to name it, as TrackLab's own integration test expects; started with
    --node-id, an unknown id is a 404 JSON error. Malformed ids are 400 either way."""
    base = f"{monitor.rest_url}/api/system/metrics"
    _, _, nodes = get(base)
    own = nodes[0]["node_id"]
    status, _, body = get(f"{base}?node_id={own}")
    assert status == 200 and [n["node_id"] for n in body] == [own]

    # TrackLab's integration test, verbatim.
    status, _, body = get(f"{base}?node_id=test-node")
    assert status == 200, body
    assert body[0]["node_id"] == "test-node"

    for bad in ["a/b", "has%20space", "x" * 300]:
        status, headers, body = get(f"{base}?node_id={bad}")
        assert status == 400, (bad, body)
        assert headers["Content-Type"].startswith("application/json")
        assert isinstance(body["error"], str) and body["error"]

    named = start_monitor(tmp_path, "--node-id", "named-node")
    try:
        status, headers, body = get(f"{named.rest_url}/api/system/metrics?node_id=unknown-node-42")
        assert status == 404, body
        assert headers["Content-Type"].startswith("application/json")
        assert body == {"error": "unknown node_id", "node_id": "unknown-node-42"}
    finally:
        assert stop_monitor(named) == 0


def test_cors(monitor, tmp_path):
    """No CORS headers by default (issue 9: this was `*`); with --cors-allow-origin, that
    origin exactly, and no other."""
    origin = "http://localhost:3000"
    for path in ["/api/health", "/api/system/metrics"]:
        status, headers, _ = get(f"{monitor.rest_url}{path}", headers={"Origin": origin})
        assert status == 200
        assert "Access-Control-Allow-Origin" not in headers, dict(headers)

    allowing = start_monitor(tmp_path, "--cors-allow-origin", origin)
    try:
        for path in ["/api/health", "/api/system/metrics"]:
            status, headers, _ = get(f"{allowing.rest_url}{path}", headers={"Origin": origin})
            assert status == 200
            assert headers.get("Access-Control-Allow-Origin") == origin, dict(headers)
            status, headers, _ = get(
                f"{allowing.rest_url}{path}", headers={"Origin": "http://evil.example"}
            )
            assert status == 200
            assert "Access-Control-Allow-Origin" not in headers, dict(headers)
    finally:
        assert stop_monitor(allowing) == 0


def raw_get(port, host):
    """GET /api/health with this Host header, over a plain socket: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


def test_host_check(monitor):
    """On loopback, only loopback names answer: a rebound DNS name gets a JSON 403."""
    port = monitor.rest_port
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]:
        assert raw_get(port, host)[0] == 200, host
    status, body = raw_get(port, f"rebound.example:{port}")
    assert status == 403
    assert json.loads(body) == {
        "error": "host not allowed",
        "host": f"rebound.example:{port}",
        "detail": "start the monitor with --allowed-host NAME to serve this name",
    }
