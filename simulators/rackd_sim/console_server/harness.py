"""Helpers for tests that drive the console simulator: wait on in-process conditions, read a stream up to a marker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rackd.drivers.contract import ConsoleStream


async def wait_for(condition: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Until `condition()` holds; TimeoutError names `what`. Each turn yields to the tasks that make it true."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - the condition is plain state, no event to wait on
                await asyncio.sleep(0.005)  # a poll interval under a deadline, not a synchronising sleep
    except TimeoutError:
        raise TimeoutError(f"{what}: not reached within {within} s") from None


async def read_until(stream: ConsoleStream, needle: bytes, limit: int = 1 << 22) -> bytes:
    """Everything read from `stream` up to and including the first chunk that completes `needle`."""
    got = bytearray()
    while needle not in got:
        chunk = await stream.read()
        if not chunk:
            raise EOFError(f"end of stream before {needle!r}; last bytes {bytes(got[-200:])!r}")
        got += chunk
        if len(got) > limit:
            raise ValueError(f"{needle!r} not seen in {limit} bytes")
    return bytes(got)
