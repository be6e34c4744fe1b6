"""Running net-snmp's command-line tools from async tests (their own processes, reaped by PID)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    code: int
    out: str


async def netsnmp(*argv: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Run(process.returncode or 0, out.decode(errors="replace"))
