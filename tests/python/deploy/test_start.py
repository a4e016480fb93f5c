"""The real binary started with the arguments the deployments give it: the chart's agent and
coordinator containers (every value set), the kustomize base and GPU overlay, and the systemd units'
ExecStart lines. What a pod would get from its mounts is mapped onto this machine, read from the
rendered spec itself: hostPath mounts to the host paths (/host/proc -> /proc …), Secret mounts to a
temporary folder holding the Secret's keys (tokens, a throwaway certificate for 127.0.0.1), the
headless Service's DNS name to `localhost`, the coordinator's Service to its address here;
listening moves to 127.0.0.1 and free ports. Each must start, answer its probes' /api/health in the
scheme the probes use, and the coordinator must reach its agent (polled through DNS discovery, or
registered with the cluster token)."""

from __future__ import annotations

import json
import re
import secrets
import shlex
from pathlib import Path

import pytest
import yaml

from .kit import (NAMESPACE, RELEASE, REPO, VALUE_SETS, eventually, http_get,
                   make_certificate, render, start, xfail_pending_flags)

pytestmark = pytest.mark.binary

HOST = "127.0.0.1"


class Pod:
    """One rendered workload mapped onto this machine."""

    def __init__(self, workload: dict, workdir: Path, cert: dict[str, Path], tokens: dict[str, str]):
        spec = workload["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.workload = workload
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.paths: dict[str, str] = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "hostPath" in volume:
                host = volume["hostPath"]["path"]
                if host.startswith("/var/lib/kubelet"):
                    # No kubelet here: an empty folder (a missing socket must be silent).
                    local = workdir / mount["name"]
                    local.mkdir(parents=True, exist_ok=True)
                    host = str(local)
                self.paths[mount["mountPath"]] = host
            elif "secret" in volume:
                folder = workdir / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
                for item in volume["secret"]["items"]:
                    target = folder / item["path"]
                    if item["key"] in cert:
                        target.write_bytes(cert[item["key"]].read_bytes())
                    else:
                        target.write_text(tokens[item["key"]] + "\n")
                    target.chmod(0o600)
                self.paths[mount["mountPath"]] = str(folder)
            else:
                pytest.fail(f"no local stand-in for volume {volume}")
        self.env = {"NODE_NAME": "node-1", "POD_NAME": f"{RELEASE}-coordinator-0"}

    @property
    def tls(self) -> bool:
        return self.container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"

    def args(self, *, discover: str | None = None, coordinator: str | None = None) -> list[str]:
        out = []
        for arg in self.container["args"]:
            arg = re.sub(r"\$\((\w+)\)", lambda m: self.env[m.group(1)], arg)
            name, sep, value = arg.partition("=")
            if name == "--bind":
                value = HOST
            elif name in ("--rest-api-port", "--grpc-port"):
                value = "0"
            elif name == "--discover-dns":
                assert discover, f"{arg} given but no agent to find"
                value = discover(value)
            elif name == "--coordinator":
                assert coordinator, f"{arg} given but no coordinator started"
                value = coordinator(value)
            for mount_path in sorted(self.paths, key=len, reverse=True):
                if value.startswith(mount_path + "/") or value == mount_path:
                    value = self.paths[mount_path] + value[len(mount_path):]
                    break
            out.append(f"{name}={value}" if sep else arg)
        return out

    def check_probes(self, running, ca: Path):
        for probe in ("readinessProbe", "livenessProbe"):
            get = self.container[probe]["httpGet"]
            url = f"{get['scheme'].lower()}://{HOST}:{running.rest_port}{get['path']}"
            status, body = eventually(lambda: http_get(url, ca=ca), what=f"{probe} answering")
            assert status == 200, f"{probe} {url}: {status} {body[:300]!r}"


def token_values() -> dict[str, str]:
    """The keys the pods read from Secrets other than certificates: random tokens."""
    return {"auth-token": secrets.token_hex(16), "cluster-token": secrets.token_hex(16)}


def start_pair(objects: list[dict], tmp_path: Path, processes, *, agent_service: str,
               agent_port: int, coordinator_service: str | None, coordinator_port: int | None):
    """Starts the coordinator and the agent of `objects` (either may be absent), in the order
    their discovery needs, checks their probes, and returns them with the auth token and CA."""
    cert = make_certificate(tmp_path / "cert")
    tokens = token_values()
    workloads = {o["kind"]: o for o in objects if o["kind"] in ("DaemonSet", "Deployment")}
    agent_pod = Pod(workloads["DaemonSet"], tmp_path / "agent", cert, tokens)
    coord_pod = (Pod(workloads["Deployment"], tmp_path / "coordinator", cert, tokens)
                 if "Deployment" in workloads else None)
    for pod in filter(None, (agent_pod, coord_pod)):
        xfail_pending_flags(pod.container["args"])
    registers = any(a.startswith("--coordinator=") for a in agent_pod.container["args"])

    def local_agent_dns(running):
        def mapped(value):
            name, port = value.rsplit(":", 1)
            assert (name, int(port)) == (agent_service, agent_port), value
            return f"localhost:{running.rest_port}"
        return mapped

    def local_coordinator(running):
        def mapped(url):
            scheme, host, port = re.fullmatch(r"(https?)://([^:/]+):(\d+)", url).groups()
            assert (host, int(port)) == (f"{coordinator_service}.{NAMESPACE}.svc", coordinator_port), url
            return f"{scheme}://{HOST}:{running.rest_port}"
        return mapped

    agent = coordinator = None
    if registers:
        coordinator = start(coord_pod.args(), tmp_path, name="coordinator",
                            scheme="https" if coord_pod.tls else "http")
        processes.append(coordinator)
        agent = start(agent_pod.args(coordinator=local_coordinator(coordinator)), tmp_path,
                      name="agent", scheme="https" if agent_pod.tls else "http")
        processes.append(agent)
    else:
        agent = start(agent_pod.args(), tmp_path, name="agent",
                      scheme="https" if agent_pod.tls else "http")
        processes.append(agent)
        if coord_pod:
            coordinator = start(coord_pod.args(discover=local_agent_dns(agent)), tmp_path,
                                name="coordinator", scheme="https" if coord_pod.tls else "http")
            processes.append(coordinator)
    agent_pod.check_probes(agent, cert["ca.crt"])
    if coordinator:
        coord_pod.check_probes(coordinator, cert["ca.crt"])
    return agent, coordinator, tokens, cert["ca.crt"]


def assert_coordinator_serves_the_agent(agent, coordinator, token, ca):
    """The coordinator lists node-1 online (it polled the agent with the shared token), and reads
    need the token on both."""
    def online():
        status, body = http_get(coordinator.url("/api/cluster/info"), token=token, ca=ca)
        nodes = json.loads(body)["nodes"] if status == 200 else []
        return [n for n in nodes if n["id"] == "node-1" and n["status"] == "online"]
    eventually(online, what="the coordinator listing node-1 online")
    for running in (agent, coordinator):
        status, _ = http_get(running.url("/api/system/metrics"), ca=ca)
        assert status == 401, "reads need the auth token"
        status, _ = http_get(running.url("/api/system/metrics"), token=token, ca=ca)
        assert status == 200


CHART_SETS = [n for n in VALUE_SETS if n != "no-coordinator"]


@pytest.mark.parametrize("name", CHART_SETS + ["no-coordinator"])
def test_chart_arguments_start_the_binary(name, tmp_path, processes):
    objects = render(VALUE_SETS[name])
    agent, coordinator, tokens, ca = start_pair(
        objects, tmp_path, processes,
        agent_service=f"{RELEASE}-system-monitor-agents", agent_port=9836,
        coordinator_service=f"{RELEASE}-system-monitor", coordinator_port=8080)
    if coordinator:
        assert_coordinator_serves_the_agent(agent, coordinator, tokens["auth-token"], ca)


@pytest.mark.parametrize("variant", ["base", "overlays/gpu"])
def test_kustomize_arguments_start_the_binary(variant, tmp_path, processes):
    import subprocess
    from .kit import tool
    out = subprocess.run([tool("kubectl"), "kustomize", str(REPO / "deploy/kubernetes" / variant)],
                         capture_output=True, text=True, check=True).stdout
    objects = [o for o in yaml.safe_load_all(out) if o]
    agent, coordinator, tokens, ca = start_pair(
        objects, tmp_path, processes, agent_service="system-monitor-agents", agent_port=9836,
        coordinator_service="system-monitor", coordinator_port=8080)
    assert_coordinator_serves_the_agent(agent, coordinator, tokens["auth-token"], ca)


def exec_start(unit: Path) -> list[str]:
    """The ExecStart= command of a unit, as systemd splits it (continuation lines joined)."""
    text = unit.read_text().replace("\\\n", " ")
    (line,) = [l for l in text.splitlines() if l.startswith("ExecStart=")]
    return shlex.split(line.split("=", 1)[1])


def systemd_args(unit: Path, credentials: Path, environment: dict[str, str]) -> list[str]:
    """ExecStart's arguments with %d (the credentials folder) and $VARIABLES (split on spaces,
    as systemd does for an unbraced $NAME) filled in, on 127.0.0.1 and free ports."""
    argv = exec_start(unit)
    assert argv[0] == "/usr/local/bin/system_monitor"
    out = []
    it = iter(argv[1:])
    for arg in it:
        if re.fullmatch(r"\$\w+", arg):
            out += environment.get(arg[1:], "").split()
            continue
        arg = arg.replace("%d", str(credentials))
        if arg == "--bind":
            next(it)
            out += ["--bind", HOST]
        elif arg in ("--rest-api-port", "--grpc-port"):
            next(it)
            out += [arg, "0"]
        else:
            out.append(arg)
    return out


def test_systemd_units_start_and_the_agent_registers(tmp_path, processes):
    """The coordinator unit, then the agent unit pointed at it through AGENT_ARGS (as
    /etc/default/system-monitor would): the agent registers with the cluster token."""
    units = REPO / "deploy" / "systemd"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    tokens = token_values()
    for key, value in tokens.items():
        (credentials / key).write_text(value)
        (credentials / key).chmod(0o600)
    coord_args = systemd_args(units / "system-monitor-coordinator.service", credentials, {})
    xfail_pending_flags(coord_args)
    coordinator = start(coord_args, tmp_path, name="coordinator")
    processes.append(coordinator)
    agent_args = systemd_args(units / "system-monitor.service", credentials, {
        "AGENT_ARGS": f"--coordinator http://{HOST}:{coordinator.rest_port} --node-id node-1"})
    agent = start(agent_args, tmp_path, name="agent")
    processes.append(agent)
    for running in (agent, coordinator):
        status, _ = http_get(running.url("/api/health"))
        assert status == 200
    assert_coordinator_serves_the_agent(agent, coordinator, tokens["auth-token"], None)
