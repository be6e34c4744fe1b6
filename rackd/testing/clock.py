"""A fast-forwarded clock for tests of schedules, deadlines and backoff: time moves only on `advance()`."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
from collections.abc import Callable
from types import TracebackType


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Implements `rackd.runtime.clock.Clock`; `await clock.advance(s)` fires every timer due, in order."""

    def __init__(self, start: float = 1000.0, wall: dt.datetime | None = None) -> None:
        """Start at monotonic `start` and wall time `wall` (default 2026-01-01T00:00Z)."""
        self._start = start
        self._now = start
        self._wall = wall or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []  # every sleep requested, for assertions on backoff

    @property
    def epoch(self) -> dt.datetime:
        """The wall time at which this clock started."""
        return self._wall

    def monotonic(self) -> float:
        """Current fake time."""
        return self._now

    def now(self) -> dt.datetime:
        """Wall time that moves with the fake time."""
        return self._wall + dt.timedelta(seconds=self._now - self._start)

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        """Run `callback` when the fake time reaches `when`."""
        timer = _Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Wait until the fake time has advanced by `seconds`."""
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(self._now + seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def timeout(self, seconds: float) -> _ManualTimeout:
        """A deadline measured on the fake time."""
        return _ManualTimeout(self, seconds)

    @property
    def next_deadline(self) -> float | None:
        """When the next live timer fires, if any."""
        self._drop_cancelled()
        return self._timers[0][0] if self._timers else None

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)

    async def settle(self, rounds: int = 50) -> None:
        """Let every task that is ready run until it blocks again (no real time passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing due timers in order and letting tasks react to each."""
        target = self._now + seconds
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._timers or self._timers[0][0] > target:
                break
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()

    async def run_until(self, predicate: Callable[[], bool], limit: float, step: float | None = None) -> float:
        """Advance timer by timer until `predicate()` holds; returns the fake time it took (error past `limit`)."""
        began = self._now
        await self.settle()
        while not predicate():
            nxt = self.next_deadline
            if nxt is None or nxt - began > limit:
                raise TimeoutError(f"condition not met within {limit} fake seconds")
            await self.advance(max(0.0, nxt - self._now) if step is None else step)
        return self._now - began


def _never() -> None:
    """The callback of a timer that is never scheduled."""


class _ManualTimeout:
    """Like asyncio.Timeout, on the manual clock: cancels the task at the deadline, raises TimeoutError."""

    def __init__(self, clock: ManualClock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._timer: _Timer | None = None
        self._expired = False

    async def __aenter__(self) -> _ManualTimeout:
        self._task = asyncio.current_task()
        self._timer = self._clock.call_at(self._clock.monotonic() + self._seconds, self._expire)
        return self

    def reschedule(self, when: float | None) -> None:
        """Expire at fake time `when` instead (None: never), like `asyncio.Timeout.reschedule`."""
        if self._task is None or self._expired or self._timer is None:
            raise RuntimeError("the timeout is not running")
        self._timer.cancel()
        self._timer = self._clock.call_at(when, self._expire) if when is not None else _Timer(0.0, _never)
        if when is not None:
            self._seconds = max(0.0, when - self._clock.monotonic())

    def _expire(self) -> None:
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None  # over: reschedule() now refuses, as asyncio's does
        if self._expired and exc_type is asyncio.CancelledError:
            assert self._task is not None
            if self._task.uncancel() == 0:
                raise TimeoutError(f"deadline of {self._seconds} s expired") from exc
