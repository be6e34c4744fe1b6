"""Fixtures: the ipmi driver against simulated BMCs running in their own processes (real UDP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext

FAST_TIMINGS = (
    "--power-on-delay", "0.2", "--power-off-delay", "0.1", "--boot-delay", "0.3",
    "--shutdown-delay", "0.2", "--cycle-off-time", "0.1",
)

OptionsFactory = Callable[..., IpmiOptions]


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., BmcProcess]]:
    started: list[BmcProcess] = []

    def start(*args: str) -> BmcProcess:
        bmc = BmcProcess(*FAST_TIMINGS, *args, log_path=tmp_path / f"bmc{len(started)}.log")
        started.append(bmc)
        bmc.start()
        return bmc

    yield start
    for bmc in started:
        bmc.stop()


@pytest.fixture
def sim(start_sim: Callable[..., BmcProcess]) -> BmcProcess:
    return start_sim()


@pytest.fixture
async def driver() -> AsyncIterator[IpmiDriver]:
    ipmi = IpmiDriver()
    yield ipmi
    await ipmi.aclose()


@pytest.fixture
def context(tmp_path: Path) -> SessionContext:
    state = tmp_path / "state"
    state.mkdir()
    return SessionContext(device_id="gpu-01", role="bmc", state_dir=state)


def options_for(bmc: BmcProcess, **overrides: Any) -> IpmiOptions:
    ep = bmc.endpoint
    assert ep is not None
    table: dict[str, Any] = {"host": ep.host, "port": ep.port, "username": ep.username, "password": ep.password}
    table.update(overrides)
    return IpmiOptions.model_validate(table)


@pytest.fixture
def options() -> OptionsFactory:
    return options_for
