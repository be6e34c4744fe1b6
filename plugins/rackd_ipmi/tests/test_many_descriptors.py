"""pyghmi's I/O thread keeps working when its sockets are numbered above 1024 (FD_SETSIZE)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator

import pyghmi.ipmi.private.session as pyghmi_session
import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext
from rackd.model import PowerState

OptionsFactory = Callable[..., IpmiOptions]
FD_SETSIZE = 1024


@pytest.fixture
def descriptors_above_1024() -> Iterator[None]:
    """Hold 1,100 descriptors (as 500 console connections and their log files do) so new sockets land above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low to open more than {FD_SETSIZE}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096) if hard == resource.RLIM_INFINITY else
                                                min(max(soft, 4096), hard), hard))  # fmt: skip
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_session_on_a_socket_above_fd_setsize_is_served(
    descriptors_above_1024: None,
    driver: IpmiDriver,
    sim: BmcProcess,
    context: SessionContext,
    options: OptionsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pyghmi shares a socket among 64 BMCs; with none allowed per existing socket, this session gets a new one.
    # (Not 0: pyghmi decrements a socket's count twice per logout, so after many sessions counts go negative.)
    monkeypatch.setattr(pyghmi_session, "MAX_BMCS_PER_SOCKET", -(10**9))
    session = await driver.open(context, options(sim))
    try:
        sockets = [s.fileno() for s in pyghmi_session.iosockets]
        assert max(sockets) > FD_SETSIZE  # the case under test: select() would refuse this descriptor
        assert await session.get_power("chassis") is PowerState.ON
        assert any(r.sensor == "system_power" for r in await session.read_sensors())
        assert pyghmi_session.iothread is not None
        assert pyghmi_session.iothread.is_alive()
    finally:
        await session.close()
