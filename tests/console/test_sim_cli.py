"""`rackd sim console-server` as a process: one JSON line naming its ports, commands on stdin drive power and faults."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from rackd_console.urls import open_transport
from rackd_sim.console_server.harness import read_until


async def test_sim_prints_its_endpoints_and_obeys_stdin_commands() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rackd", "sim", "console-server", "--name", "gpu-01", "--boot-speed", "0", "--off",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            ready = json.loads(await process.stdout.readline())
        (console,) = ready["consoles"]
        assert console["name"] == "gpu-01"
        assert console["powered"] is False
        stream = await open_transport(console["telnet"]).open_console()
        try:
            process.stdin.write(b"on gpu-01\n")
            async with asyncio.timeout(20):
                assert await process.stdout.readline() == b"ok on gpu-01\n"
                await read_until(stream, b"gpu-01 login: ")
                process.stdin.write(b"xid gpu-01 48\n")
                await read_until(stream, b"NVRM: Xid (PCI:0000:3b:00): 48")
        finally:
            await stream.close()
        process.stdin.write(b"exit\n")
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
