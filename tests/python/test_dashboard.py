"""The dashboard (``GET /``) in a real browser: headless Chromium (Debian's ``chromium``, driven
by Playwright) loads the agent's view and the coordinator's against running binaries — two
agents on fixture host trees (one with AMD GPUs and an NPU) and a coordinator polling them, all
with a read token, and a few hundred simulated agents (``examples/coordinator_sim``) behind a
coordinator of their own — and checks that

- the page asks for the token once and keeps it for the tab (a reload does not ask again),
- the numbers shown are the API's (``data-raw`` holds the number a tile or a cell shows, and
  its text is that number formatted as the page formats it): identity, tiles, cores, tables,
  accelerators, the node list's figures, status and data age,
- the charts grow with live samples and start from the servers' own history (the agents',
  proxied through the coordinator for one node, and the cluster's), and each range button asks
  for its window and redraws, an answer that comes back late never replacing a newer range's,
- the coordinator's node list filters (text and status), sorts, draws only the rows in view
  however many nodes there are, and clicks through to one node's view,
- a node whose polls fail shows as degraded, and a stopped agent as offline,
- the theme follows the system's colour scheme (dark or light),
- nothing is logged to the console as an error (aside from the 401s before the token is typed
  in, which are how the page learns it needs one).

Screenshots go to ``target/test-artifacts/`` (``DASHBOARD_ARTIFACTS`` to put them elsewhere);
``dashboard-agent.png`` and ``dashboard-coordinator.png`` are the README's (docs/img/).
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import REPO, binary, read_portfile

TOKEN = "dashboard-browser-token"
ARTIFACTS = Path(os.environ.get("DASHBOARD_ARTIFACTS", REPO / "target" / "test-artifacts"))
START_SECONDS = 20
WAIT_MS = 20_000
# The range buttons and the window each asks for, in ms.
RANGES = {"15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000}
# Points a server's history holds before a history test opens the page.
HISTORY_POINTS = 6
# Simulated agents behind one coordinator: far more rows than a screen holds.
SIM_NODES = 240
ROW_PX = 30  # a node row's height (ROW in web/app.js)


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


def simulator() -> Path:
    """examples/coordinator_sim, built beside the binary (`cargo build --all-targets` builds it)."""
    path = binary().parent / "examples" / "coordinator_sim"
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run `cargo build --example coordinator_sim` first")
    return path


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


def token_args(workdir: Path) -> list:
    """`--auth-token-file` with TOKEN, written under `workdir`."""
    path = workdir / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return ["--auth-token-file", str(path)]


def wait_until(what: str, check, seconds=START_SECONDS):
    """Polls `check` (a server's answer, not the page) until it holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two agents (a GPU workstation and a server, both fixtures) and a coordinator polling them,
    every one with the same read token."""
    chromium()
    playwright_api()
    tmp = tmp_path_factory.mktemp("dashboard")
    auth = token_args(tmp)
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
        wait_until("the coordinator to poll both agents",
                   lambda: len(coordinator.get("/api/system/metrics")) == 2)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def simulated_element() -> dict:
    """The golden server element with figures that stand still and are neither zero nor alike
    (the capture's CPU and rates are all zero): each core, the network, each disk and
    interface its own."""
    element = json.loads((REPO / "tests" / "golden" / "server" / "metrics.json").read_text())[0]
    cpu = element["cpu"]
    for i, core in enumerate(cpu["cores"]):
        core["usage"] = 3.2 + 11.3 * i
    cpu["overall"] = 42.7
    element["network"].update(bytesIn=123_456_789.0, bytesOut=2_345_678.0, packetsIn=8_123.4,
                              packetsOut=912.6, connections=42)
    for i, disk in enumerate(element["disks"]):
        disk.update(ioRead=1_500_000.0 * (i + 1), ioWrite=700.0 * (i + 1), iops=12.34 * (i + 1),
                    utilization=6.1 * (i + 1))
    for i, nic in enumerate(element["interfaces"]):
        nic.update(bytesIn=2_000.0 ** (1 + i % 3), bytesOut=310.0 * (i + 1), packetsIn=4.2 * (i + 1),
                   packetsOut=0.7 * (i + 1))
    return element


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """SIM_NODES simulated agents (each with two H100s and the figures of simulated_element),
    and a coordinator polling them (no token): its base URL."""
    chromium()
    playwright_api()
    tmp = tmp_path_factory.mktemp("simulated")
    element = tmp / "element.json"
    element.write_text(json.dumps(simulated_element()))
    agents = tmp / "agents.txt"
    sim = subprocess.Popen(
        [str(simulator()), "--agents", str(SIM_NODES), "--agents-file", str(agents), "--element", str(element),
         "--gpus", "2", "--stats-interval", "0", "--threads", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    coordinator = None
    try:
        assert sim.stdout.readline().startswith("ready"), f"coordinator_sim exited with {sim.wait()}"
        coordinator = Server(tmp / "coordinator", ["coordinator", "--agents-file", str(agents),
                                                   "--poll-interval", "1s"])
        wait_until(f"the coordinator to poll {SIM_NODES} agents",
                   lambda: len(coordinator.get("/api/system/metrics?view=headline")) == SIM_NODES)
        yield coordinator
    finally:
        if coordinator:
            coordinator.stop()
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()


def sim_id(i: int) -> str:
    return f"sim-{i:05d}"


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
        if message.type == "error":
            self.errors.append(f"{message.text} ({(message.location or {}).get('url', '')})")


def new_page(browser):
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


def points(page, chart) -> int:
    return int(page.get_attribute(f"#chart-{chart}", "data-points"))


def wait_for_more_points(page, chart, than):
    page.wait_for_function(
        "([id, n]) => Number(document.querySelector(id).dataset.points) > n",
        arg=[f"#chart-{chart}", than], timeout=WAIT_MS)


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=False)


def texts(page, selector) -> list:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def table(page, section) -> list:
    """The body of the table in `section`: a list of rows, each a list of cell texts."""
    return page.eval_on_selector_all(
        f"{section} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


# -------------------------------------------------------------------------------------------------
# The page's formats (web/app.js), for what the API gives

def fixed(value, digits: int) -> str:
    """JavaScript's `toFixed`: the double's exact value rounded, a tie away from zero."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def fmt_pct(value) -> str:
    return "–" if value is None else f"{fixed(value, 1)} %"


def fmt_bytes(value) -> str:
    """Binary units, one decimal (none for bytes)."""
    if value is None:
        return "–"
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while abs(value) >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{fixed(value, 0 if i == 0 else 1)} {units[i]}"


def fmt_rate(value) -> str:
    return "–" if value is None else f"{fmt_bytes(value)}/s"


def fmt_num(value, digits=0, unit="") -> str:
    return "–" if value is None else f"{fixed(value, digits)}{unit}"


def fmt_age(seconds) -> str:
    for limit, divisor, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h")):
        if seconds < limit:
            return f"{fixed(seconds / divisor, 1)} {unit}"
    return f"{fixed(seconds / 86400, 1)} d"


# -------------------------------------------------------------------------------------------------
# History

def now_ms() -> int:
    return int(time.time() * 1000)


def history_points(server, path, field) -> int:
    """How many points `path` (a history endpoint) holds for `field` in the last 15 minutes."""
    to = now_ms()
    sep = "&" if "?" in path else "?"
    answer = server.get(f"{path}{sep}from={to - RANGES['15m']}&to={to}&fields={field}")[0]
    return sum(v is not None for v in answer["series"][field])


def wait_for_history(server, path, field):
    wait_until(f"{HISTORY_POINTS} points of {field} from {path}",
               lambda: history_points(server, path, field) >= HISTORY_POINTS)


def history_answered(path, status=200):
    """A predicate for page.expect_response: `path` (a history endpoint) answered `status`."""
    return lambda response: urlparse(response.url).path == path and response.status == status


def asked_window(url) -> dict:
    """The history question in a request URL: from and to (ints), step, fields (a list)."""
    query = parse_qs(urlparse(url).query)
    return {"from": int(query["from"][0]), "to": int(query["to"][0]), "step": query.get("step", [None])[0],
            "fields": query["fields"][0].split(",")}


def window_of(url) -> int:
    """The window (ms) a history request asks for."""
    asked = asked_window(url)
    return asked["to"] - asked["from"]


def wait_for_chart(page, chart, answer):
    """Waits until `chart` shows `answer` (a history answer): it starts at the answer's first
    point (or its second: a live point a step later moves the window past the first) and holds
    at least as many points, less that one."""
    ts = answer["timestamps"]
    assert ts, f"no points in the answer for {chart}"
    page.wait_for_function(
        """([id, first, second, n]) => {
             const d = document.querySelector(id).dataset;
             return Number(d.first) >= first && Number(d.first) <= second && Number(d.points) >= n - 1;
           }""",
        arg=[f"#chart-{chart}", ts[0], ts[min(1, len(ts) - 1)], len(ts)], timeout=WAIT_MS)


def switch_ranges(page, path, charts, fields):
    """Clicks each range button: each asks `path` for its window, up to now, for `fields` (among
    others), and `charts` redraw with the answer."""
    for name, window in RANGES.items():
        clicked = now_ms()
        with page.expect_response(history_answered(path), timeout=WAIT_MS) as response:
            page.click(f"#ranges button[data-range='{name}']")
        asked = asked_window(response.value.url)
        assert asked["to"] - asked["from"] == window, (name, asked)
        assert clicked - 1000 <= asked["to"] <= now_ms(), (name, asked)
        assert asked["step"] is None, "the server picks the step: at most 1,000 points a window"
        assert set(fields) <= set(asked["fields"]), asked["fields"]
        answer = response.value.json()[0]
        assert (answer["from"], answer["to"]) == (asked["from"], asked["to"])
        assert len(answer["timestamps"]) <= 1000, (name, answer["step_ms"])
        assert page.get_attribute(f"#ranges button[data-range='{name}']", "aria-pressed") == "true"
        for chart in charts:
            wait_for_chart(page, chart, answer)
        assert page.is_hidden("#history-note")


def check_history_at_load(page, response, opened, chart):
    """The first history answer (`response`) holds what the server kept before the page was
    opened (at `opened`, unix ms), and `chart` starts with it: more points than the live frames
    alone could have drawn."""
    answer = response.json()[0]
    timestamps = answer["timestamps"]
    assert len(timestamps) >= HISTORY_POINTS
    assert timestamps[0] < opened - 1000
    wait_for_chart(page, chart, answer)
    assert page.is_hidden("#history-note")
    first, drawn, frames = page.evaluate(
        """id => { const d = document.querySelector(id).dataset;
                   return [Number(d.first), Number(d.points), window.dashboardStats.frames]; }""",
        f"#chart-{chart}")
    assert first == timestamps[0] < opened
    # Live, the chart gets the first element and one point a frame at most.
    assert drawn > frames + 1, (drawn, frames)
    return answer


# -------------------------------------------------------------------------------------------------
# One node's figures

def check_identity(page, info, element):
    assert page.text_content("#node-id") == element["node_id"]
    assert page.text_content("#node-host") == info["hostname"]
    assert info["cpu_model"] in page.text_content("#node-cpu")
    assert info["os_version"] and info["kernel"]
    assert page.text_content("#node-os") == f"{info['os_version']} · {info['kernel']}"
    names = [a["name"] for a in info["accelerators"]]
    assert names == [a["name"] for a in element["accelerators"]]
    assert page.text_content("#node-accels") == ", ".join(names)


def check_figures(page, element, filesystems=True):
    """The tiles, cores, accelerators and tables show `element` (a node whose figures stand
    still); `filesystems`: and the filesystems' figures too (not only their mount points)."""
    cpu = element["cpu"]
    assert raw(page, "#tile-cpu .value") == pytest.approx(cpu["overall"])
    assert page.text_content("#tile-cpu .value") == fmt_pct(cpu["overall"])
    cores = [f"{i}: {fixed(core['usage'], 0)}%" for i, core in enumerate(cpu["cores"])]
    assert texts(page, "#cores .core span") == cores
    memory = element["memory"]
    assert raw(page, "#tile-memory .value") == pytest.approx(memory["usage"])
    assert page.text_content("#tile-memory .value") == fmt_pct(memory["usage"])
    assert page.text_content("#tile-memory .sub") == \
        f"{fmt_bytes(memory['used'])} of {fmt_bytes(memory['total'])}"
    assert raw(page, "#tile-swap .value") == pytest.approx(memory["swap"]["percentage"])
    net = element["network"]
    assert raw(page, "#tile-network .value") == pytest.approx(net["bytesIn"])
    assert page.text_content("#tile-network .value") == fmt_rate(net["bytesIn"])
    assert page.text_content("#tile-network .sub") == \
        f"in · out {fmt_rate(net['bytesOut'])} · {fmt_num(net['connections'])} conns"

    accelerators = element["accelerators"]
    assert accelerators
    for i, accelerator in enumerate(accelerators):
        tile = f"#tile-accel-{i}"
        assert raw(page, f"{tile} .value") == pytest.approx(accelerator["utilization"])
        assert page.text_content(f"{tile} .value") == fmt_pct(accelerator["utilization"])
        memory = accelerator.get("memory") or {}
        assert page.text_content(f"{tile} .sub") == (
            f"mem {fmt_bytes(memory.get('used'))} of {fmt_bytes(memory.get('total'))}"
            f" · {fmt_num(accelerator.get('temperature'), 0, ' °C')}"
            f" · {fmt_num(accelerator.get('power'), 0, ' W')}")
        assert page.is_visible(f"#chart-accel-{i}-use") and page.is_visible(f"#chart-accel-{i}-heat")

    assert table(page, "#disks") == [
        [d["device"], fmt_rate(d["ioRead"]), fmt_rate(d["ioWrite"]), fmt_num(d["iops"], 1),
         fmt_pct(d["utilization"])]
        for d in element["disks"]]
    assert table(page, "#interfaces") == [
        [n["name"], fmt_rate(n["bytesIn"]), fmt_rate(n["bytesOut"]), fmt_num(n["packetsIn"], 1),
         fmt_num(n["packetsOut"], 1)]
        for n in element["interfaces"]]
    shown = table(page, "#filesystems")
    assert [row[0] for row in shown] == [f["mountpoint"] for f in element["filesystems"]]
    if filesystems:
        assert shown == [
            [f["mountpoint"], f["device"], f["fstype"], fmt_bytes(f["used"]), fmt_bytes(f["size"]),
             fmt_pct(f["usage"]), f.get("state") or ""]
            for f in element["filesystems"]]


# -------------------------------------------------------------------------------------------------
# The coordinator's node list

def row_order(page) -> list:
    """The node ids of the rows drawn, top to bottom."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#nodes-body .nrow:not([hidden])')]
              .map(r => [new DOMMatrix(getComputedStyle(r).transform).m42, r.dataset.node])
              .sort((a, b) => a[0] - b[0]).map(r => r[1])""")


def wait_for_node_count(page, shown, total):
    page.wait_for_function("t => document.querySelector('#node-count')?.textContent === t",
                           arg=f"{shown} of {total} nodes", timeout=WAIT_MS)


def headlines(server) -> dict:
    return {h["node_id"]: h for h in server.get("/api/system/metrics?view=headline")}


# -------------------------------------------------------------------------------------------------
# Tests

def test_the_agent_view_shows_the_api_numbers_and_live_charts(cluster, browser):
    agent = cluster["ws-1"]
    page, console = new_page(browser)
    page.goto(agent.base + "/")
    enter_token(page, console)
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)

    info = agent.get("/api/system/info")
    element = agent.get("/api/system/metrics")[0]
    check_identity(page, info, element)
    # Fixture trees do not change, so the live sample shows the numbers the API gives now; but
    # disk usage is statvfs of the real file systems under the fixture's root: it moves a little.
    check_figures(page, element, filesystems=False)
    disk = raw(page, "#tile-disk .value")
    assert disk == pytest.approx(element["disk"]["usage"], abs=0.5)
    assert page.text_content("#tile-disk .value") == fmt_pct(disk)
    assert page.locator("#cores .core").count() == len(element["cpu"]["cores"]) == 8

    # Live: the charts grow with every sample.
    for chart in ("cpu", "memory", "network", "accel-0-use"):
        before = points(page, chart)
        wait_for_more_points(page, chart, before)
    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as response:
        page.click("#ranges button[data-range='1h']")
    assert page.get_attribute("#ranges button[data-range='1h']", "aria-pressed") == "true"
    for chart in ("cpu", "memory", "accel-0-heat"):
        wait_for_chart(page, chart, response.value.json()[0])
    screenshot(page, "agent")

    # The token is kept for the tab: a reload does not ask again.
    page.reload()
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    assert not page.is_visible("#token-dialog")
    assert page.get_attribute("#ranges button[data-range='1h']", "aria-pressed") == "true"
    assert console.errors == []


def test_the_agent_charts_start_from_the_agents_history(cluster, browser):
    """The agent's own /api/system/history (on by default): the charts start with the samples
    it kept before the page was opened, and each range button asks for its window and redraws."""
    agent = cluster["ws-1"]
    wait_for_history(agent, "/api/system/history", "cpu.overall")
    page, console = new_page(browser)
    opened = now_ms()
    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as response:
        page.goto(agent.base + "/")
        enter_token(page, console)
    fields = ["cpu.overall", "cpu.cores.7.usage", "memory.usage", "memory.swap.percentage", "disk.ioRead",
              "network.bytesIn", "accelerators.0.utilization", "accelerators.0.memory.percentage",
              "accelerators.2.temperature", "accelerators.2.power"]
    assert set(fields) <= set(asked_window(response.value.url)["fields"])
    answer = check_history_at_load(page, response.value, opened, "cpu")
    # Every chart is filled from the same answer, the accelerators' too, with the API's values.
    for chart in ("memory", "disk", "network", "accel-0-use", "accel-2-heat"):
        wait_for_chart(page, chart, answer)
    element = agent.get("/api/system/metrics")[0]
    assert answer["series"]["memory.usage"][-1] == pytest.approx(element["memory"]["usage"])
    assert answer["series"]["accelerators.0.power"][-1] == element["accelerators"][0]["power"]

    switch_ranges(page, "/api/system/history", ["cpu", "memory", "accel-0-heat"], fields)
    assert console.errors == []


def test_a_late_history_answer_does_not_replace_a_newer_range(cluster, browser):
    """7d, then 15m before the week has come back: the week's answer, held until the quarter
    hour's is drawn, must not replace it (answers come back in any order)."""
    agent = cluster["ws-1"]
    page, console = new_page(browser)
    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as response:
        page.goto(agent.base + "/")
        enter_token(page, console)
    wait_for_chart(page, "cpu", response.value.json()[0])

    held = []

    def hold_the_week(route):
        if window_of(route.request.url) == RANGES["7d"]:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/system/history?*", hold_the_week)
    answered = page.evaluate("window.dashboardStats.historyAnswers")
    page.click("#ranges button[data-range='7d']")
    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as quarter:
        page.click("#ranges button[data-range='15m']")
    assert window_of(quarter.value.url) == RANGES["15m"]
    answer = quarter.value.json()[0]
    wait_for_chart(page, "cpu", answer)
    assert len(held) == 1

    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as week:
        held[0].continue_()
    assert window_of(week.value.url) == RANGES["7d"]
    page.wait_for_function("n => window.dashboardStats.historyAnswers >= n", arg=answered + 2, timeout=WAIT_MS)
    first = int(page.get_attribute("#chart-cpu", "data-first"))
    assert first == answer["timestamps"][0], "the week's late answer replaced the quarter hour's"
    assert page.get_attribute("#ranges button[data-range='15m']", "aria-pressed") == "true"
    assert console.errors == []


def test_the_cluster_charts_start_from_the_coordinators_history(cluster, browser):
    """The cluster totals' history (/api/cluster/history, kept after every poll round): the
    charts start with it, and each range button asks for its window and redraws."""
    coordinator = cluster["coordinator"]
    wait_for_history(coordinator, "/api/cluster/history", "agents.online")
    page, console = new_page(browser)
    opened = now_ms()
    with page.expect_response(history_answered("/api/cluster/history"), timeout=WAIT_MS) as response:
        page.goto(coordinator.base + "/")
        enter_token(page, console)
    fields = ["usedResources.cpu", "totalResources.memory", "agents.online", "agents.offline"]
    assert set(fields) <= set(asked_window(response.value.url)["fields"])
    answer = check_history_at_load(page, response.value, opened, "cluster-nodes")
    for chart in ("cluster-cpu", "cluster-memory"):
        wait_for_chart(page, chart, answer)
    info = coordinator.get("/api/cluster/info")
    assert answer["series"]["agents.online"][-1] == 2
    assert answer["series"]["totalResources.memory"][-1] == info["totalResources"]["memory"]

    switch_ranges(page, "/api/cluster/history", ["cluster-cpu", "cluster-nodes"], fields)
    assert console.errors == []


def test_the_theme_follows_the_colour_scheme(cluster, browser):
    """Dark backgrounds and light text when the system asks for dark, the opposite for light,
    with a contrast a laptop screen reads well (WCAG's 7:1)."""
    page, console = new_page(browser)
    page.goto(cluster["ws-1"].base + "/")
    enter_token(page, console)
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    for scheme in ("dark", "light", "dark"):
        page.emulate_media(color_scheme=scheme)
        colours = page.evaluate(
            """() => Object.fromEntries(['body', '#top', '#tile-memory', '#tile-memory .value', '#chart-cpu h3']
                 .map(s => { const style = getComputedStyle(document.querySelector(s));
                             return [s, [style.backgroundColor, style.color]]; }))""")
        for selector in ("body", "#top", "#tile-memory"):
            background, text = (luminance(c) for c in colours[selector])
            if scheme == "dark":
                assert background < 0.05 and text > 0.5, (scheme, selector, colours[selector])
            else:
                assert background > 0.8 and text < 0.05, (scheme, selector, colours[selector])
            assert contrast(background, text) >= 7, (scheme, selector, colours[selector])
        for selector in ("#tile-memory .value", "#chart-cpu h3"):
            assert contrast(luminance(colours["#tile-memory"][0]), luminance(colours[selector][1])) >= 7
    assert console.errors == []


def luminance(css_colour: str) -> float:
    """WCAG's relative luminance of an `rgb(r, g, b)` (or opaque `rgba`) computed colour."""
    parts = [float(p) for p in css_colour[css_colour.index("(") + 1:-1].split(",")]
    assert len(parts) == 3 or parts[3] == 1, f"{css_colour} is not opaque"

    def linear(channel):
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in parts[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: float, b: float) -> float:
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def test_a_node_whose_polls_fail_is_degraded_and_the_status_filter_finds_it(cluster, browser, tmp_path):
    """An agent that stops answering keeps its last data until --offline-after (10 min here):
    degraded meanwhile, its data age growing, and the status filter shows it alone."""
    auth = token_args(tmp_path)
    flaky = Server(tmp_path / "flaky-3",
                   [*fixture_args("server"), "--node-id", "flaky-3", "--interval", "500ms", *auth])
    coordinator = None
    try:
        coordinator = Server(tmp_path / "coordinator", [
            "coordinator", "--agents", f"{cluster['ws-1'].base},{flaky.base}", "--poll-interval", "300ms",
            "--offline-after", "10m", *auth])
        wait_until("both nodes online", lambda: [h["status"] for h in headlines(coordinator).values()]
                   == ["online", "online"])
        page, console = new_page(browser)
        page.goto(coordinator.base + "/")
        enter_token(page, console)
        wait_for_node_count(page, 2, 2)

        flaky.stop()
        page.wait_for_function(
            "() => document.querySelector('#node-flaky-3 .c-status')?.textContent === 'degraded'",
            timeout=WAIT_MS)
        assert "degraded" in page.get_attribute("#node-flaky-3 .c-status", "class").split()
        assert page.text_content("#node-ws-1 .c-status") == "online"
        nodes = headlines(coordinator)
        assert (nodes["flaky-3"]["status"], nodes["ws-1"]["status"]) == ("degraded", "online")
        page.wait_for_function(
            "t => document.querySelector('#tile-nodes .sub').textContent === t",
            arg="1 online · 1 degraded · 0 offline", timeout=WAIT_MS)

        # The data age: the degraded node's grows from its last good answer; the online one's is
        # a poll round and a sample interval at most (0.8 s), well below 2 s on a busy machine.
        page.wait_for_function(
            "() => Number(document.querySelector('#node-flaky-3 .c-age').dataset.raw) >= 2.5", timeout=WAIT_MS)
        ages = page.evaluate(
            """() => Object.fromEntries(['flaky-3', 'ws-1'].map(n => {
                 const cell = document.querySelector(`#node-${n} .c-age`);
                 return [n, [Number(cell.dataset.raw), cell.textContent]]; }))""")
        for node, (age, text) in ages.items():
            assert text == fmt_age(age), (node, age, text)
        assert ages["ws-1"][0] < 2
        nodes = headlines(coordinator)
        assert nodes["flaky-3"]["dataAgeSeconds"] >= ages["flaky-3"][0]
        assert nodes["ws-1"]["dataAgeSeconds"] < 2

        # Sorted by a number: the data age, young to old, then old to young.
        for direction, order in (("ascending", ["ws-1", "flaky-3"]), ("descending", ["flaky-3", "ws-1"])):
            page.click("#nodes-head span[data-key='age']")
            assert page.get_attribute("#nodes-head span[data-key='age']", "aria-sort") == direction
            assert row_order(page) == order

        for status, shown in (("degraded", ["flaky-3"]), ("online", ["ws-1"]), ("offline", []),
                              ("", ["flaky-3", "ws-1"])):
            page.select_option("#status-filter", status)
            wait_for_node_count(page, len(shown), 2)
            assert sorted(row_order(page)) == shown, status
        screenshot(page, "coordinator-degraded")
        assert console.errors == []
    finally:
        if coordinator:
            coordinator.stop()
        flaky.stop()


def test_the_coordinator_view_lists_every_node_and_shows_offline_ones(cluster, browser):
    coordinator = cluster["coordinator"]
    page, console = new_page(browser)
    with page.expect_response(history_answered("/api/cluster/history"), timeout=WAIT_MS) as cluster_history:
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
        assert page.text_content(f"{row} .c-memory") == \
            f"{fmt_pct(element['memory']['usage'])} of {fmt_bytes(element['memory']['total'])}"
        age = raw(page, f"{row} .c-age")
        assert 0 <= age < 2 and page.text_content(f"{row} .c-age") == fmt_age(age)
    accelerators = len(elements["ws-1"]["accelerators"])
    assert page.text_content("#node-ws-1 .c-accels").startswith(f"{accelerators}×")

    info = coordinator.get("/api/cluster/info")
    assert raw(page, "#tile-nodes .value") == 2
    page.wait_for_function(
        "n => Number(document.querySelector('#tile-memory .value').dataset.raw) > 0", arg=0, timeout=WAIT_MS)
    total = info["totalResources"]
    assert f"of {fmt_bytes(total['memory'])}" == page.text_content("#tile-memory .sub")
    wait_for_chart(page, "cluster-nodes", cluster_history.value.json()[0])
    before = points(page, "cluster-nodes")
    wait_for_more_points(page, "cluster-nodes", before)

    # Filter and sort.
    page.fill("#filter", "srv")
    wait_for_node_count(page, 1, 2)
    assert not page.is_visible("#node-ws-1")
    # By accelerator name too (the headline lists each node's distinct names).
    page.fill("#filter", elements["ws-1"]["accelerators"][0]["name"])
    wait_for_node_count(page, 1, 2)
    assert page.is_visible("#node-ws-1") and not page.is_visible("#node-srv-2")
    page.fill("#filter", "")
    wait_for_node_count(page, 2, 2)
    page.click("#nodes-head span[data-key='node']")
    assert row_order(page) == ["srv-2", "ws-1"]
    page.click("#nodes-head span[data-key='node']")
    assert row_order(page) == ["ws-1", "srv-2"]
    screenshot(page, "coordinator")
    # One connection for the whole cluster, not one per node, and its frames are the nodes'
    # headlines (`?view=headline`, a few hundred bytes a node), not their full elements.
    assert page.evaluate("window.dashboardStats.sockets") == 1
    assert set(headlines(coordinator)) == set(elements)
    frame_bytes = page.evaluate("window.dashboardStats.lastFrameBytes")
    assert 0 < frame_bytes < 1024 * len(elements), frame_bytes

    # Click through to one node's view, served through the coordinator, its history the
    # agent's (asked of it by the coordinator).
    opened = now_ms()
    with page.expect_response(history_answered("/api/system/history"), timeout=WAIT_MS) as response:
        page.click("#node-ws-1")
    assert window_of(response.value.url) == RANGES["15m"]
    page.wait_for_url("**/?node=ws-1", timeout=WAIT_MS)
    assert parse_qs(urlparse(response.value.url).query)["node_id"] == ["ws-1"]
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    assert page.text_content("#node-id") == "ws-1"
    assert page.text_content("#node-status") == "online"
    assert raw(page, "#tile-memory .value") == pytest.approx(elements["ws-1"]["memory"]["usage"])
    check_history_at_load(page, response.value, opened, "cpu")
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


def test_the_node_list_draws_only_the_rows_in_view(simulated, browser):
    """SIM_NODES nodes: the list holds about a screenful of row elements, and scrolling to the
    end draws the last node in view, with no more elements than before."""
    page, console = new_page(browser)
    page.goto(simulated.base + "/")
    wait_for_node_count(page, SIM_NODES, SIM_NODES)
    page.wait_for_selector(f"#node-{sim_id(0)}", timeout=WAIT_MS)
    rows = "#nodes-body .nrow"
    in_view = page.evaluate("px => Math.ceil(document.querySelector('#nodes-body').clientHeight / px)", ROW_PX)
    drawn = page.locator(rows).count()
    assert in_view <= drawn <= in_view + 12, (in_view, drawn)
    assert drawn < SIM_NODES / 5
    assert page.locator(f"#node-{sim_id(SIM_NODES - 1)}").count() == 0

    page.evaluate("() => { const b = document.querySelector('#nodes-body'); b.scrollTop = b.scrollHeight; }")
    last = f"#node-{sim_id(SIM_NODES - 1)}"
    page.wait_for_selector(last, timeout=WAIT_MS)
    body_box = page.locator("#nodes-body").bounding_box()
    row_box = page.locator(last).bounding_box()
    assert body_box["y"] <= row_box["y"]
    assert row_box["y"] + row_box["height"] <= body_box["y"] + body_box["height"] + 1
    assert row_order(page)[-1] == sim_id(SIM_NODES - 1)
    assert page.locator(f"#node-{sim_id(0)}").count() == 0
    assert page.locator(rows).count() == drawn
    # Live frames keep coming for every node; still no more rows.
    frames = page.evaluate("window.dashboardStats.frames")
    page.wait_for_function("n => window.dashboardStats.frames > n", arg=frames, timeout=WAIT_MS)
    assert page.locator(rows).count() == drawn
    assert page.evaluate("window.dashboardStats.sockets") == 1
    screenshot(page, "coordinator-many")
    assert console.errors == []


def test_a_simulated_nodes_view_shows_each_figure_of_the_api(simulated, browser):
    """A node whose figures stand still and are neither zero nor alike (per core, network,
    disks, interfaces, two GPUs' memory, temperature and power): the page shows the API's."""
    node = sim_id(7)
    page, console = new_page(browser)
    # The simulator keeps no history (it answers 404): the coordinator says the node did not
    # answer, and the page says so, briefly, and fills its charts from live data.
    with page.expect_response(history_answered("/api/system/history", 502), timeout=WAIT_MS):
        page.goto(f"{simulated.base}/?node={node}")
    page.wait_for_selector("#tile-memory .value[data-raw]:not([data-raw=''])", timeout=WAIT_MS)
    element = simulated.get(f"/api/system/metrics?node_id={node}")[0]
    assert element["node_id"] == node and len(element["accelerators"]) == 2
    check_figures(page, element)
    page.wait_for_selector("#history-note:not([hidden])", timeout=WAIT_MS)
    assert page.text_content("#history-note") == \
        "History unavailable (502 the node did not answer): the charts fill from live data."
    before = points(page, "cpu")
    wait_for_more_points(page, "cpu", before)
    screenshot(page, "coordinator-simulated-node")
    assert [e for e in console.errors if not ("status of 502" in e and "/api/system/history?" in e)] == []
