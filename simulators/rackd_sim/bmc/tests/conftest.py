"""Fixtures: simulated BMCs in their own processes, with short power timings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rackd_sim.bmc.process import BmcProcess

FAST_TIMINGS = (
    "--power-on-delay", "0.2", "--power-off-delay", "0.1", "--boot-delay", "0.3",
    "--shutdown-delay", "0.2", "--cycle-off-time", "0.1",
)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[BmcProcess]:
    bmc = BmcProcess(*FAST_TIMINGS, log_path=tmp_path / "bmc.log")
    bmc.start()
    try:
        yield bmc
    finally:
        bmc.stop()


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BmcProcess]:
    """One BMC for tests that only read."""
    bmc = BmcProcess(*FAST_TIMINGS, log_path=tmp_path_factory.mktemp("bmc") / "bmc.log")
    bmc.start()
    try:
        yield bmc
    finally:
        bmc.stop()
