"""Fixtures: a running PDU simulator per test (its event loop is the test's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.model import Timing
from rackd_sim.pdu.simulator import PduSimulator

StartSim = Callable[..., PduSimulator]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    started: list[PduSimulator] = []

    def start(*specs: PduSpec) -> PduSimulator:
        simulator = PduSimulator(list(specs) or [PduSpec(vendor="apc_rpdu2", outlets=4, timing=Timing())])
        simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()
