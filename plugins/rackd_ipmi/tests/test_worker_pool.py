"""The driver's thread pool and login gate: commands first, deadlines paused while queued, places held honestly.

These use real threads blocked on threading.Events instead of BMCs: the order in which queued calls reach a
thread is the behaviour under test, and a BMC cannot be made to hold a thread for exactly as long as a test needs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest
from rackd_ipmi.executor import WorkerPool
from rackd_ipmi.logins import LoginGate

from rackd.errors import DeviceTimeoutError, DriverBusyError
from rackd.runtime.reader import call_with_deadline
from rackd.testing.clock import ManualClock


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(max_workers=1, thread_name_prefix="test-pool")
    yield workers
    workers.shutdown(wait=True)


def blocker(started: threading.Event, release: threading.Event, result: str = "done") -> Callable[[], str]:
    def work() -> str:
        started.set()
        release.wait(30)
        return result

    return work


async def wait_thread_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30)


async def test_commands_reach_a_thread_before_polls_queued_earlier(pool: WorkerPool) -> None:
    clock = ManualClock()
    started, release = threading.Event(), threading.Event()
    first = await pool.start(blocker(started, release))
    await wait_thread_event(started)
    order: list[str] = []

    async def call(name: str, *, urgent: bool) -> None:
        async def through_pool() -> None:
            future = await pool.start(lambda: order.append(name))
            await asyncio.wrap_future(future)

        await call_with_deadline(clock, 10, name, through_pool, queue_limit=100, urgent=urgent)

    polls = [asyncio.create_task(call(f"poll-{i}", urgent=False)) for i in range(3)]
    await clock.settle()
    command = asyncio.create_task(call("command", urgent=True))
    await clock.settle()
    assert pool.queued == 4
    release.set()
    await asyncio.wrap_future(first)
    await asyncio.gather(command, *polls)
    assert order == ["command", "poll-0", "poll-1", "poll-2"]


async def test_a_call_queued_past_its_limit_is_busy_and_never_runs(pool: WorkerPool) -> None:
    clock = ManualClock()
    started, release = threading.Event(), threading.Event()
    first = await pool.start(blocker(started, release))
    await wait_thread_event(started)
    ran: list[str] = []

    async def poll() -> None:
        future = await pool.start(lambda: ran.append("poll"))
        await asyncio.wrap_future(future)

    queued = asyncio.create_task(call_with_deadline(clock, 10, "gpu-7: sensors", poll, queue_limit=30))
    await clock.advance(29)
    assert not queued.done()  # far past its 10 s deadline, but only queued
    await clock.advance(1)
    with pytest.raises(DriverBusyError, match="gpu-7: sensors: not started within 30 s"):
        await queued
    assert pool.queued == 0
    release.set()
    await asyncio.wrap_future(first)
    follow_up = await pool.start(lambda: ran.append("next"))  # the abandoned place did not leak
    await asyncio.wrap_future(follow_up)
    assert ran == ["next"]
    assert pool.busy == 0


async def test_background_work_counts_against_free_threads(pool: WorkerPool) -> None:
    started, release = threading.Event(), threading.Event()
    background = pool.submit(blocker(started, release, "logged out"))
    await wait_thread_event(started)
    admitted = asyncio.create_task(pool.start(lambda: "polled"))
    await asyncio.sleep(0)
    assert not admitted.done()  # no thread is free: the call waits on the loop, not in the executor's queue
    release.set()
    assert await asyncio.wrap_future(background) == "logged out"
    assert await asyncio.wrap_future(await admitted) == "polled"


async def test_a_command_takes_a_reserved_thread_when_every_other_is_busy() -> None:
    pool = WorkerPool(max_workers=1, thread_name_prefix="test-pool", urgent_reserve=1)
    clock = ManualClock()
    try:
        started, release = threading.Event(), threading.Event()
        first = await pool.start(blocker(started, release, "slow poll call"), key="gpu-1")
        await wait_thread_event(started)

        async def call(name: str, key: str, *, urgent: bool) -> str:
            async def through_pool() -> str:
                return await asyncio.wrap_future(await pool.start(lambda: name, key=key))

            return await call_with_deadline(clock, 10, name, through_pool, queue_limit=100, urgent=urgent)

        poll = asyncio.create_task(call("poll call", "gpu-2", urgent=False))
        await clock.settle()
        assert await call("command", "gpu-3", urgent=True) == "command"  # while the only regular thread is busy
        assert not poll.done()  # the reserved thread never serves a poll
        release.set()
        assert await asyncio.wrap_future(first) == "slow poll call"
        assert await poll == "poll call"
    finally:
        release.set()
        pool.shutdown(wait=True)


async def test_a_login_keeps_its_place_until_its_thread_returns() -> None:
    pool = WorkerPool(max_workers=2, thread_name_prefix="test-pool")  # threads to spare: only the gate holds
    gate = LoginGate(slots=1)
    started, release = threading.Event(), threading.Event()

    async def login(key: tuple[str, int, str], work: Callable[[], str]) -> str:
        place = await gate.acquire(key)
        future = await pool.start(work)
        gate.release_when_done(future, place)
        return await asyncio.wrap_future(future)

    hung = asyncio.create_task(login(("10.0.0.1", 623, "admin"), blocker(started, release, "late")))
    await wait_thread_event(started)
    hung.cancel()  # the caller's deadline: the login thread goes on
    with pytest.raises(asyncio.CancelledError):
        await hung
    healthy = asyncio.create_task(login(("10.0.0.2", 623, "admin"), lambda: "logged in"))
    # The place is still held by the thread that is still logging in: a negative, so give it real time to fail.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(healthy), 0.2)
    release.set()
    assert await healthy == "logged in"
    pool.shutdown(wait=True)


async def test_a_poll_under_way_goes_ahead_of_polls_not_yet_begun(pool: WorkerPool) -> None:
    """Short of threads, the driver finishes the polls it began rather than starting every poll, finishing none."""
    clock = ManualClock()
    started, release = threading.Event(), threading.Event()
    first = await pool.start(blocker(started, release))
    await wait_thread_event(started)
    order: list[str] = []

    async def call(name: str, poll_began: float) -> None:
        async def through_pool() -> None:
            await asyncio.wrap_future(await pool.start(lambda: order.append(name)))

        await call_with_deadline(clock, 10, name, through_pool, queue_limit=100, order=poll_began)

    new_polls = [asyncio.create_task(call(f"gpu-{i}: power", clock.monotonic())) for i in range(3)]
    await clock.settle()
    # A poll that began before them (it was served its first call earlier) asks for its next call now.
    continuing = asyncio.create_task(call("gpu-9: sensors", clock.monotonic() - 5))
    await clock.settle()
    release.set()
    await asyncio.wrap_future(first)
    await asyncio.gather(continuing, *new_polls)
    assert order == ["gpu-9: sensors", "gpu-0: power", "gpu-1: power", "gpu-2: power"]


async def test_calls_to_one_bmc_run_one_at_a_time() -> None:
    pool = WorkerPool(max_workers=2, thread_name_prefix="test-pool")  # a thread to spare: only the BMC holds
    try:
        started, release = threading.Event(), threading.Event()
        first = await pool.start(blocker(started, release, "first"), key="gpu-1")
        await wait_thread_event(started)
        second = asyncio.create_task(pool.start(lambda: "second", key="gpu-1"))
        other = await pool.start(lambda: "other BMC", key="gpu-2")
        assert await asyncio.wrap_future(other) == "other BMC"  # the spare thread serves another BMC at once
        assert not second.done()
        assert (pool.busy, pool.queued) == (1, 1)  # gpu-1's second call holds no thread while it waits
        release.set()
        assert await asyncio.wrap_future(first) == "first"
        assert await asyncio.wrap_future(await second) == "second"
    finally:
        pool.shutdown(wait=True)


async def test_a_command_takes_its_bmcs_place_from_a_queued_poll_call(pool: WorkerPool) -> None:
    """A command waits for its BMC's call on a thread (one request), never for that BMC's call still queued."""
    clock = ManualClock()
    started, release = threading.Event(), threading.Event()
    first = await pool.start(blocker(started, release), key="gpu-0")  # the only thread, busy with another BMC
    await wait_thread_event(started)
    order: list[str] = []

    async def call(name: str, bmc: str, *, urgent: bool = False, poll_began: float | None = None) -> None:
        async def through_pool() -> None:
            await asyncio.wrap_future(await pool.start(lambda: order.append(name), key=bmc))

        await call_with_deadline(clock, 10, name, through_pool, queue_limit=100, urgent=urgent, order=poll_began)

    began = clock.monotonic()
    polls = [asyncio.create_task(call(f"{bmc}: sensor", bmc, poll_began=began)) for bmc in ("gpu-1", "gpu-2")]
    await clock.settle()
    command = asyncio.create_task(call("gpu-2: chassis status", "gpu-2", urgent=True))
    await clock.settle()
    release.set()
    await asyncio.wrap_future(first)
    await asyncio.gather(command, *polls)
    # The command went first; gpu-2's poll call waited for the command's call (one call per BMC at a time).
    assert order == ["gpu-2: chassis status", "gpu-1: sensor", "gpu-2: sensor"]


async def test_a_call_waiting_for_its_busy_bmc_times_out_as_the_device(pool: WorkerPool) -> None:
    """Waiting for one's own BMC is waiting for the device: the deadline runs (unlike waiting for a thread)."""
    clock = ManualClock()
    started, release = threading.Event(), threading.Event()
    stuck = await pool.start(blocker(started, release), key="gpu-3")  # e.g. a call abandoned at its deadline
    await wait_thread_event(started)

    async def command() -> None:
        await asyncio.wrap_future(await pool.start(lambda: None, key="gpu-3"))

    waiting = asyncio.create_task(call_with_deadline(clock, 10, "gpu-3: power", command, queue_limit=100))
    await clock.advance(10)
    with pytest.raises(DeviceTimeoutError, match="gpu-3: power: no answer within 10 s"):
        await waiting
    assert pool.queued == 0
    release.set()
    await asyncio.wrap_future(stuck)
    follow_up = await pool.start(lambda: "next", key="gpu-3")  # the BMC's turn did not leak
    assert await asyncio.wrap_future(follow_up) == "next"
    assert pool.busy == 0


async def test_a_command_hurries_the_poll_call_its_bmc_is_running(pool: WorkerPool) -> None:
    """Only a command waiting behind a poll's call hurries it; a poll waiting behind a call never does."""
    clock = ManualClock()
    hurried: list[str] = []

    async def call(name: str, release: threading.Event, *, urgent: bool) -> None:
        started = threading.Event()

        async def through_pool() -> None:
            future = await pool.start(blocker(started, release), key="gpu-4", hurry=lambda: hurried.append(name))
            await asyncio.wrap_future(future)

        await call_with_deadline(clock, 10, name, through_pool, queue_limit=100, urgent=urgent)

    releases = {name: threading.Event() for name in ("poll", "next poll", "command", "second command")}
    poll = asyncio.create_task(call("poll", releases["poll"], urgent=False))
    await clock.settle()
    next_poll = asyncio.create_task(call("next poll", releases["next poll"], urgent=False))
    await clock.settle()
    assert hurried == []  # a poll call waiting behind a poll call hurries nothing
    command = asyncio.create_task(call("command", releases["command"], urgent=True))
    await clock.settle()
    assert hurried == ["poll"]
    releases["poll"].set()
    await poll
    second = asyncio.create_task(call("second command", releases["second command"], urgent=True))
    await clock.settle()
    assert hurried == ["poll"]  # the command runs now: a command is never hurried
    for release in releases.values():
        release.set()
    await asyncio.gather(next_poll, command, second)
