"""The console service: one session per configured console, its control operations, log reopen and markers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import Config
from rackd.console.attach import ConsoleOperations
from rackd.console.logfile import ConsoleLog
from rackd.console.session import ConsoleSession
from rackd.console.transports import open_stream
from rackd.control.server import ControlServer
from rackd.drivers.registry import DriverRegistry
from rackd.runtime.backoff import Backoff
from rackd.runtime.clock import Clock

log = structlog.get_logger(__name__)

LOG_DIR_MODE = 0o750


class ConsoleService:
    """Started by the supervisor: `register_operations`, `run` (a task of the root group), `aclose` at shutdown."""

    def __init__(self, config: Config, registry: DriverRegistry, publisher: Publisher, clock: Clock) -> None:
        """One session per node with a `console` table; nothing connects until `run()`."""
        settings = config.settings
        console_settings = settings.console
        self.log_dir = settings.daemon.console_log_dir
        self._clock = clock
        state_dir = settings.daemon.state_dir / "console"
        self.sessions: dict[str, ConsoleSession] = {}
        for spec in config.devices:
            if spec.console is None:
                continue
            console_log = ConsoleLog(
                self.log_dir / f"{spec.id}.log",
                clock,
                console_settings.timestamp_format,
                console_settings.rotate_bytes,
                console_settings.rotate_keep,
            )
            opener = functools.partial(open_stream, spec, spec.console, registry, state_dir)
            self.sessions[spec.id] = ConsoleSession(
                spec,
                spec.console,
                console_settings,
                opener,
                console_log,
                publisher,
                clock,
                settings.defaults.auth_backoff,
            )
        self.operations = ConsoleOperations(self.sessions, console_settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._sighup = False

    def register_operations(self, control: ControlServer) -> None:
        """`console.attach` and `console.send`."""
        self.operations.register(control)

    async def run(self) -> None:
        """Keep every console connected until cancelled; SIGHUP reopens the logs (external logrotate)."""
        if not self.sessions:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(LOG_DIR_MODE)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread: no signals
            loop.add_signal_handler(signal.SIGHUP, self.reopen_logs)
            self._sighup = True
        log.info("console_service_starting", consoles=len(self.sessions), log_dir=str(self.log_dir))
        self._tasks = [
            asyncio.create_task(self._keep(session), name=f"console:{node}") for node, session in self.sessions.items()
        ]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _keep(self, session: ConsoleSession) -> None:
        backoff = Backoff(5.0, 300.0)
        while True:
            try:
                await session.run()
            except Exception:  # a bug in one console must not stop the others
                log.exception("console_session_failed", node=session.spec.id)
                await self._clock.sleep(backoff.next_delay())
            else:
                return  # unsupported: nothing more to do for this console

    async def aclose(self) -> None:
        """Disconnect every console, mark and close the logs."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions.values():
            await session.stop("rackd stopping: console no longer captured")
        if self._sighup:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False

    def mark(self, node_id: str, text: str) -> None:
        """Write a marker line (a power action) into a node's console log; unknown nodes are ignored."""
        session = self.sessions.get(node_id)
        if session is not None:
            session.mark(text)

    def reopen_logs(self) -> None:
        """Reopen every console log (after an external logrotate renamed them)."""
        for session in self.sessions.values():
            session.log.reopen()
        log.info("console_logs_reopened", consoles=len(self.sessions))
