"""SOL console through the driver against the simulated BMC: output, input, break, takeover, close."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import ConsoleStream, ConsoleTransport, SessionContext

OptionsFactory = Callable[..., IpmiOptions]


async def read_until(stream: ConsoleStream, marker: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while marker not in data:
            chunk = await stream.read()
            if not chunk:
                break
            data += chunk
    return data


async def test_sol_console_both_ways(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        assert isinstance(session, ConsoleTransport)
        stream = await session.open_console()
        try:
            assert sim.control("console")["sol_active"]
            sim.control("console", text="BOOT-BANNER-XYZ\r\n")
            assert b"BOOT-BANNER-XYZ" in await read_until(stream, b"BOOT-BANNER-XYZ")
            await stream.write(b"root\r")
            assert b"root" in await read_until(stream, b"root")  # the simulated terminal echoes
            assert "root\r" in sim.control("console")["typed"]
            await stream.send_break()
            # sensors still work while the console shares the BMC session
            assert len(await session.read_sensors()) > 20
        finally:
            await stream.close()
        assert await stream.read() == b""
        await asyncio.to_thread(sim.wait_for, lambda s: not s["sol_active"])  # payload deactivated
    finally:
        await session.close()


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("ipmitool") is None, reason="ipmitool is not installed")
async def test_sol_takes_over_a_stale_payload(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    ep = sim.endpoint
    assert ep is not None
    stale = await asyncio.create_subprocess_exec(
        "ipmitool", "-I", "lanplus", "-H", ep.host, "-p", str(ep.port), "-U", ep.username, "-P", ep.password,
        "sol", "activate", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    session = await driver.open(context, options(sim))
    try:
        await asyncio.to_thread(sim.wait_for, lambda s: s["sol_active"])  # another client holds the payload
        stream = await session.open_console()  # deactivates the stale payload, then activates its own
        try:
            sim.control("console", text="AFTER-TAKEOVER\r\n")
            assert b"AFTER-TAKEOVER" in await read_until(stream, b"AFTER-TAKEOVER")
        finally:
            await stream.close()
    finally:
        await session.close()
        if stale.returncode is None:
            stale.kill()
        await stale.wait()
