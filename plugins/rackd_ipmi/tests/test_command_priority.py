"""An operator command never waits for a poll's call to queue behind the rest of the fleet's polls.

Calls to one BMC are serialized, so a command waits for that BMC's call in progress. With every pool thread busy
(a thousand BMCs), that call may itself be queued behind other BMCs' polls: it is hurried to the front.
The pool's thread is held by a threading.Event blocker (as in test_worker_pool.py), the BMC is a real simulator.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.link import BmcLink
from rackd_ipmi.session import CMD_CHASSIS_STATUS, NETFN_CHASSIS
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext
from rackd.runtime.reader import call_with_deadline
from rackd.testing.clock import ManualClock

from .conftest import OptionsFactory


def blocker(started: threading.Event, release: threading.Event) -> Callable[[], None]:
    def work() -> None:
        started.set()
        release.wait(30)

    return work


async def test_a_command_hurries_the_poll_call_it_waits_for(
    start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim()
    driver = IpmiDriver(workers=1)
    pool = driver._executor  # the test holds the driver's only thread to build the queue
    clock = ManualClock()  # the calls' deadlines: they never expire here, so only queue order decides
    held, release_held = threading.Event(), threading.Event()
    ran: list[str] = []  # appended in the worker thread as each other BMC's call runs
    session = await driver.open(context, options(sim))
    try:
        first = await pool.start(blocker(held, release_held))
        assert await asyncio.to_thread(held.wait, 30)

        def other_bmc_request(name: str) -> None:
            ran.append(name)
            time.sleep(0.05)  # the other BMC's round trip: the thread is busy, as with a real request

        async def other_bmc_poll(name: str) -> None:
            await asyncio.wrap_future(await pool.start(lambda: other_bmc_request(name)))

        def chassis_status(name: str) -> Callable[[BmcLink], tuple[int, bytes]]:
            def read(link: BmcLink) -> tuple[int, bytes]:
                ran.append(name)  # in the worker thread, just before the request goes to the BMC
                return link.raw(NETFN_CHASSIS, CMD_CHASSIS_STATUS)

            return read

        async def read_power(name: str, *, urgent: bool) -> tuple[int, bytes]:
            # What get_power does, through the session's one-call-at-a-time path, with the moment it runs recorded.
            return await call_with_deadline(
                clock, 10, f"gpu-01: {name}", lambda: session._with_link(chassis_status(name)), queue_limit=60,
                urgent=urgent,
            )

        def other(name: str) -> Callable[[], Awaitable[None]]:
            return lambda: other_bmc_poll(name)

        others = [
            asyncio.create_task(call_with_deadline(clock, 10, f"gpu-{n}", other(f"gpu-{n}"), queue_limit=60))
            for n in range(10, 18)
        ]
        await clock.settle()
        poll = asyncio.create_task(read_power("poll", urgent=False))  # this BMC's poll call, queued behind 8 others
        await clock.settle()
        command = asyncio.create_task(read_power("command", urgent=True))  # waits for this BMC's turn
        await clock.settle()
        assert pool.queued == 9  # 8 other polls and this BMC's poll call; the command waits for the BMC
        release_held.set()
        assert (await asyncio.wait_for(command, 30))[0] == 0
        assert (await asyncio.wait_for(poll, 30))[0] == 0
        await asyncio.wait_for(asyncio.gather(*others), 30)
        # The poll call went first. The thread it frees goes to the next poll in line before the command (on the
        # event loop, waiting for the BMC's turn) can queue, so one other BMC's request may come between; then
        # the command, ahead of the other polls. Without the hurry all eight ran first, then the poll call.
        assert ran[0] == "poll", ran
        assert ran.index("command") <= 2, ran
        assert len(ran) == 10
        await asyncio.wrap_future(first)
    finally:
        release_held.set()
        await session.close()
        await driver.aclose()
