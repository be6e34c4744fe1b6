"""Time as the runtime sees it: monotonic time, wall time, sleep and deadlines (a test clock can replace it)."""

from __future__ import annotations

import asyncio
import datetime as dt
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Deadline(Protocol):
    """A running deadline that can be moved (`asyncio.Timeout` is one)."""

    def reschedule(self, when: float | None) -> None:
        """Expire at `when` on the clock's monotonic scale instead (None: never)."""


class Clock(Protocol):
    """Everything the runtime does with time goes through a Clock, so tests can fast-forward it."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale."""

    def now(self) -> dt.datetime:
        """Wall-clock time, timezone-aware UTC."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Deadline]:
        """A deadline for the block: raises TimeoutError when it expires (like `asyncio.timeout`)."""


class SystemClock:
    """The real clock: the event loop's time, asyncio.sleep and asyncio.timeout."""

    def monotonic(self) -> float:
        """The running loop's monotonic time."""
        return asyncio.get_running_loop().time()

    def now(self) -> dt.datetime:
        """UTC now."""
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(max(0.0, seconds))

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Deadline]:
        """asyncio.timeout."""
        return asyncio.timeout(seconds)
