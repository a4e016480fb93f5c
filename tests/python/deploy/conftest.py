"""Fixtures of the deployment tests; the helpers are in kit.py. Tests that run `system_monitor`
are marked `binary`; scripts/test.sh deselects them when the build failed."""

import pytest

from .kit import Running


def pytest_configure(config):
    config.addinivalue_line("markers", "binary: runs target/debug/system_monitor")


@pytest.fixture
def processes():
    """Monitors a test starts, stopped at its end."""
    started: list[Running] = []
    yield started
    for p in started:
        p.stop()
