"""An open IPMI session to one BMC: power, sensors, DCMI, SEL and FRU, one call at a time, with deadlines."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pyghmi.ipmi import events as ipmi_events

from rackd.drivers.contract import ConsoleStream, SessionContext
from rackd.drivers.deadline import current_deadline
from rackd.errors import DeviceProtocolError, DeviceTimeoutError, DeviceUnreachableError
from rackd.model import (
    Inventory,
    LogBatch,
    PowerAction,
    PowerState,
    PowerTarget,
    Reading,
    SensorKind,
    utc_now,
)
from rackd_ipmi.eventlog import SelReader
from rackd_ipmi.executor import WorkerPool
from rackd_ipmi.inventory import inventory_from
from rackd_ipmi.link import BmcLink, abandon_login
from rackd_ipmi.logins import LoginGate
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.presence import bmc_answers
from rackd_ipmi.pump import LoopPump
from rackd_ipmi.sensors import psu_input_power, to_readings
from rackd_ipmi.sol import SolStream
from rackd_ipmi.translate import completion_error

log = structlog.get_logger(__name__)
T = TypeVar("T")

CHASSIS = "chassis"
NETFN_CHASSIS = 0x00
CMD_CHASSIS_STATUS = 0x01
CMD_CHASSIS_CONTROL = 0x02
NETFN_STORAGE = 0x0A
CMD_SDR_INFO = 0x20
NETFN_DCMI = 0x2C
CMD_DCMI_POWER = 0x02
DCMI_POWER_REQUEST = bytes([0xDC, 0x01, 0x00, 0x00])  # group DCMI, mode 1: system power statistics
DCMI_MEASUREMENT_ACTIVE = 0x40
CONTROL_CODES: dict[PowerAction, int] = {
    PowerAction.OFF: 0,
    PowerAction.ON: 1,
    PowerAction.CYCLE: 2,  # pyghmi's set_power has no cycle: raw Chassis Control
    PowerAction.RESET: 3,
    PowerAction.DIAG: 4,
    PowerAction.SOFT_OFF: 5,
}

LoginFactory = Callable[[], BmcLink]
LOGIN_ABANDON_GRACE = 10.0  # seconds an abandoned login thread may keep the login gate before it is freed anyway
SOL_ACTIVATION_TIMEOUT = 10.0


class IpmiSession:
    """A session to one BMC. The pyghmi session under it is replaced when it missed a deadline or failed."""

    def __init__(
        self,
        context: SessionContext,
        options: IpmiOptions,
        pool: WorkerPool,
        logins: LoginGate,
        login: LoginFactory,
        discard: Callable[[BmcLink], None],
        pump: LoopPump,
    ) -> None:
        """Wire the session to the driver's thread pool and login gate; `open()` logs in."""
        self.context = context
        self.options = options
        self.where = options.where
        self._pool = pool
        self._logins = logins
        self._bmc_key = (options.host, options.port, options.username)
        self._login = login
        self._discard = discard
        self._pump = pump
        self._link: BmcLink | None = None
        self._abandoned: Future[Any] | None = None  # a call that missed its deadline and still runs
        # Logins are one at a time per session; calls are one at a time per BMC in the pool (keyed by this session)
        self._link_lock = asyncio.Lock()
        self._closed = False
        self._sdr_stamp: bytes | None = None
        self._dcmi: bool | None = None if options.use_dcmi else False
        self._inventory: Inventory | None = None
        self._log = structlog.get_logger(__name__).bind(bmc=self.where, device=context.device_id)

    # --- plumbing ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Log in (a bounded number of logins run at once; one at a time per BMC)."""
        async with self._link_lock:
            await self._ensure_link()
        self._pump.add(self)  # keepalives for this BMC's sessions while it is idle between polls

    async def _run(self, func: Callable[[], T], hurry: Callable[[], None] | None = None) -> T:
        """Run blocking work on a pool thread; if our caller gives up (deadline), the session is poisoned."""
        return await self._result(await self._start(func, hurry))

    async def _start(self, func: Callable[[], T], hurry: Callable[[], None] | None = None) -> Future[T]:
        """Hand blocking work to the pool: after this BMC's call in progress (even one abandoned at its deadline)."""
        return await self._pool.start(func, key=self, hurry=hurry)

    async def _result(self, future: Future[T]) -> T:
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():
                raise  # no thread ever ran it: nothing reached the BMC, the session is as good as before
            # The worker keeps running until pyghmi gives up; until then this BMC gets no other worker, so a
            # hung BMC holds at most one thread of the shared pool.
            self._abandoned = future
            self._poison("deadline")
            future.add_done_callback(self._adopt_orphan)  # a login that still succeeds must not leak
            raise

    def _adopt_orphan(self, future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        if isinstance(result, BmcLink):
            result.poison()
            self._discard(result)

    def _poison(self, reason: str) -> None:
        link = self._link
        if link is None:
            return
        self._link = None
        link.poison()
        self._log.info("ipmi_session_discarded", reason=reason)
        abandoned = self._abandoned
        if abandoned is not None and not abandoned.done():
            # log out once the stuck worker lets go of the session, not in a second worker meanwhile
            abandoned.add_done_callback(lambda _future: self._discard(link))
        else:
            self._discard(link)

    async def _ensure_link(self) -> BmcLink:
        if self._closed:
            raise DeviceProtocolError(f"{self.where}: session used after close")
        link = self._link
        idle = link is not None and time.monotonic() - link.last_used > self.options.session_idle_timeout
        if link is not None and (link.poisoned or idle):
            # pyghmi only sends keepalives while some thread waits on it: after a long idle the BMC may have
            # dropped the session, so start a fresh one rather than wait out retries on a dead one.
            self._poison("poisoned" if link.poisoned else "idle")
            link = None
        if link is None:
            if self.options.presence_probe and not await bmc_answers(self.options.host, self.options.port):
                # Fail in ~1 s without a thread: a login to a silent BMC would hold a thread and a login place ~5 s.
                raise DeviceUnreachableError(
                    f"{self.where}: no answer to Get Channel Authentication Capabilities (presence probe before login)"
                )
            release = await self._logins.acquire(self._bmc_key)
            try:
                future = await self._start(self._login)
            except BaseException:
                release()
                raise
            # A login to a silent BMC keeps its thread ~5 s after our deadline: it keeps its login place as long.
            self._logins.release_when_done(future, release)
            try:
                link = await self._result(future)
            except asyncio.CancelledError:
                if not future.done():
                    # A login that finishes late is logged out (_adopt_orphan); one still running after the grace
                    # may wait for a lost reply with no retry timer left, for ever (seen at 5 % loss): it is told
                    # to give up then, and the gate is freed even if it does not.
                    def give_up() -> None:
                        if not future.done():
                            abandon_login(self.options, self.options.password.reveal(), self._kg())

                    self._logins.release_later(release, LOGIN_ABANDON_GRACE, self.where, before=give_up)
                raise
            self._link = link
            self._log.debug("ipmi_session_opened", suite=link.suite)
        return link

    async def _with_link(self, func: Callable[[BmcLink], T]) -> T:
        result, _ = await self._with_link_of(func)
        return result

    async def _with_link_of(self, func: Callable[[BmcLink], T], same: BmcLink | None = None) -> tuple[T, BmcLink]:
        """Run `func` on the session's link; with `same`, only on that link (a walk begun on it continues on it)."""
        if same is not None and self._link is not same:
            raise DeviceTimeoutError(f"{self.where}: the session was replaced during a multi-call read")
        async with self._link_lock:
            link = await self._ensure_link()
        if same is not None and link is not same:
            raise DeviceTimeoutError(f"{self.where}: the session was replaced during a multi-call read")

        def call() -> T:
            # Another call to this BMC (a poll's, a command's) may have failed while this one waited its turn.
            if link.poisoned:
                raise DeviceTimeoutError(f"{self.where}: the session failed while this call waited for the BMC")
            try:
                return func(link)
            finally:
                link.hurried = False

        try:
            return await self._run(call, hurry=link.hurry), link
        finally:
            if link.poisoned and self._link is link:
                self._poison("failed")

    def _kg(self) -> str | None:
        return self.options.kg.reveal() if self.options.kg is not None else None

    @property
    def negotiated_suite(self) -> int | None:
        """The cipher suite of the current pyghmi session (17 or 3), None while there is none."""
        return self._link.suite if self._link is not None else None

    # --- PowerControl --------------------------------------------------------------------------------

    async def power_targets(self) -> Sequence[PowerTarget]:
        """A BMC switches one target: its chassis."""
        return [PowerTarget(CHASSIS, "server chassis")]

    def _check_target(self, target: str) -> None:
        if target != CHASSIS:
            raise DeviceProtocolError(f"{self.where}: no power target {target!r} (a BMC has only 'chassis')")

    async def get_power(self, target: str) -> PowerState:
        """Get Chassis Status: power on or off."""
        self._check_target(target)
        deadline = current_deadline()
        for_command = deadline is not None and deadline.urgent

        def read(link: BmcLink) -> PowerState:
            if for_command:
                # An operator's command waits on this read (the state before its action, the verification after):
                # a lost request is resent HURRY_RETRANSMIT_AFTER after it went out instead of at pyghmi's 0.5-1 s
                # timer, which was the command's latency at the site benchmark's p99. A read sent twice is harmless.
                link.hurried = True
            code, data = link.raw(NETFN_CHASSIS, CMD_CHASSIS_STATUS)
            if code:
                raise completion_error(self.where, "Get Chassis Status", code)
            if not data:
                raise DeviceProtocolError(f"{self.where}: empty Get Chassis Status reply")
            return PowerState.ON if data[0] & 0x01 else PowerState.OFF

        return await self._with_link(read)

    async def set_power(self, target: str, action: PowerAction) -> None:
        """Chassis Control; returns once the BMC accepted it (0xD5 while off → DeviceRefusedError)."""
        self._check_target(target)
        directive = CONTROL_CODES[action]

        def act(link: BmcLink) -> None:
            code, _ = link.raw(NETFN_CHASSIS, CMD_CHASSIS_CONTROL, bytes([directive]))
            if code:
                raise completion_error(self.where, f"chassis control {action}", code)

        await self._with_link(act)
        self._log.info("ipmi_power_requested", action=str(action))

    # --- SensorSource --------------------------------------------------------------------------------

    def _sdr_cache_dir(self) -> Path | None:
        path = self.context.state_dir / "sdr-cache"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None  # a cache is an optimisation: read without one
        return path

    async def read_sensors(self) -> Sequence[Reading]:
        """Every SDR sensor, plus `system_power` from DCMI (or the sum of PSU input power sensors).

        The walk runs in one pool call, and gives way after the sensor in flight when an operator's command comes
        to wait for this BMC (calls to one BMC are serialized: `link.hurried` says one waits), then goes on in
        another call. So a command waits for at most one sensor request, not for the walk (over a lossy link a
        walk of 30 sensors takes a second or more; the site benchmark's command p99 was that), and a walk that
        nobody interrupts costs one thread hand-off instead of one per sensor (half the CPU of a poll).
        """
        cache_dir = self._sdr_cache_dir()
        walk: Iterator[Any] | None = None

        def start(link: BmcLink) -> Iterator[Any]:
            cmd = link.command
            if cache_dir is not None and cmd._sdrcachedir is None:
                cmd.set_sdr_cachedir(str(cache_dir))
            code, info = link.raw(NETFN_STORAGE, CMD_SDR_INFO)
            stamp = bytes(info[5:13]) if code == 0 else None
            if stamp != self._sdr_stamp:
                cmd._sdr = None
                self._sdr_stamp = stamp
            started: Iterator[Any] = cmd.get_sensor_data()  # a generator: nothing is read until the first next()
            return started

        def take(link: BmcLink) -> tuple[list[Any], bool, int | None]:
            """(sensors read, whether the walk is over, DCMI watts once it is)."""
            nonlocal walk
            if walk is None:
                walk = start(link)
            taken: list[Any] = []
            while True:
                sensor = link.call("read sensors", next, walk, None)
                if sensor is None:
                    return taken, True, self._dcmi_watts(link)
                taken.append(sensor)
                if link.hurried:
                    return taken, False, None  # a command waits for this BMC: let it go first

        (sensors, done, watts), walked = await self._with_link_of(take)
        while not done:
            (more, done, watts), _ = await self._with_link_of(take, walked)
            sensors += more
        now = utc_now()
        readings = to_readings(sensors, now)
        system = float(watts) if watts is not None else psu_input_power(readings)
        if system is not None and not any(r.sensor == "system_power" for r in readings):
            readings.append(Reading.of("system_power", SensorKind.POWER, system, observed_at=now))
        return readings

    def _dcmi_watts(self, link: BmcLink) -> int | None:
        if self._dcmi is False:
            return None
        code, data = link.raw(NETFN_DCMI, CMD_DCMI_POWER, DCMI_POWER_REQUEST)
        if code or len(data) < 18 or data[0] != 0xDC:
            self._dcmi = False  # not offered by this BMC: stop asking for the life of this session
            self._log.info("ipmi_dcmi_unavailable", code=code)
            return None
        self._dcmi = True
        if not data[17] & DCMI_MEASUREMENT_ACTIVE:
            return None
        return int(struct.unpack_from("<H", data, 1)[0])

    # --- EventLogSource ------------------------------------------------------------------------------

    async def read_log(self, cursor: str | None) -> LogBatch:
        """SEL entries after the cursor; see eventlog.SelReader."""

        def read(link: BmcLink) -> LogBatch:
            cmd = link.command
            decoder: Callable[[bytes], dict[str, Any]] | None = None

            def decode(record: bytes) -> dict[str, Any]:
                nonlocal decoder
                if decoder is None:
                    handler = link.call("read SDR", lambda: ipmi_events.EventHandler(cmd.init_sdr(), cmd))
                    decoder = handler._sel_decode
                return decoder(record)

            reader = SelReader(self.where, link.raw, decode)
            return reader.read(cursor, self.options.log_batch_max, self.options.log_reset_replay)

        return await self._with_link(read)

    # --- InventorySource -----------------------------------------------------------------------------

    async def read_inventory(self) -> Inventory:
        """FRU 0 + Device ID, read once per session."""
        if self._inventory is not None:
            return self._inventory

        def read(link: BmcLink) -> Inventory:
            return inventory_from(link)

        self._inventory = await self._with_link(read)
        return self._inventory

    # --- ConsoleTransport ----------------------------------------------------------------------------

    async def open_console(self) -> ConsoleStream:
        """Serial-over-LAN to the server's serial console (a stale payload of another client is taken over)."""
        stream = SolStream(self.options, self._pool, self._pump)
        password = self.options.password.reveal()
        kg = self._kg()
        release = await self._logins.acquire(self._bmc_key)  # the console logs in on its own
        try:
            await stream.start(password, kg, SOL_ACTIVATION_TIMEOUT)
        finally:
            release()
        return stream

    # --- DeviceSession -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Log out; safe to call more than once; never raises."""
        if self._closed:
            return
        self._closed = True
        self._pump.remove(self)
        link, self._link = self._link, None
        if link is None:
            return
        try:
            await self._run(link.logout)
        except (asyncio.CancelledError, Exception) as exc:  # closing must not fail: fall back to background
            link.poison()
            self._discard(link)
            if isinstance(exc, asyncio.CancelledError):
                raise
        self._log.debug("ipmi_session_closed")
