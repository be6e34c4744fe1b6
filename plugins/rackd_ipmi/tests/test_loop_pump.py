"""The driver keeps pyghmi's loop turning: an idle session gets keepalives and outlives the BMC's idle expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pyghmi.ipmi.private.session as ipmi_session
import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext
from rackd.model import PowerState

OptionsFactory = Callable[..., IpmiOptions]
BMC_IDLE_EXPIRY = 3.0  # seconds; real BMCs use 30-60 s (OpenIPMI's ipmi_sim: 30 s)
KEEPALIVE_EVERY = 1.0  # seconds of idleness before pyghmi sends a keepalive (pyghmi: 24-29 s), scaled alike


async def test_an_idle_session_is_kept_alive_between_polls(
    driver: IpmiDriver,
    start_sim: Callable[..., BmcProcess],
    context: SessionContext,
    options: OptionsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ipmi_session, "MAX_IDLE", KEEPALIVE_EVERY)
    sim = start_sim("--session-timeout", str(BMC_IDLE_EXPIRY))
    session = await driver.open(context, options(sim))
    try:
        assert await session.get_power("chassis") is PowerState.ON
        # The stimulus is idleness itself: no call for longer than the BMC keeps an idle session.
        await asyncio.sleep(2 * BMC_IDLE_EXPIRY)
        status = sim.status()
        assert status["established_sessions"] == 1  # the BMC still knows the session: keepalives reached it
        assert await session.get_power("chassis") is PowerState.ON
        assert sim.status()["logins"] == 1  # and the poll used it, without logging in again
    finally:
        await session.close()
