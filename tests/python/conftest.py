"""Fixtures for the Python client tests: the real `system_monitor` binary started the way TrackLab's
launcher starts it (``--portfile``, ephemeral ports), and Python gRPC stubs generated from
``proto/`` at session start (no generated code is committed)."""

import importlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"
PROTOS = ["tracklab_system_monitor.proto", "tracklab/monitor/v1/monitor.proto"]
STARTUP_SECONDS = 20
EXIT_SECONDS = 10


@dataclass
class Monitor:
    """A running monitor and where it listens."""

    process: subprocess.Popen
    grpc_port: int
    rest_port: int

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def binary() -> Path:
    path = Path(os.environ.get("SYSTEM_MONITOR_BIN", REPO / "target" / "debug" / "system_monitor"))
    if not path.is_file():
        pytest.exit(f"{path} does not exist: run `cargo build` first (or set SYSTEM_MONITOR_BIN)", 2)
    return path


def read_portfile(path: Path) -> dict:
    """``sock=<grpc>`` then ``rest=<rest>``, as the monitor writes them (atomically)."""
    ports = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        ports[key] = int(value)
    return ports


def start_monitor(workdir: Path, *extra: str) -> Monitor:
    portfile = workdir / "ports"
    args = [
        str(binary()),
        "--portfile", str(portfile),
        "--rest-api-port", "0",
        "--interval", "250ms",
        *extra,
    ]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not portfile.exists():
        if process.poll() is not None:
            pytest.fail(f"system_monitor exited with {process.returncode} before writing the portfile")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no portfile after {STARTUP_SECONDS} s")
        time.sleep(0.02)
    ports = read_portfile(portfile)
    assert list(ports) == ["sock", "rest"], ports
    return Monitor(process, ports["sock"], ports["rest"])


def stop_monitor(monitor: Monitor) -> int:
    """SIGTERM, then the exit code (killed and failed if it does not exit in time)."""
    if monitor.process.poll() is None:
        monitor.process.send_signal(signal.SIGTERM)
    try:
        return monitor.process.wait(EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        monitor.process.kill()
        monitor.process.wait()
        pytest.fail(f"system_monitor did not exit within {EXIT_SECONDS} s of SIGTERM")


@pytest.fixture(scope="session")
def monitor(tmp_path_factory):
    """One monitor shared by the read-only tests; it must exit 0 on SIGTERM at the end."""
    running = start_monitor(tmp_path_factory.mktemp("monitor"))
    # Two samples, so that rates and percentages are real ones.
    time.sleep(0.6)
    yield running
    code = stop_monitor(running)
    assert code == 0, f"system_monitor exited with {code} on SIGTERM"


@pytest.fixture
def child_monitor(tmp_path):
    """A monitor of its own, for tests that stop it."""
    running = start_monitor(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Generates the Python messages and stubs from proto/ and imports them."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("stubs")
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/timestamp.proto
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *[str(PROTO_DIR / p) for p in PROTOS],
    ])
    assert code == 0, f"protoc failed with {code}"
    sys.path.insert(0, str(out))
    try:
        modules = {
            "legacy": importlib.import_module("tracklab_system_monitor_pb2"),
            "legacy_grpc": importlib.import_module("tracklab_system_monitor_pb2_grpc"),
            "v1": importlib.import_module("tracklab.monitor.v1.monitor_pb2"),
            "v1_grpc": importlib.import_module("tracklab.monitor.v1.monitor_pb2_grpc"),
        }
    finally:
        sys.path.remove(str(out))
    return type("Stubs", (), modules)
