"""A driver call's deadline counts the device's time only: queueing on the driver's capacity is bounded apart."""

from __future__ import annotations

import asyncio

import pytest

from rackd.drivers.deadline import CallDeadline, current_deadline
from rackd.errors import DeviceTimeoutError, DriverBusyError
from rackd.runtime.clock import SystemClock
from rackd.runtime.reader import call_with_deadline
from rackd.testing.clock import ManualClock


class QueueingDriver:
    """Stands in for a driver's own queue (what WorkerPool and LoginGate do): pause, wait for a slot, resume."""

    def __init__(self) -> None:
        self.slot = asyncio.Event()
        self.device_answers = asyncio.Event()
        self.seen: CallDeadline | None = None

    async def call(self) -> str:
        deadline = current_deadline()
        self.seen = deadline
        assert deadline is not None
        deadline.pause()
        await self.slot.wait()
        deadline.resume()
        await self.device_answers.wait()
        return "answer"


async def test_time_in_the_drivers_queue_does_not_count_against_the_device() -> None:
    clock = ManualClock()
    driver = QueueingDriver()
    call = asyncio.create_task(call_with_deadline(clock, 10, "gpu-1: sensors", driver.call, queue_limit=60))
    await clock.advance(50)  # five deadlines' worth in the queue, within the queue limit
    assert not call.done()
    driver.slot.set()
    await clock.advance(9)  # the device then has its whole 10 s
    assert not call.done()
    driver.device_answers.set()
    assert await call == "answer"


async def test_a_device_that_does_not_answer_still_times_out_after_its_budget() -> None:
    clock = ManualClock()
    driver = QueueingDriver()
    call = asyncio.create_task(call_with_deadline(clock, 10, "gpu-1: sensors", driver.call, queue_limit=60))
    await clock.advance(30)
    driver.slot.set()
    await clock.advance(10)
    with pytest.raises(DeviceTimeoutError, match=r"gpu-1: sensors: no answer within 10 s"):
        await call


async def test_budget_used_before_queueing_is_not_given_back() -> None:
    clock = ManualClock()
    driver = QueueingDriver()

    async def two_steps() -> str:
        await clock.sleep(6)  # the device took 6 s for a first step
        return await driver.call()

    call = asyncio.create_task(call_with_deadline(clock, 10, "gpu-1: login", two_steps, queue_limit=60))
    await clock.advance(6)
    await clock.advance(20)  # queued
    driver.slot.set()
    await clock.advance(3.9)
    assert not call.done()
    await clock.advance(0.2)  # 6 + 4 s of device time
    with pytest.raises(DeviceTimeoutError):
        await call


async def test_a_queue_longer_than_its_limit_is_the_driver_busy_not_the_device_dead() -> None:
    clock = ManualClock()
    driver = QueueingDriver()
    call = asyncio.create_task(call_with_deadline(clock, 10, "gpu-1: sensors", driver.call, queue_limit=30))
    await clock.advance(30)
    with pytest.raises(DriverBusyError, match=r"gpu-1: sensors: not started within 30 s"):
        await call
    assert driver.seen is not None
    driver.seen.resume()  # a worker starting after the call gave up changes nothing
    assert current_deadline() is None


async def test_the_real_clock_deadline_pauses_too() -> None:
    """The same with asyncio.timeout underneath (SystemClock): reschedule is asyncio's own."""
    driver = QueueingDriver()
    call = asyncio.create_task(
        call_with_deadline(SystemClock(), 0.05, "gpu-1: power", driver.call, queue_limit=3600, urgent=True)
    )
    await asyncio.sleep(0)
    assert driver.seen is not None
    assert driver.seen.urgent
    assert driver.seen.paused
    # The call stays queued well past its 0.05 s: wait for real time to pass on an event that never comes.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(call), 0.2)
    assert not call.done()
    driver.slot.set()
    driver.device_answers.set()
    assert await call == "answer"
