"""The driver's bounded thread pool: commands ahead of polls, call deadlines paused while queued, work tracked."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from rackd.drivers.deadline import current_deadline

T = TypeVar("T")

URGENT, ROUTINE = 0, 1  # queue order: operator commands before polls, then by when the caller's job began


class WorkerPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor that hands a device call to a thread only when one is free.

    At site scale (1,000 BMCs) calls queue for threads far longer than a BMC takes to answer. `start()` queues the
    call on the event loop instead, urgent first, with the caller's deadline paused (rackd.drivers.deadline), and
    resumes the deadline when a thread picks the call up: the BMC gets its whole budget, and a queue that is too
    long is reported as the driver being busy, not as the BMC being dead. `submit()` is for background work
    (logouts, console I/O): it never waits, but it counts against the free threads too.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        """A pool of at most `max_workers` threads."""
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.workers = max_workers
        self._lock = threading.Lock()  # _busy and _pending are touched from worker threads too
        self._busy = 0  # work handed to the pool and not finished (admitted or background)
        self._pending: set[Future[Any]] = set()
        # A heap of (urgency, job start, arrival, ticket): a poll that has begun is finished before new ones start.
        self._waiters: list[tuple[tuple[int, float], int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- admitted work ---------------------------------------------------------------------------------

    async def start(self, func: Callable[[], T]) -> Future[T]:
        """Wait for a free thread (the caller's deadline paused meanwhile), then run `func` on it."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        deadline = current_deadline()
        if deadline is not None:
            deadline.pause()  # resumed by the thread that runs func, however soon that is
        if deadline is None:
            await self._admission((ROUTINE, asyncio.get_running_loop().time()))
        else:
            await self._admission((URGENT if deadline.urgent else ROUTINE, deadline.order))

        def run() -> T:
            if deadline is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for the deadline
                    loop.call_soon_threadsafe(deadline.resume)
            return func()

        try:
            future = super().submit(run)
        except BaseException:
            self._finished_one()
            raise
        return self._track(future)

    async def _admission(self, priority: tuple[int, float]) -> None:
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:  # checked and queued under the lock: a thread finishing in between must see the ticket
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # callers that gave up while queued
            if self._busy < self.workers and not self._waiters:
                self._busy += 1
                return
            heapq.heappush(self._waiters, (priority, next(self._arrivals), ticket))
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._finished_one()  # granted a thread as the caller gave up: hand it on
            else:
                ticket.cancel()  # _grant skips it
            raise

    def _grant(self) -> None:
        """Give free threads to the first waiters (event loop only)."""
        while self._waiters:
            with self._lock:
                if self._busy >= self.workers:
                    return
                _, _, ticket = heapq.heappop(self._waiters)
                if ticket.done():
                    continue
                self._busy += 1
            ticket.set_result(None)

    # --- background work --------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run background work at once (it does not queue behind calls, but occupies a thread all the same)."""
        with self._lock:
            self._busy += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished_one()
            raise
        return self._track(future)

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _track(self, future: Future[T]) -> Future[T]:
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
        self._finished_one()

    def _finished_one(self) -> None:
        """One unit of work no longer holds a thread (any thread may call this)."""
        with self._lock:
            self._busy -= 1
            someone_waits = bool(self._waiters)
        loop = self._loop
        if loop is not None and someone_waits:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._grant)

    @property
    def busy(self) -> int:
        """Threads taken by work now (may exceed `workers` briefly while background work queues)."""
        with self._lock:
            return self._busy

    @property
    def queued(self) -> int:
        """Calls waiting for a thread."""
        with self._lock:
            return sum(1 for _, _, ticket in self._waiters if not ticket.done())

    def pending(self) -> list[Future[Any]]:
        """Futures not finished yet."""
        with self._lock:
            return list(self._pending)
