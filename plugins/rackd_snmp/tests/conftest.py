"""Fixtures of the snmp driver tests: snmpsim serving the recordings, rackd's PDU simulator, a driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.simulator import PduSimulator

from rackd.drivers.contract import SessionContext
from rackd_snmp.driver import SnmpDriver
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


@pytest.fixture
async def simulated() -> AsyncIterator[Callable[..., PduSimulator]]:
    """Start simulated PDUs (rackd's own simulator) in the test's event loop; all stopped afterwards."""
    started: list[PduSimulator] = []

    def start(*specs: PduSpec) -> PduSimulator:
        simulator = PduSimulator(list(specs))
        simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
async def driver() -> AsyncIterator[SnmpDriver]:
    snmp_driver = SnmpDriver()
    yield snmp_driver
    await snmp_driver.aclose()


@pytest.fixture
def context(tmp_path: Path) -> SessionContext:
    return SessionContext(device_id="pdu1", role="pdu", state_dir=tmp_path)
