"""The driver's bounded thread pool: commands ahead of polls, one call per BMC at a time, deadlines paused in queue."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rackd.drivers.deadline import CallDeadline, current_deadline

T = TypeVar("T")

URGENT, ROUTINE = 0, 1  # queue order: operator commands before polls, then by when the caller's job began

Priority = tuple[int, float]


@dataclass(eq=False, slots=True)
class _Waiter:
    """One call waiting for its turn: first for its BMC (parked), then for a thread (queued)."""

    priority: Priority
    arrival: int
    key: Hashable | None
    deadline: CallDeadline | None
    ticket: asyncio.Future[None]
    hurry: Callable[[], None] | None = None  # makes this call, once running, finish sooner (a command waits)
    entry: int = -1  # the heap entry that is this waiter's current place in the thread queue (-1: none)


@dataclass(slots=True)
class _Turns:
    """Whose turn it is on one BMC: at most one call queued for a thread or running; the others parked."""

    holder: _Waiter | None = None  # queued for a thread
    running: _Waiter | None = None  # on a thread
    parked: list[_Waiter] = field(default_factory=list)


class WorkerPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor that hands a device call to a thread only when one is free, one call per BMC at a time.

    At site scale (1,000 BMCs) calls queue for threads far longer than a BMC takes to answer. `start()` queues the
    call on the event loop instead, urgent first, with the caller's deadline paused (rackd.drivers.deadline), and
    resumes the deadline when a thread picks the call up: the BMC gets its whole budget, and a queue that is too
    long is reported as the driver being busy, not as the BMC being dead.

    Calls that name a `key` (one BMC session) run one at a time per key. A call whose BMC is busy with another call
    is parked with its deadline running (it waits for the device, not for the driver); only one call per key
    queues for a thread, and an urgent call takes that place from a poll's call still queued. So an operator's
    command waits for at most the one request its BMC is answering now, never for a poll's call queued behind a
    thousand other BMCs (the site benchmark's command latency was that wait).

    `urgent_reserve` threads beyond `max_workers` take only commands: at site scale every regular thread can be
    waiting out a lost packet or a slow BMC at once, and a command must not wait for one of them to end.

    `submit()` is for background work (logouts, console I/O): it never waits, but it counts against the free
    threads too.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "", urgent_reserve: int = 0) -> None:
        """A pool of `max_workers` threads for any call, plus `urgent_reserve` for commands only."""
        super().__init__(max_workers=max_workers + urgent_reserve, thread_name_prefix=thread_name_prefix)
        self.workers = max_workers
        self.urgent_reserve = urgent_reserve
        self._lock = threading.Lock()  # _busy, _pending and _released are touched from worker threads too
        self._busy = 0  # work handed to the pool and not finished (admitted or background)
        self._pending: set[Future[Any]] = set()
        # A heap of (urgency, job start, entry, waiter): a poll that has begun is finished before new ones start.
        self._waiters: list[tuple[Priority, int, _Waiter]] = []
        self._turns: dict[Hashable, _Turns] = {}  # event loop only
        self._released: list[Hashable] = []  # keys whose call finished, handed to the event loop by _grant
        self._counter = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- admitted work ---------------------------------------------------------------------------------

    async def start(
        self, func: Callable[[], T], key: Hashable | None = None, hurry: Callable[[], None] | None = None
    ) -> Future[T]:
        """Wait for `key`'s turn and a free thread (the deadline paused while only the thread is awaited); run it.

        `hurry` (event loop) is called if an urgent call comes to wait for this one while it runs.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        deadline = current_deadline()
        if deadline is None:
            priority: Priority = (ROUTINE, loop.time())
        else:
            priority = (URGENT if deadline.urgent else ROUTINE, deadline.order)
        await self._admission(_Waiter(priority, next(self._counter), key, deadline, loop.create_future(), hurry))

        def run() -> T:
            if deadline is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for the deadline
                    loop.call_soon_threadsafe(deadline.resume)
            return func()

        try:
            future = super().submit(run)
        except BaseException:
            self._finished_one(key)
            raise
        return self._track(future, key)

    async def _admission(self, waiter: _Waiter) -> None:
        self._enter(waiter)
        self._grant()
        try:
            await waiter.ticket
        except asyncio.CancelledError:
            if not waiter.ticket.cancelled():
                self._finished_one(waiter.key)  # granted a thread as the caller gave up: hand it (and the BMC) on
            else:
                self._leave(waiter)
                self._grant()
            raise

    def _enter(self, waiter: _Waiter) -> None:
        """Queue a new call for a thread, or park it behind its BMC's call (event loop only)."""
        if waiter.key is None:
            self._queue(waiter)
            return
        turns = self._turns.setdefault(waiter.key, _Turns())
        holder = turns.holder
        running = turns.running
        if holder is None and running is None:
            turns.holder = waiter
            self._queue(waiter)
        elif holder is not None and waiter.priority < holder.priority:
            # A command outranks its BMC's poll call that has no thread yet: it takes that call's place.
            self._park(turns, holder)
            turns.holder = waiter
            self._queue(waiter)
        else:
            self._park(turns, waiter)
            if running is not None and running.hurry is not None and waiter.priority[0] < running.priority[0]:
                running.hurry()  # a command waits for a poll's call on its BMC: that call resends early

    def _queue(self, waiter: _Waiter) -> None:
        if waiter.deadline is not None:
            waiter.deadline.pause()  # from here on it waits for the driver's threads, not for the device
        waiter.entry = next(self._counter)
        with self._lock:
            heapq.heappush(self._waiters, (waiter.priority, waiter.entry, waiter))

    def _park(self, turns: _Turns, waiter: _Waiter) -> None:
        if waiter.deadline is not None:
            waiter.deadline.resume()  # waiting for its BMC's call in progress is waiting for the device
        waiter.entry = -1
        turns.parked.append(waiter)

    def _leave(self, waiter: _Waiter) -> None:
        """A caller gave up before its call had a thread (event loop only)."""
        waiter.entry = -1
        turns = self._turns.get(waiter.key) if waiter.key is not None else None
        if turns is None:
            return
        if turns.holder is waiter:
            turns.holder = None
            self._next_turn(waiter.key, turns)
        elif waiter in turns.parked:
            turns.parked.remove(waiter)
            self._forget_idle(waiter.key, turns)

    def _next_turn(self, key: Hashable | None, turns: _Turns) -> None:
        """The BMC is free: queue its best parked call for a thread."""
        if turns.parked:
            best = min(turns.parked, key=lambda w: (w.priority, w.arrival))
            turns.parked.remove(best)
            turns.holder = best
            self._queue(best)
        else:
            self._forget_idle(key, turns)

    def _forget_idle(self, key: Hashable | None, turns: _Turns) -> None:
        if turns.holder is None and turns.running is None and not turns.parked:
            self._turns.pop(key, None)

    def _grant(self) -> None:
        """Free finished BMCs, then give free threads to the first waiters (event loop only)."""
        with self._lock:
            released, self._released = self._released, []
        for key in released:
            turns = self._turns.get(key)
            if turns is not None:
                turns.running = None
                self._next_turn(key, turns)  # a BMC with a call running has none queued: only parked ones
        while True:
            with self._lock:
                if not self._waiters:
                    return
                urgent = self._waiters[0][0][0] == URGENT  # the heap's first is the most urgent
                if self._busy >= self.workers + (self.urgent_reserve if urgent else 0):
                    return
                _, entry, waiter = heapq.heappop(self._waiters)
                if waiter.entry != entry or waiter.ticket.done():
                    continue  # its place was taken by a command, or its caller gave up
                self._busy += 1
            waiter.entry = -1
            if waiter.key is not None:
                turns = self._turns[waiter.key]
                turns.holder = None
                turns.running = waiter
            waiter.ticket.set_result(None)

    # --- background work --------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run background work at once (it does not queue behind calls, but occupies a thread all the same)."""
        with self._lock:
            self._busy += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished_one(None)
            raise
        return self._track(future, None)

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _track(self, future: Future[T], key: Hashable | None) -> Future[T]:
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(lambda done: self._done(done, key))
        return future

    def _done(self, future: Future[Any], key: Hashable | None) -> None:
        with self._lock:
            self._pending.discard(future)
        self._finished_one(key)

    def _finished_one(self, key: Hashable | None) -> None:
        """One unit of work no longer holds a thread, nor its BMC's turn (any thread may call this)."""
        with self._lock:
            self._busy -= 1
            if key is not None:
                self._released.append(key)
            wake = bool(self._waiters) or key is not None
        loop = self._loop
        if loop is not None and wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._grant)

    @property
    def busy(self) -> int:
        """Threads taken by work now (may exceed `workers` briefly while background work queues)."""
        with self._lock:
            return self._busy

    @property
    def queued(self) -> int:
        """Calls waiting for a thread or for their BMC."""
        with self._lock:
            queued = sum(1 for _, entry, waiter in self._waiters if waiter.entry == entry and not waiter.ticket.done())
        return queued + sum(len(turns.parked) for turns in list(self._turns.values()))

    def pending(self) -> list[Future[Any]]:
        """Futures not finished yet."""
        with self._lock:
            return list(self._pending)
