"""How many IPMI logins run at once, one at a time per BMC; a login holds its place until its thread returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

from rackd.drivers.deadline import current_deadline

log = structlog.get_logger(__name__)

BmcKey = tuple[str, int, str]  # host, port, user: what pyghmi de-duplicates sessions by


class LoginPlace:
    """A login place held; calling it gives the place back (once, however many times it is called)."""

    def __init__(self, slots: asyncio.Semaphore, bmc: asyncio.Lock) -> None:
        """Both are already acquired."""
        self._slots = slots
        self._bmc = bmc
        self.held = True

    def __call__(self) -> None:
        """Release the place."""
        if self.held:
            self.held = False
            self._slots.release()
            self._bmc.release()


class LoginGate:
    """Bounds concurrent logins and serializes the logins to one BMC.

    Bounded (driver.CONCURRENT_LOGINS): every login holds a worker thread for its whole exchange, and a burst of
    logins at start or after a network blip must leave threads for polls and commands. Serialized per BMC (the
    poller and its SOL console) whatever the bound, because pyghmi hands a second login to the same BMC the first
    one's half-made session.
    """

    def __init__(self, slots: int) -> None:
        """At most `slots` logins at once."""
        self.slots = slots
        self._slots: asyncio.Semaphore | None = None
        self._per_bmc: dict[BmcKey, asyncio.Lock] = {}

    async def acquire(self, key: BmcKey) -> LoginPlace:
        """Wait for a login place for this BMC (the caller's deadline paused meanwhile); returns its release."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        slots = self._slots
        bmc = self._per_bmc.setdefault(key, asyncio.Lock())
        deadline = current_deadline()
        if deadline is not None:
            deadline.pause()  # resumed when a thread starts the login (WorkerPool.start)
        await bmc.acquire()
        try:
            await slots.acquire()
        except BaseException:
            bmc.release()
            raise
        return LoginPlace(slots, bmc)

    @staticmethod
    def release_later(
        place: LoginPlace, grace: float, where: str, *, before: Callable[[], None] | None = None
    ) -> None:
        """Free the place `grace` s from now, even if the login's thread is still inside pyghmi (logged).

        `before` runs first: it tells that thread to give up.
        """

        def free() -> None:
            if before is not None:
                before()
            if place.held:
                place()
                log.warning("ipmi_login_thread_stuck", bmc=where, grace=grace)

        asyncio.get_running_loop().call_later(grace, free)

    @staticmethod
    def release_when_done(future: Future[Any], release: Callable[[], None]) -> None:
        """Release the place when the login's thread returns, even if its caller gave up long before."""
        loop = asyncio.get_running_loop()

        def done(_future: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: so are the waiters
                loop.call_soon_threadsafe(release)

        future.add_done_callback(done)
