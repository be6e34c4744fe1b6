"""Fixtures of the console tests: the console-server simulator in-process, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from rackd_sim.console_server.server import ConsoleServerSim


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ConsoleServerSim]:
    """One console, unpaced, booted instantly (tests that need line rate build their own)."""
    server = ConsoleServerSim(["node1"], baud=0, boot_speed=0)
    await server.start()
    yield server
    await server.close()
