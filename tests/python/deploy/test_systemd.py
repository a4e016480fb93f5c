"""deploy/systemd/: the agent and coordinator units, checked by systemd's own `systemd-analyze
verify` (which loads the unit as systemd would, with no systemd running: this container has none
as PID 1) and `systemd-analyze security --offline` (the sandbox's exposure score, held under a
threshold). test_start.py runs their ExecStart lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .kit import REPO, tool

UNITS = REPO / "deploy" / "systemd"
# systemd-analyze's exposure scale is 0-10 ("OK" up to 3.9); --threshold takes tenths.
THRESHOLDS = {"system-monitor.service": 2.5, "system-monitor-coordinator.service": 2.0}


def local_copy(unit: Path, directory: Path) -> Path:
    """The unit with ExecStart's binary where it exists here (verify checks that it does)."""
    copy = directory / unit.name
    copy.write_text(unit.read_text().replace("/usr/local/bin/system_monitor", str(Path("/bin/true"))))
    return copy


def analyze(*args) -> subprocess.CompletedProcess:
    return subprocess.run([tool("systemd-analyze"), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name", THRESHOLDS)
def test_unit_passes_systemd_analyze_verify(name, tmp_path):
    out = analyze("verify", local_copy(UNITS / name, tmp_path))
    # verify exits 0 on unknown keys and bad values, only printing them: any output is a finding.
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), \
        out.stdout + out.stderr


def test_verify_findings_are_noticed(tmp_path):
    unit = tmp_path / "broken.service"
    unit.write_text((UNITS / "system-monitor.service").read_text()
                    .replace("/usr/local/bin/system_monitor", "/bin/true")
                    .replace("ProtectSystem=strict", "ProtectSystem=strict\nProtectSystm=full"))
    out = analyze("verify", unit)
    assert "Unknown key" in out.stderr and "ProtectSystm" in out.stderr


@pytest.mark.parametrize("name", THRESHOLDS)
def test_unit_sandbox_scores_under_its_threshold(name, tmp_path):
    unit = local_copy(UNITS / name, tmp_path)
    threshold = int(THRESHOLDS[name] * 10)
    out = analyze("security", "--offline=yes", f"--threshold={threshold}", "--no-pager", unit)
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_unsandboxed_unit_fails_the_threshold(tmp_path):
    unit = tmp_path / "plain.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    out = analyze("security", "--offline=yes", "--threshold=25", "--no-pager", unit)
    assert out.returncode != 0


@pytest.mark.parametrize("name", THRESHOLDS)
def test_unit_has_the_sandbox_the_issue_asks_for(name):
    settings = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    for key, value in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("ReadOnlyPaths", "/"),
                       ("CapabilityBoundingSet", ""), ("PrivateTmp", "yes")):
        assert settings.get(key) == [value], key
    assert settings["LoadCredential"] == ["auth-token:/etc/system-monitor/auth-token",
                                          "cluster-token:/etc/system-monitor/cluster-token"]
