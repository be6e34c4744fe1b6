"""Fixtures of the snmp driver tests: snmpsim serving every recording, one per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd_snmp.tests.snmpsim_agent import RECORDINGS, SnmpsimAgent


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimAgent]:
    agent = SnmpsimAgent(tmp_path_factory.mktemp("snmpsim"))
    agent.start(sorted(RECORDINGS.glob("*.snmprec")))
    try:
        agent.wait_ready("sentry3")
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def recordings_dir() -> Path:
    return RECORDINGS
