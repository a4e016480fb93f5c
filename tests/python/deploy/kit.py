"""Shared pieces of the deployment tests: the chart rendered by Helm's own code (through
deploy/kubernetes/generate.py, the one place that renders it), the value sets every check runs
over, the tools scripts/test.sh installs, and the real binary started from rendered arguments."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "system-monitor"
RULES = REPO / "deploy" / "prometheus" / "system-monitor.rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "system-monitor-cluster.json"
STARTUP_SECONDS = 20


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "deploy/kubernetes/generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()

# Release and namespace for the chart checks: neither is the chart's or the manifests' default, so
# a hard-coded "monitoring" or "system-monitor" shows up.
RELEASE = "tm"
NAMESPACE = "observability"

# The value sets every chart check runs over (besides the defaults): each turns on what the issue
# asks the chart to offer.
VALUE_SETS: dict[str, dict] = {
    "defaults": {},
    "gpu": {
        "gpu": {"runtimeClassName": "nvidia",
                "dcgm": {"enabled": True, "address": "localhost:5555"}},
        "podResources": {"enabled": True},
    },
    "tls-secret": {
        "tls": {"enabled": True, "agentSecretName": "agents-tls",
                "coordinatorSecretName": "coordinator-tls"},
    },
    "cert-manager": {
        "tls": {"enabled": True, "certManager": {
            "enabled": True,
            "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "agentIPAddresses": ["10.0.0.5", "10.0.0.6"],
        }},
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "no-coordinator": {"coordinator": {"enabled": False}},
    "registration": {"agent": {"register": True}, "tls": {"enabled": True}},
    "locked-down": {
        "image": {"digest": "sha256:" + "ab" * 32},
        "tokens": {"existingSecret": "my-tokens"},
        "agent": {"hostNetwork": False, "priorityClassName": "system-node-critical",
                  "extraArgs": ["--collector.tcp.scan-interval=60s"],
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}],
                  "resources": {"requests": {"cpu": "5m", "memory": "16Mi"},
                                "limits": {"cpu": "100m", "memory": "64Mi"}}},
        "coordinator": {
            "replicas": 2,
            "extraArgs": ["--poll-timeout=3s"],
            "networkPolicy": {
                "enabled": True,
                "agentCIDRs": ["10.0.0.0/16"],
                "clients": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "tracklab"}}}],
            },
        },
    },
}


@functools.lru_cache(maxsize=None)
def _render_cached(values_json: str, release: str, namespace: str) -> str:
    return json.dumps(generate.render(json.loads(values_json), release=release,
                                      namespace=namespace))


def render(values: dict, *, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    """Every object the chart renders with these values (fresh copies)."""
    by_file = json.loads(_render_cached(json.dumps(values, sort_keys=True), release, namespace))
    return [o for objects in by_file.values() for o in objects]


def find(objects: list[dict], kind: str, name_suffix: str = "") -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, found {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def kinds(objects: list[dict]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def tool(name: str) -> str:
    """A tool scripts/test.sh installs: the venv's own first (pip packages), then PATH."""
    venv = Path(sys.executable).parent / name
    if venv.exists():
        return str(venv)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run ./scripts/test.sh, which installs it")
    return found


# ---------------------------------------------------------------------------------------------
# The real binary.


def binary() -> Path:
    path = Path(os.environ.get("SYSTEM_MONITOR_BIN", REPO / "target" / "debug" / "system_monitor"))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it first (cargo build), or set SYSTEM_MONITOR_BIN")
    return path


@functools.lru_cache(maxsize=None)
def help_text() -> str:
    """Every flag the binary knows (agent and coordinator)."""
    b = str(binary())
    return "\n".join(subprocess.run([b, *sub, "--help"], capture_output=True, text=True).stdout
                     for sub in ([], ["coordinator"]))


# Flags the chart may pass that the binary does not have yet, each with the work that adds it.
# A value set using one is an expected failure until then (and a plain failure after, if it
# still does not start).
PENDING_FLAGS = {
    "--kubelet-pod-resources-socket": "GPU pod attribution (issue 13, item 2)",
}


def xfail_pending_flags(args: list[str]) -> None:
    for flag, work in PENDING_FLAGS.items():
        if any(a == flag or a.startswith(flag + "=") for a in args) and flag not in help_text():
            pytest.xfail(f"the binary has no {flag} yet: {work}")


@dataclass
class Running:
    """A started monitor and what it serves."""

    process: subprocess.Popen
    rest_port: int
    grpc_port: int
    scheme: str = "http"
    log: Path | None = None

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.rest_port}{path}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start(args: list[str], workdir: Path, *, name: str, scheme: str = "http",
          env: dict | None = None) -> Running:
    """Starts the binary with `args` (ports 0: the portfile says which) and waits for it."""
    workdir.mkdir(parents=True, exist_ok=True)
    portfile = workdir / f"{name}.ports"
    log = workdir / f"{name}.log"
    argv = [str(binary()), *args, "--portfile", str(portfile)]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   env={**os.environ, **(env or {})})
    deadline = time.monotonic() + STARTUP_SECONDS
    while not portfile.exists():
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} before listening:\n"
                        f"  {' '.join(argv)}\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{name}: no portfile after {STARTUP_SECONDS} s:\n{log.read_text()}")
        time.sleep(0.05)
    ports = dict(line.split("=", 1) for line in portfile.read_text().split())
    return Running(process, int(ports["rest"]), int(ports["sock"]), scheme, log)


def http_get(url: str, *, token: str | None = None, ca: Path | None = None,
             timeout: float = 5) -> tuple[int, bytes]:
    """(status, body); a TLS URL is verified against `ca`."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca)) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def eventually(check, *, seconds: float = 20, what: str = "the condition"):
    """Calls `check` until it returns a truthy value (returned) or `seconds` pass (fails)."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:  # not up yet, half-written answer
            last = e
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {seconds} s (last: {last!r})")


def make_certificate(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it (openssl,
    which scripts/test.sh installs), as the files of a kubernetes.io/tls Secret with ca.crt."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "tls.key", directory / "tls.csr", directory / "tls.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl = tool("openssl")
    for argv in (
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=test CA"],
        [openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext],
    ):
        subprocess.run([str(a) for a in argv], check=True, capture_output=True)
    for p in (ca_key, key):
        p.chmod(0o600)
    return {"tls.crt": crt, "tls.key": key, "ca.crt": ca_crt}
