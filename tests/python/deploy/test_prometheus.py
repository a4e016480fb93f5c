"""deploy/prometheus/ and deploy/grafana/: the alert rules checked and unit-tested by promtool, the
example scrape configuration checked by promtool, and every query of the Grafana dashboard
evaluated by a real Prometheus (Debian's `prometheus`, which scripts/test.sh installs) scraping a
real agent (with the fake NVML, so the GPU panels have GPUs) and a real coordinator polling it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from .kit import DASHBOARD, REPO, RULES, binary, eventually, http_get, start, tool

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_TESTS = PROMETHEUS_DIR / "system-monitor.rules.test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"


def promtool(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


# ---------------------------------------------------------------------------------------------
# Rules.


def test_rules_pass_promtool_check():
    out = promtool("check", "rules", RULES)
    assert out.returncode == 0, out.stdout + out.stderr
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r["alert"] for g in groups for r in g["rules"]]
    assert len(alerts) == len(set(alerts))
    for g in groups:
        for r in g["rules"]:
            assert r["labels"]["severity"] in ("info", "warning", "critical"), r["alert"]
            assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]


def test_rules_pass_their_unit_tests():
    out = promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS_DIR)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_unit_test_that_sees_it_fire():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert fired == {r["alert"] for g in groups for r in g["rules"]}


def test_the_unit_tests_can_fail(tmp_path):
    """The same tests against a rules file whose GPU temperature threshold moved."""
    shutil.copy(RULE_TESTS, tmp_path)
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("DCGM_FI_DEV_GPU_TEMP > 85",
                                                                 "DCGM_FI_DEV_GPU_TEMP > 95"))
    out = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert out.returncode != 0 and "SystemMonitorGPUTooHot" in out.stdout + out.stderr


def test_rules_use_metric_names_the_project_emits():
    """Every metric an alert reads is one our agent or coordinator writes, or one of
    dcgm-exporter's that ours does not (Xid)."""
    emitted = set()
    for path in (REPO / "src").rglob("*.rs"):
        emitted |= set(re.findall(r'"((?:node|system_monitor|DCGM_FI)_[A-Za-z0-9_]+)"', path.read_text()))
    from_dcgm_exporter = {"DCGM_FI_DEV_XID_ERRORS"}
    used = set()
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for r in g["rules"]:
            used |= set(re.findall(r"\b((?:node|system_monitor|DCGM_FI)_[A-Za-z0-9_]+)\b", r["expr"]))
    assert used - emitted == from_dcgm_exporter


# ---------------------------------------------------------------------------------------------
# The example scrape configuration.


def test_example_scrape_config_passes_promtool(tmp_path):
    """promtool check config, with the files it names made here. Debian's Prometheus is built
    without Kubernetes service discovery (it refuses `kubernetes_sd_configs`), so those jobs are
    checked by promtool with a static target in place of the discovery, and the discovery block
    itself against the fields Prometheus documents."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"system-monitor-agent", "system-monitor-coordinator"} <= set(jobs)
    kubernetes_jobs = 0
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            kubernetes_jobs += 1
            assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file"}
            assert sd["role"] in ("endpoints", "endpointslice", "service", "pod", "node", "ingress")
            job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        for relabel in job.get("relabel_configs", []):
            if "regex" in relabel:
                re.compile(relabel["regex"])
        auth = job.get("authorization", {})
        if "credentials_file" in auth:
            token = tmp_path / Path(auth["credentials_file"]).name
            token.write_text("token\n")
            auth["credentials_file"] = str(token)
        tls = job.get("tls_config", {})
        if "ca_file" in tls:
            ca = tmp_path / Path(tls["ca_file"]).name
            ca.write_text("")
            tls["ca_file"] = str(ca)
    assert kubernetes_jobs >= 2
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    out = promtool("check", "config", checked)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# The dashboard, against a real Prometheus.


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, and of the template variables' queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
            out.append((f"${var['name']}", m.group(1)))
    return out


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "node"}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used)
    titles = " ".join(p["title"] for p in dashboard["panels"] if p["type"] == "row")
    assert titles == "Cluster Nodes GPUs Coordinator"


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends for "All" nodes over a few minutes of 1 s scrapes."""
    expr = expr.replace("$__rate_interval", "15s").replace("$node", ".+")
    assert "$" not in expr, expr
    return expr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus on a free loopback port with the given scrape config; stopped at the end."""
    started = []

    def run(config: dict) -> str:
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = open(tmp_path / "prometheus.log", "wb")
        process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        eventually(lambda: http_get(f"{url}/-/ready")[0] == 200, what="Prometheus ready")
        return url

    yield run
    for p in started:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def query(prom: str, expr: str) -> list:
    status, body = http_get(f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


@pytest.mark.binary
def test_every_dashboard_query_answers_from_a_real_prometheus(tmp_path, processes, prometheus):
    token = "dashboard-test-token"
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    nvml = binary().parent / "libfake_nvml.so"
    if not nvml.exists():
        pytest.fail(f"{nvml} is missing: `cargo build --workspace` builds the fake NVML")
    (tmp_path / "nvml.conf").write_text("devices=2\n")
    agent = start(["--rest-api-port", "0", "--node-id", "gpu-node-1", "--interval", "500ms",
                   "--auth-token-file", str(token_file), "--nvml-library", str(nvml)],
                  tmp_path, name="agent", env={"FAKE_NVML_CONFIG": str(tmp_path / "nvml.conf")})
    processes.append(agent)
    coordinator = start(["coordinator", "--rest-api-port", "0", "--node-id", "coordinator-0",
                         "--auth-token-file", str(token_file), "--poll-interval", "500ms",
                         "--agents", f"http://127.0.0.1:{agent.rest_port}"],
                        tmp_path, name="coordinator")
    processes.append(coordinator)

    def job(name, port):
        return {"job_name": name, "scrape_interval": "1s", "scrape_timeout": "1s",
                "authorization": {"credentials_file": str(token_file)},
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
    prom = prometheus({
        "global": {"evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [job("system-monitor-agent", agent.rest_port),
                           job("system-monitor-coordinator", coordinator.rest_port)],
    })
    eventually(lambda: len([r for r in query(prom, "up == 1")]) == 2, seconds=30,
               what="both targets scraped")
    # Rates need two scrapes inside their window, and the coordinator a few poll rounds.
    time.sleep(4)

    empty = []
    for title, expr in dashboard_queries():
        promql = grafana_to_promql(expr)
        try:
            eventually(lambda: query(prom, promql), seconds=15, what=f"{title}: {promql}")
        except pytest.fail.Exception:
            empty.append(f"{title}: {promql}")
    assert not empty, "queries with no answer:\n  " + "\n  ".join(empty)

    # The rules file loads into this Prometheus and every rule evaluates without error.
    def rules_evaluated():
        _, body = http_get(f"{prom}/api/v1/rules")
        rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
        return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules) else None
    rules = eventually(rules_evaluated, seconds=15, what="every rule evaluated")
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])


def test_an_empty_query_is_noticed(prometheus, tmp_path):
    prom = prometheus({"global": {"scrape_interval": "1s"}, "scrape_configs": []})
    assert query(prom, grafana_to_promql('DCGM_FI_DEV_GPU_TEMP{node=~"$node"}')) == []
