"""One console's persistent connection: jittered reconnects, flap detection, logging, patterns, attached clients."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import DeviceSpec
from rackd.console.config import ConsoleConfig, ConsoleSettings, PatternConfig
from rackd.console.frames import Kind, encode
from rackd.console.logfile import RETRY_INTERVAL, ConsoleLog, Outage
from rackd.console.patterns import DEFAULT_PATTERNS, PatternDetector, PatternMatch
from rackd.console.ring import RingBuffer
from rackd.console.transports import is_unencrypted
from rackd.control.peers import Peer
from rackd.drivers.contract import ConsoleStream
from rackd.errors import (
    AuthError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    RackdError,
    UnsupportedError,
    describe,
)
from rackd.model import Event, EventType, Severity
from rackd.runtime.backoff import Backoff
from rackd.runtime.clock import Clock

Opener = Callable[[], Awaitable[ConsoleStream]]
CLOSE_TIMEOUT = 5.0


@dataclass(eq=False)
class Attachment:
    """One client attached to a console (server side): its frames wait in a bounded queue."""

    peer: Peer
    attached_at: float
    attached_wall: dt.datetime
    limit: int
    writing: bool = False
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, kind: Kind, payload: bytes = b"") -> None:
        """Queue a frame; a client that falls `limit` bytes behind is cut off rather than slowing the console."""
        if self.overflowed.is_set():
            return
        frame = encode(kind, payload)
        if self.queued_bytes + len(frame) > self.limit:
            self.overflowed.set()
            return
        self.queued_bytes += len(frame)
        self.queue.put_nowait(frame)

    def notice(self, text: str) -> None:
        """A message for the operator."""
        self.send(Kind.NOTICE, text.encode())

    async def next_frame(self) -> bytes:
        """The next queued frame."""
        frame = await self.queue.get()
        self.queued_bytes -= len(frame)
        return frame

    def describe(self) -> str:
        """`user (uid, pid) writing since 12:00:00Z`."""
        mode = "writing" if self.writing else "watching"
        return f"{self.peer.describe()} {mode} since {self.attached_wall:%H:%M:%S}Z"


def _patterns(settings: ConsoleSettings) -> list[PatternConfig]:
    configured = {p.name: p for p in settings.patterns}
    defaults = [p for p in DEFAULT_PATTERNS if p.name not in configured] if settings.default_patterns else []
    return defaults + list(settings.patterns)


class ConsoleSession:
    """Keeps one console connected and every byte it sends logged, buffered, matched and fanned out."""

    def __init__(
        self,
        spec: DeviceSpec,
        console: ConsoleConfig,
        settings: ConsoleSettings,
        opener: Opener,
        console_log: ConsoleLog,
        publisher: Publisher,
        clock: Clock,
        auth_backoff: float,
    ) -> None:
        """Nothing connects until `run()`."""
        self.spec = spec
        self.console = console
        self.settings = settings
        self.log = console_log
        self.ring = RingBuffer(settings.ring_buffer_bytes)
        self.detector = PatternDetector(_patterns(settings), settings.context_lines, settings.pattern_interval, clock)
        self.attachments: list[Attachment] = []
        self.writer: Attachment | None = None
        self.stream: ConsoleStream | None = None
        self.state = "starting"  # connected, disconnected, unreachable, unsupported, stopped
        self.on_state: Callable[[str, str], None] | None = None  # the daemon mirrors it into the node's state
        self.connections = 0
        self.received_bytes = 0
        self.changed = asyncio.Condition()  # notified on every state change (tests and attach wait on it)
        self._open = opener
        self._publisher = publisher
        self._clock = clock
        self._auth_backoff = auth_backoff
        self._backoff = Backoff(settings.reconnect_initial, settings.reconnect_max)
        self._rng = random.Random()
        self._available: bool | None = None
        self._short_sessions = 0
        self._flapping = False
        self._disconnected_at: float | None = None
        self._logger = structlog.get_logger(__name__).bind(node=spec.id, console=console.url)
        self._log_retry: asyncio.Task[None] | None = None
        console_log.logger = console_log.logger.bind(node=spec.id)
        console_log.on_failing = self._log_failing
        console_log.on_recovered = self._log_recovered

    # ------------------------------------------------------------------ connection loop

    async def run(self) -> None:
        """Connect, pump output until the connection ends, wait, reconnect — until cancelled."""
        # Whatever the console printed while rackd was not running is missing: the marker makes that visible.
        self.log.mark(f"rackd capturing this console ({self.console.url}); earlier output was not captured")
        if self.log.failing:  # restarted (after a bug) while its log was still failing: keep retrying it
            self._start_log_retry()
        try:
            while True:
                stream = await self._connect()
                if stream is None:
                    return
                started = self._clock.monotonic()
                try:
                    reason = await self._pump(stream)
                finally:
                    self.stream = None
                    await self._close(stream)
                duration = self._clock.monotonic() - started
                await self._set_state("disconnected")
                self._disconnected_at = self._clock.monotonic()
                self.log.mark(f"disconnected: {reason} (after {duration:.3f} s)")
                self._notify_all(f"console disconnected: {reason}")
                self._logger.info("console_disconnected", reason=reason, duration_s=round(duration, 3))
                await self._clock.sleep(self._delay_after(duration))
        finally:
            self._stop_log_retry()
            await self._set_state("stopped")

    async def _connect(self) -> ConsoleStream | None:
        while True:
            outcome = await self._try_open()
            if not isinstance(outcome, Exception):
                await self._connected(outcome)
                return outcome
            if isinstance(outcome, UnsupportedError):
                self.log.mark(f"console unsupported: {outcome}")
                self._logger.error("console_unsupported", error=str(outcome))
                await self._set_state("unsupported")
                return None
            self._unavailable(str(outcome) or type(outcome).__name__)
            await self._set_state("unreachable")
            delay = self._auth_backoff if isinstance(outcome, AuthError) else self._backoff.next_delay()
            await self._clock.sleep(delay)

    async def _try_open(self) -> ConsoleStream | Exception:
        try:
            async with self._clock.timeout(self.settings.open_timeout):
                return await self._open()
        except TimeoutError:
            return DeviceTimeoutError(f"console {self.console.url}: not open within {self.settings.open_timeout} s")
        except RackdError as exc:
            return exc
        except Exception as exc:  # a transport bug must not end the console's reconnect loop
            self._logger.exception("console_open_failed_unexpectedly")
            return exc

    async def _connected(self, stream: ConsoleStream) -> None:
        if self._disconnected_at is not None:
            gap = self._clock.monotonic() - self._disconnected_at
            self.log.mark(f"gap: {gap:.3f} s disconnected, console output in that time was not captured")
        clear = " (unencrypted transport: console bytes cross the network in clear text)"
        self.log.mark(f"connected to {self.console.url}" + (clear if is_unencrypted(self.console) else ""))
        if self._available is False:
            self._logger.info("console_recovered")
        elif self._available is None:
            self._logger.info("console_connected")
        self._available = True
        self.connections += 1
        self.stream = stream
        self._notify_all("console connected")
        await self._set_state("connected")

    def _unavailable(self, error: str) -> None:
        if self._available is not False:  # a transition is logged once, not every failed attempt
            self._logger.warning("console_unavailable", error=error)
            self.log.mark(f"cannot connect: {error}")
            self._available = False

    def _delay_after(self, duration: float) -> float:
        if duration >= self.settings.stable_after:
            self._backoff.reset()
            self._short_sessions = 0
            self._flapping = False
            return self._backoff.next_delay()
        # A device that keeps closing the session (a stale SOL payload, a flapping port) is not hammered.
        self._short_sessions += 1
        if self._short_sessions < self.settings.flap_limit:
            return self._backoff.next_delay()
        wait = self.settings.flap_backoff
        if not self._flapping:
            self._flapping = True
            self._logger.warning("console_flapping", short_sessions=self._short_sessions, backoff_s=wait)
            self.log.mark(
                f"console keeps closing the session ({self._short_sessions} sessions shorter than "
                f"{self.settings.stable_after:g} s): reconnecting every {wait / 2:g}-{wait:g} s"
            )
        return self._rng.uniform(wait / 2, wait)

    async def _pump(self, stream: ConsoleStream) -> str:
        while True:
            try:
                data = await stream.read()
            except RackdError as exc:
                return f"connection lost ({exc})"
            except Exception as exc:  # a transport bug: reconnect rather than end this console's loop
                self._logger.exception("console_read_failed_unexpectedly")
                return f"read failed ({describe(exc)})"
            if not data:
                return "closed by the far end"
            self.output(data)

    async def _close(self, stream: ConsoleStream) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await stream.close()
        except TimeoutError:
            self._logger.warning("console_close_timed_out")
        except Exception:  # close() must never raise; a driver bug here must not end the loop
            self._logger.exception("console_close_failed")

    async def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(self.spec.id, state)
        async with self.changed:
            self.changed.notify_all()

    # ------------------------------------------------------------------ output

    def output(self, data: bytes) -> None:
        """Console bytes: logged first, then buffered, matched and sent to every attached client."""
        self.log.write_device(data)
        self.received_bytes += len(data)
        self.ring.append(self._clock.now(), data)
        for match in self.detector.feed(data):
            self._publish(match)
        for attachment in self.attachments:
            attachment.send(Kind.OUTPUT, data)

    def _publish(self, match: PatternMatch) -> None:
        self._logger.info("console_pattern", pattern=match.name, line=match.line[:200])
        event = Event(
            type=EventType.CONSOLE_PATTERN,
            severity=match.severity,
            message=f"console: {match.name}: {match.line[:200]}",
            observed_at=self._clock.now(),
            source="console",
            data={
                "pattern": match.name,
                "line": match.line,
                "context": list(match.context),
                "suppressed": match.suppressed,
            },
        )
        self._publisher.publish_event(self.spec, event)

    # ------------------------------------------------------------------ the log file's degraded mode

    def _log_failing(self, error: str) -> None:
        """The log file refuses writes (disk full, I/O error): say so on the bus, retry it while output is held."""
        limit_kib = self.log.hold_limit // 1024
        event = Event(
            type=EventType.UNREACHABLE,  # the console log, a source of this node's record, is unavailable
            severity=Severity.WARNING,
            message=f"{self.spec.id}: console log cannot be written ({error}); "
            f"console output held in memory (up to {limit_kib} KiB) until it can",
            observed_at=self._clock.now(),
            source="console_log",
            data={"path": str(self.log.path), "error": error, "hold_limit_bytes": self.log.hold_limit},
        )
        self._publisher.publish_event(self.spec, event)
        self._start_log_retry()

    def _start_log_retry(self) -> None:
        if self._log_retry is not None and not self._log_retry.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a tool writing a log): the next write retries
        self._log_retry = loop.create_task(self._retry_log(), name=f"console-log-retry:{self.spec.id}")

    async def _retry_log(self) -> None:
        # A console that goes quiet while output is held still gets it written once the disk has room again.
        while self.log.failing:
            await self._clock.sleep(RETRY_INTERVAL)
            self.log.retry()

    def _stop_log_retry(self) -> None:
        if self._log_retry is not None:
            self._log_retry.cancel()
            self._log_retry = None

    def _log_recovered(self, outage: Outage) -> None:
        """Everything held was written: say so, with what could not be held."""
        seconds = (outage.until - outage.since).total_seconds()
        message = f"{self.spec.id}: console log written again after {seconds:.1f} s ({outage.error}); "
        if outage.lost_bytes or outage.lost_markers:
            message += f"{outage.lost_bytes} bytes of console output not logged"
        else:
            message += "no console output lost"
        event = Event(
            type=EventType.RECOVERED,
            severity=Severity.WARNING if outage.lost_bytes or outage.lost_markers else Severity.INFO,
            message=message,
            observed_at=self._clock.now(),
            source="console_log",
            data={
                "path": str(self.log.path),
                "error": outage.error,
                "since": outage.since.isoformat(),
                "outage_s": round(seconds, 3),
                "lost_bytes": outage.lost_bytes,
                "lost_markers": outage.lost_markers,
                "lost_from": None if outage.lost_from is None else outage.lost_from.isoformat(),
                "lost_to": None if outage.lost_to is None else outage.lost_to.isoformat(),
            },
        )
        self._publisher.publish_event(self.spec, event)

    # ------------------------------------------------------------------ attached clients

    def attach(self, peer: Peer, want_write: bool, force: bool) -> Attachment:
        """Add a client; it writes if it asked to and nobody else does (or it forces a takeover)."""
        attachment = Attachment(peer, self._clock.monotonic(), self._clock.now(), self.settings.watcher_buffer_bytes)
        self.attachments.append(attachment)
        mode = "watching"
        if want_write and (self.writer is None or force):
            self.take_write(attachment, announce=False)
            mode = "writing"
        self.log.mark(f"attach: {peer.describe()} {mode}")
        self._logger.info("console_attached", peer=peer.describe(), role=peer.role.name.lower(), mode=mode)
        self._notify_all(f"{peer.describe()} attached, {mode}", exclude=attachment)
        return attachment

    def take_write(self, attachment: Attachment, announce: bool = True) -> None:
        """Make `attachment` the writer; the previous writer becomes a watcher and is told who took over."""
        previous = self.writer
        if previous is attachment:
            return
        if previous is not None:
            previous.writing = False
            previous.notice(f"write access taken over by {attachment.peer.describe()}; you are now watching")
            self.log.mark(f"write access: {attachment.peer.describe()} took over from {previous.peer.describe()}")
            self._logger.info(
                "console_write_taken_over", peer=attachment.peer.describe(), previous=previous.peer.describe()
            )
        elif announce:
            self.log.mark(f"write access: {attachment.peer.describe()}")
        attachment.writing = True
        self.writer = attachment

    def detach(self, attachment: Attachment, reason: str) -> None:
        """Remove a client; the audit records for how long it was attached."""
        if attachment not in self.attachments:
            return
        self.attachments.remove(attachment)
        if self.writer is attachment:
            self.writer = None
        duration = self._clock.monotonic() - attachment.attached_at
        self.log.mark(f"detach: {attachment.peer.describe()} after {duration:.1f} s")
        self._logger.info(
            "console_detached",
            peer=attachment.peer.describe(),
            role=attachment.peer.role.name.lower(),
            duration_s=round(duration, 3),
            reason=reason,
        )
        self._notify_all(f"{attachment.peer.describe()} detached")

    def who(self) -> list[str]:
        """Everyone attached."""
        return [attachment.describe() for attachment in self.attachments]

    def _notify_all(self, text: str, exclude: Attachment | None = None) -> None:
        for attachment in self.attachments:
            if attachment is not exclude:
                attachment.notice(text)

    def mark(self, text: str) -> None:
        """A marker line in the log (power actions), also shown to attached clients."""
        self.log.mark(text)
        self._notify_all(text)

    async def write(self, data: bytes) -> None:
        """Send input to the console (never logged: it may be a password)."""
        stream = self.stream
        if stream is None:
            raise DeviceUnreachableError(f"console of {self.spec.id} is not connected ({self.state})")
        await stream.write(data)

    async def send_break(self) -> None:
        """Send a serial BREAK; UnsupportedError where the transport cannot carry one."""
        stream = self.stream
        if stream is None:
            raise DeviceUnreachableError(f"console of {self.spec.id} is not connected ({self.state})")
        await stream.send_break()
        self.log.mark("BREAK sent")

    async def stop(self, reason: str) -> None:
        """Tell attached clients the console goes away, mark the log, close it."""
        for attachment in list(self.attachments):
            attachment.send(Kind.END, reason.encode())
        self.log.mark(reason)
        self._stop_log_retry()
        self.log.close()  # a last try to write what is held
        with contextlib.suppress(RuntimeError):
            await self._set_state("stopped")
