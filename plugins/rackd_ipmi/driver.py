"""The `ipmi` driver: opens IPMI 2.0 sessions to BMCs through pyghmi on one bounded executor per process."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, ClassVar

import structlog

from rackd.drivers.contract import Capability, DriverOptions, SessionContext
from rackd.errors import AuthError, UnsupportedError
from rackd_ipmi import pyghmi_patches
from rackd_ipmi.executor import WorkerPool
from rackd_ipmi.link import BmcLink
from rackd_ipmi.logins import LoginGate
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.pump import LoopPump
from rackd_ipmi.session import IpmiSession

log = structlog.get_logger(__name__)

# Threads mostly wait on the network (a lost packet costs a 0.5-1 s retransmission wait), so the pool is wider
# than the cores; the site benchmark (docs/benchmarks.md) sized it.
DEFAULT_WORKERS = 64
# Threads only commands may take, beyond those: at 1,000 BMCs all 64 were at times waiting out lost packets at
# once and a command waited 0.4 s for one of them (the site benchmark's command p99).
URGENT_WORKERS = 8
# Logins at once in the whole process. It was 1 while concurrent pyghmi logins wedged under loss; the causes were
# a login step that blocked whichever thread ran it, a socket-mode race that blocked pyghmi's I/O thread and a
# logout that waited under pyghmi's global lock (all fixed in pyghmi_patches). With 8, the site benchmark brought
# 900 BMCs up in under a minute at 5 % loss (one at a time: ~3 logins/s). BMCs that do not answer never reach the
# gate (presence probe), so a hung tenth of the fleet cannot hold it.
CONCURRENT_LOGINS = 8
SHUTDOWN_GRACE = 5.0


class IpmiDriver:
    """Server BMCs over IPMI 2.0: chassis power, SDR sensors, DCMI power, SEL, FRU and SOL console."""

    name: ClassVar[str] = "ipmi"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POWER, Capability.SENSORS, Capability.EVENT_LOG, Capability.INVENTORY, Capability.CONSOLE}
    )
    options_model: ClassVar[type[DriverOptions]] = IpmiOptions

    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        """One bounded pool for every BMC: a call that misses its deadline keeps its worker until pyghmi gives up."""
        pyghmi_patches.apply()
        self._executor = WorkerPool(workers, thread_name_prefix="rackd-ipmi", urgent_reserve=URGENT_WORKERS)
        self._logins = LoginGate(CONCURRENT_LOGINS)
        self._auth_failures: dict[tuple[str, int, str], tuple[float, str]] = {}
        self._closed = False
        self._pump = LoopPump()  # keepalives and retry timers of every session, SOL traffic of every console

    async def open(self, context: SessionContext, options: Any) -> IpmiSession:
        """Log in to one BMC; AuthError is remembered so a refused password is not retried for a while."""
        if not isinstance(options, IpmiOptions):
            raise TypeError(f"ipmi driver needs IpmiOptions, got {type(options).__name__}")
        if self._closed:
            raise RuntimeError("ipmi driver is closed")
        if set(options.cipher_suites) <= {0}:
            raise UnsupportedError(f"{options.where}: cipher suite 0 is not supported by pyghmi; allow 3 or 17")
        password = options.password.reveal()
        kg = options.kg.reveal() if options.kg is not None else None
        key = (options.host, options.port, options.username)
        fingerprint = hashlib.sha256(password.encode()).hexdigest()
        self._check_holdoff(options, key, fingerprint)

        def login() -> BmcLink:
            try:
                return BmcLink(options, password, kg)
            except AuthError:
                self._auth_failures[key] = (time.monotonic(), fingerprint)
                raise

        session = IpmiSession(context, options, self._executor, self._logins, login, self._discard, self._pump)
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        self._auth_failures.pop(key, None)
        return session

    def _check_holdoff(self, options: IpmiOptions, key: tuple[str, int, str], fingerprint: str) -> None:
        failure = self._auth_failures.get(key)
        if failure is None:
            return
        failed_at, failed_fingerprint = failure
        age = time.monotonic() - failed_at
        if failed_fingerprint == fingerprint and age < options.auth_failure_holdoff:
            # Repeated bad logins lock BMC accounts: do not try the same refused password again so soon.
            raise AuthError(
                f"{options.where}: credentials for {options.username!r} were refused {age:.0f} s ago; "
                f"not retrying for {options.auth_failure_holdoff - age:.0f} s"
            )

    def _discard(self, link: BmcLink) -> None:
        """Log a poisoned or abandoned session out in the background."""
        if self._closed:
            # The pool is gone and this may run on the event loop: do not block it; the BMC reaps the session.
            log.info("ipmi_logout_skipped_after_shutdown", bmc=link.where)
            return
        try:
            self._executor.submit(link.logout)
        except RuntimeError:  # the pool shut down meanwhile
            log.info("ipmi_logout_skipped_after_shutdown", bmc=link.where)

    async def aclose(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop the pool at shutdown: queued logouts still run; work stuck on a dead BMC is waited for `grace` s."""
        if self._closed:
            return
        self._closed = True
        pending = [asyncio.wrap_future(f) for f in self._executor.pending() if not f.done()]
        self._executor.shutdown(wait=False)
        if pending:
            done, still_running = await asyncio.wait(pending, timeout=grace)
            for future in done:
                if not future.cancelled():
                    future.exception()  # retrieved: failures of abandoned calls were already reported
            if still_running:
                # pyghmi gives up on a silent BMC by itself within its retry budget; the threads end then.
                log.info("ipmi_shutdown_workers_still_busy", count=len(still_running))
