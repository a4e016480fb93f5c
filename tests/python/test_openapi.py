"""The OpenAPI documents checked against the running binary with schemathesis: an agent and a
coordinator (polling that agent, taking registrations) each serve their document at
``/api/openapi.json``, and schemathesis generates requests from it — valid and invalid query
parameters, registration bodies, other methods — and checks that no answer is a 5xx and that
every answer's status, content type, headers and body are the ones the document gives.

``/api/system/stream`` never ends: schemathesis reads two events of it (``max-stream-events`` in
schemathesis.toml) and checks each against the stream's schema.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import binary, read_portfile, start_monitor, stop_monitor

# Every check (schemathesis' default: no 5xx; status codes, content types, headers and bodies as
# documented; invalid input refused with a 4xx, valid input accepted; other methods 405), with the
# exceptions in schemathesis.toml.
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Enough cases per operation to reach every branch (malformed and unknown ids, bodies breaking
# each registration rule) while the two runs stay under a minute or so on a small CI machine.
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40")


def schemathesis_cli() -> str:
    """The `st` command of this interpreter's environment (the .venv scripts/test.sh makes)."""
    local = Path(sys.executable).parent / "st"
    found = str(local) if local.exists() else shutil.which("st")
    if not found:
        pytest.skip("schemathesis is not installed (pip install -r tests/python/requirements.txt)")
    return found


def run_schemathesis(base_url: str, workdir: Path, *extra: str) -> None:
    args = [
        schemathesis_cli(), "--config-file", str(CONFIG), "run", f"{base_url}/api/openapi.json",
        "--url", base_url,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", MAX_EXAMPLES,
        "--generation-deterministic",
        "--request-timeout", "10",
        "--workers", "1",
        "--no-color",
        *extra,
    ]
    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems:\n{output}"
    # It must have tested something: a document it could not load also fails above, but an empty
    # selection would pass silently.
    assert "No operations" not in output, output


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_the_agents_answers_match_its_document(tmp_path):
    monitor = start_monitor(tmp_path, "--node-id", "agent-1")
    try:
        doc = get_json(f"{monitor.rest_url}/api/openapi.json")
        assert doc["openapi"] == "3.1.0"
        assert set(doc["paths"]) >= {"/api/health", "/api/system/info", "/api/system/metrics", "/metrics"}
        run_schemathesis(monitor.rest_url, tmp_path)
    finally:
        assert stop_monitor(monitor) == 0


def test_the_coordinators_answers_match_its_document(tmp_path):
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    agent = start_monitor(agent_dir, "--node-id", "agent-1")
    token = tmp_path / "cluster-token"
    token.write_text("schemathesis-cluster-token\n")
    token.chmod(0o600)
    portfile = tmp_path / "coordinator.ports"
    coordinator = subprocess.Popen(
        [str(binary()), "coordinator",
         "--portfile", str(portfile), "--rest-api-port", "0",
         "--agents", agent.rest_url, "--poll-interval", "250ms",
         "--cluster-token-file", str(token), "--sample-self", "--interval", "250ms"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not portfile.exists():
            assert coordinator.poll() is None, "the coordinator exited early"
            assert time.monotonic() < deadline, "no portfile from the coordinator"
            time.sleep(0.02)
        base = f"http://127.0.0.1:{read_portfile(portfile)['rest']}"
        # Wait for the agent's first poll, so that metrics and info have a node to describe.
        while not get_json(f"{base}/api/system/metrics"):
            assert time.monotonic() < deadline, "the coordinator never polled its agent"
            time.sleep(0.1)
        doc = get_json(f"{base}/api/openapi.json")
        assert "/api/cluster/register" in doc["paths"]
        # With the cluster token, registrations reach the body's checks (without it, every one
        # would be the same 401).
        run_schemathesis(base, tmp_path, "--header", "Authorization: Bearer schemathesis-cluster-token")
    finally:
        coordinator.terminate()
        assert coordinator.wait(10) == 0
        assert stop_monitor(agent) == 0
