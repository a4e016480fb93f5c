"""The dashboard (``GET /``) in a real browser: headless Chromium (Debian's ``chromium``, driven
by Playwright) loads the agent's view and the coordinator's against running binaries — two
agents on fixture host trees (one with an AMD GPU) and a coordinator polling them, all with a
read token — and checks that

- the page asks for the token once and keeps it for the tab (a reload does not ask again),
- the numbers shown are the API's (``data-raw`` holds the number a tile or a cell shows, and
  its text is that number formatted),
- the charts grow with live samples, start from history when the server answers it (served by
  the browser here, in the documented shape), and the range switch asks for its window,
- the coordinator's node list filters, sorts, and clicks through to one node's view,
- a stopped agent shows as offline,
- nothing is logged to the console as an error (aside from the 401s before the token is typed
  in, which are how the page learns it needs one, and history answering 404: the charts then
  start empty and fill from the WebSocket, by design, until the server keeps history).

Screenshots go to ``target/test-artifacts/`` (``DASHBOARD_ARTIFACTS`` to put them elsewhere).
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import REPO, binary, read_portfile

TOKEN = "dashboard-browser-token"
ARTIFACTS = Path(os.environ.get("DASHBOARD_ARTIFACTS", REPO / "target" / "test-artifacts"))
START_SECONDS = 20
WAIT_MS = 20_000


def chromium() -> str:
    """Debian's chromium (scripts/test.sh installs it); skipped without it unless required."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("DASHBOARD_BROWSER_REQUIRED"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("DASHBOARD_BROWSER_REQUIRED"):
            pytest.fail("playwright is not installed (pip install -r tests/python/requirements.txt)")
        pytest.skip("playwright is not installed (pip install -r tests/python/requirements.txt)")
    return sync_playwright


class Server:
    """A running `system_monitor` (agent or coordinator) and its REST base URL."""

    def __init__(self, workdir: Path, args: list):
        workdir.mkdir(parents=True, exist_ok=True)
        portfile = workdir / "ports"
        self.stderr = open(workdir / "stderr", "wb")
        self.process = subprocess.Popen(
            [str(binary()), *args, "--portfile", str(portfile), "--rest-api-port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
        )
        deadline = time.monotonic() + START_SECONDS
        while not portfile.exists():
            if self.process.poll() is not None:
                pytest.fail(f"{args[:1]} exited with {self.process.returncode}: "
                            f"{(workdir / 'stderr').read_text()}")
            assert time.monotonic() < deadline, f"no portfile from {args}"
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{read_portfile(portfile)['rest']}"

    def get(self, path: str):
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def fixture_args(name: str) -> list:
    root = REPO / "tests" / "fixtures" / name
    return ["--path.procfs", str(root / "proc"), "--path.sysfs", str(root / "sys"),
            "--path.rootfs", str(root / "root")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two agents (a GPU workstation and a server, both fixtures) and a coordinator polling them,
    every one with the same read token."""
    chromium()
    playwright_api()
    tmp = tmp_path_factory.mktemp("dashboard")
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    auth = ["--auth-token-file", str(token)]
    servers = {}
    try:
        servers["ws-1"] = Server(tmp / "ws-1", [*fixture_args("accel/workstation"), "--node-id", "ws-1",
                                                "--interval", "500ms", *auth])
        servers["srv-2"] = Server(tmp / "srv-2", [*fixture_args("server"), "--node-id", "srv-2",
                                                  "--interval", "500ms", *auth])
        agents = ",".join(servers[n].base for n in ("ws-1", "srv-2"))
        servers["coordinator"] = Server(tmp / "coordinator", [
            "coordinator", "--agents", agents, "--poll-interval", "300ms", "--offline-after", "1s", *auth])
        coordinator = servers["coordinator"]
        deadline = time.monotonic() + START_SECONDS
        while len(coordinator.get("/api/system/metrics")) < 2:
            assert time.monotonic() < deadline, "the coordinator never polled both agents"
            time.sleep(0.1)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def browser():
    with playwright_api()() as p:
        instance = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield instance
        instance.close()


class Console:
    """The console's errors and the page's uncaught exceptions."""

    def __init__(self, page):
        self.errors = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message):
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        # The history endpoints answer 404 on a server without history; the page then fills
        # its charts from the WebSocket (and says so).
        if "/history" in url and "404" in message.text:
            return
        self.errors.append(f"{message.text} ({url})")


def new_page(browser, name):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    page = context.new_page()
    return page, Console(page)


def enter_token(page, console):
    """The page asks for the token (the API answered 401): type it in. The 401s that made it
    ask, logged by the browser, are how it learns that a token is needed: not errors."""
    page.wait_for_selector("#token-dialog[open]", timeout=WAIT_MS)
    console.errors = [e for e in console.errors if "status of 401" not in e]
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")


def raw(page, selector) -> float:
    page.wait_for_function(
        "s => { const e = document.querySelector(s); return e && e.dataset.raw !== '' }",
        arg=selector, timeout=WAIT_MS)
    return float(page.get_attribute(selector, "data-raw"))


def pct(value) -> str:
    return f"{value:.1f} %"


def points(page, chart) -> int:
    return int(page.get_attribute(f"#chart-{chart}", "data-points"))


def wait_for_more_points(page, chart, than):
    page.wait_for_function(
        "([id, n]) => Number(document.querySelector(id).dataset.points) > n",
        arg=[f"#chart-{chart}", than], timeout=WAIT_MS)


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=False)


def test_the_agent_view_shows_the_api_numbers_and_live_charts(cluster, browser):
    agent = cluster["ws-1"]
    page, console = new_page(browser, "agent")
    page.goto(agent.base + "/")
    enter_token(page, console)
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)

    info = agent.get("/api/system/info")
    element = agent.get("/api/system/metrics")[0]
    assert page.text_content("#node-id") == "ws-1"
    assert page.text_content("#node-host") == info["hostname"]
    assert info["cpu_model"] in page.text_content("#node-cpu")
    # Fixture trees do not change, so the live sample shows the numbers the API gives now.
    memory = element["memory"]
    assert raw(page, "#tile-memory .value") == pytest.approx(memory["usage"])
    assert page.text_content("#tile-memory .value") == pct(memory["usage"])
    assert raw(page, "#tile-swap .value") == pytest.approx(memory["swap"]["percentage"])
    # Disk usage is statvfs of the real file systems under the fixture's root: it moves a little.
    disk = raw(page, "#tile-disk .value")
    assert disk == pytest.approx(element["disk"]["usage"], abs=0.5)
    assert page.text_content("#tile-disk .value") == pct(disk)
    assert raw(page, "#tile-cpu .value") == pytest.approx(element["cpu"]["overall"])
    accelerators = element["accelerators"]
    assert accelerators, "the workstation fixture has GPUs"
    for i, accelerator in enumerate(accelerators):
        assert raw(page, f"#tile-accel-{i} .value") == pytest.approx(accelerator["utilization"])
        assert page.text_content(f"#tile-accel-{i} .value") == pct(accelerator["utilization"])
        assert page.is_visible(f"#chart-accel-{i}-use") and page.is_visible(f"#chart-accel-{i}-heat")
    assert page.locator("#cores .core").count() == len(element["cpu"]["cores"])
    mounts = [fs["mountpoint"] for fs in element.get("filesystems", [])]
    for mount in mounts:
        assert page.locator("#filesystems td", has_text=mount).count() >= 1

    # Live: the charts grow with every sample.
    for chart in ("cpu", "memory", "network", "accel-0-use"):
        before = points(page, chart)
        wait_for_more_points(page, chart, before)
    # The range switch back-fills (or, without history, starts again from live data).
    page.click("#ranges button[data-range='1h']")
    assert page.get_attribute("#ranges button[data-range='1h']", "aria-pressed") == "true"
    wait_for_more_points(page, "cpu", 1)
    screenshot(page, "agent")

    # The token is kept for the tab: a reload does not ask again.
    page.reload()
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    assert not page.is_visible("#token-dialog")
    assert page.get_attribute("#ranges button[data-range='1h']", "aria-pressed") == "true"
    assert console.errors == []


def test_the_coordinator_view_lists_every_node_and_shows_offline_ones(cluster, browser):
    coordinator = cluster["coordinator"]
    page, console = new_page(browser, "coordinator")
    page.goto(coordinator.base + "/")
    enter_token(page, console)
    for node in ("ws-1", "srv-2"):
        page.wait_for_selector(f"#node-{node}", timeout=WAIT_MS)

    elements = {e["node_id"]: e for e in coordinator.get("/api/system/metrics")}
    for node, element in elements.items():
        row = f"#node-{node}"
        assert page.text_content(f"{row} .c-status") == element["status"] == "online"
        assert raw(page, f"{row} .c-cpu") == pytest.approx(element["cpu"]["overall"])
        assert raw(page, f"{row} .c-memory") == pytest.approx(element["memory"]["usage"])
        assert page.text_content(f"{row} .c-memory").startswith(pct(element["memory"]["usage"]))
    accelerators = len(elements["ws-1"]["accelerators"])
    assert page.text_content("#node-ws-1 .c-accels").startswith(f"{accelerators}×")

    info = coordinator.get("/api/cluster/info")
    assert raw(page, "#tile-nodes .value") == 2
    page.wait_for_function(
        "n => Number(document.querySelector('#tile-memory .value').dataset.raw) > 0", arg=0, timeout=WAIT_MS)
    total = info["totalResources"]
    assert f"of {fmt_bytes(total['memory'])}" == page.text_content("#tile-memory .sub")
    before = points(page, "cluster-nodes")
    wait_for_more_points(page, "cluster-nodes", before)

    # Filter and sort.
    page.fill("#filter", "srv")
    page.wait_for_function("() => document.querySelector('#node-count').textContent === '1 of 2 nodes'",
                           timeout=WAIT_MS)
    assert not page.is_visible("#node-ws-1")
    # By accelerator name too (the headline lists each node's distinct names).
    page.fill("#filter", elements["ws-1"]["accelerators"][0]["name"])
    page.wait_for_function("() => document.querySelector('#node-count').textContent === '1 of 2 nodes'",
                           timeout=WAIT_MS)
    assert page.is_visible("#node-ws-1") and not page.is_visible("#node-srv-2")
    page.fill("#filter", "")
    page.wait_for_selector("#node-ws-1", timeout=WAIT_MS)
    page.click("#nodes-head span[data-key='node']")
    assert first_row(page) == "srv-2"  # ascending: srv-2 < ws-1
    page.click("#nodes-head span[data-key='node']")
    assert first_row(page) == "ws-1"
    screenshot(page, "coordinator")
    # One connection for the whole cluster, not one per node, and its frames are the nodes'
    # headlines (`?view=headline`, a few hundred bytes a node), not their full elements.
    assert page.evaluate("window.dashboardStats.sockets") == 1
    headlines = coordinator.get("/api/system/metrics?view=headline")
    assert {h["node_id"] for h in headlines} == set(elements)
    frame_bytes = page.evaluate("window.dashboardStats.lastFrameBytes")
    assert 0 < frame_bytes < 1024 * len(headlines), frame_bytes

    # Click through to one node's view, served through the coordinator.
    page.click("#node-ws-1")
    page.wait_for_url("**/?node=ws-1", timeout=WAIT_MS)
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    assert page.text_content("#node-id") == "ws-1"
    assert page.text_content("#node-status") == "online"
    assert raw(page, "#tile-memory .value") == pytest.approx(elements["ws-1"]["memory"]["usage"])
    before = points(page, "cpu")
    wait_for_more_points(page, "cpu", before)
    screenshot(page, "coordinator-node")
    page.go_back()
    page.wait_for_selector("#node-srv-2", timeout=WAIT_MS)

    # A stopped agent goes offline (after --offline-after), and the page says so.
    cluster["srv-2"].stop()
    page.wait_for_function(
        "() => document.querySelector('#node-srv-2 .c-status')?.textContent === 'offline'", timeout=WAIT_MS)
    assert "offline" in page.get_attribute("#node-srv-2 .c-status", "class")
    assert page.text_content("#node-ws-1 .c-status") == "online"
    page.wait_for_function(
        "() => document.querySelector('#tile-nodes .sub').textContent.includes('1 offline')", timeout=WAIT_MS)
    screenshot(page, "coordinator-offline")
    assert console.errors == []


def first_row(page) -> str:
    return page.evaluate(
        """() => [...document.querySelectorAll('#nodes-body .nrow:not([hidden])')]
              .sort((a, b) => new DOMMatrix(getComputedStyle(a).transform).m42
                            - new DOMMatrix(getComputedStyle(b).transform).m42)[0].dataset.node""")


def fmt_bytes(value: float) -> str:
    """The page's byte format (binary units, one decimal)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while abs(value) >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.{0 if i == 0 else 1}f} {units[i]}"


def history_answer(route, node_id, step_ms=10_000, points=60):
    """Answers a history request in the documented shape (`{node_id, from, to, step_ms,
    timestamps, series}`, one series per field asked), with `points` points up to now."""
    query = parse_qs(urlparse(route.request.url).query)
    fields = query["fields"][0].split(",")
    to = int(query["to"][0])
    timestamps = [to - (points - i) * step_ms for i in range(points)]
    series = {field: [float(i % 50) if i % 7 else None for i in range(points)] for field in fields}
    body = [{"node_id": node_id, "from": int(query["from"][0]), "to": to, "step_ms": step_ms,
             "timestamps": timestamps, "series": series}]
    route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
    return fields


def test_the_charts_are_back_filled_from_history(cluster, browser):
    """History as documented (served here by the browser, as the endpoints are not on every
    server yet): the charts start with its points, and the range switch asks for its window."""
    agent = cluster["ws-1"]
    page, console = new_page(browser, "history")
    asked = []
    page.route("**/api/system/history?*", lambda route: asked.append(history_answer(route, "ws-1")))
    page.goto(agent.base + "/")
    enter_token(page, console)
    page.wait_for_function("() => Number(document.querySelector('#chart-cpu')?.dataset.points) >= 60",
                           timeout=WAIT_MS)
    assert page.is_hidden("#history-note")
    fields = asked[0]
    assert "cpu.overall" in fields and "memory.usage" in fields and "network.bytesIn" in fields
    assert "accelerators.0.utilization" in fields and "accelerators.0.power" in fields
    assert "cpu.cores.0.usage" in fields
    with page.expect_request("**/api/system/history?*", timeout=WAIT_MS) as request:
        page.click("#ranges button[data-range='24h']")
    window = parse_qs(urlparse(request.value.url).query)
    assert int(window["to"][0]) - int(window["from"][0]) == 24 * 3600 * 1000
    page.wait_for_function("() => Number(document.querySelector('#chart-memory').dataset.points) >= 60",
                           timeout=WAIT_MS)
    assert console.errors == []

    coordinator = cluster["coordinator"]
    page, console = new_page(browser, "cluster-history")
    cluster_asked = []
    page.route("**/api/cluster/history?*", lambda route: cluster_asked.append(history_answer(route, "cluster")))
    page.goto(coordinator.base + "/")
    enter_token(page, console)
    page.wait_for_function(
        "() => Number(document.querySelector('#chart-cluster-cpu')?.dataset.points) >= 60", timeout=WAIT_MS)
    assert set(cluster_asked[0]) >= {"usedResources.cpu", "totalResources.memory", "agents.offline"}
    assert page.is_hidden("#history-note")
    assert console.errors == []
