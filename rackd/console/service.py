"""The console service: one session per configured console, its control operations, reload, log reopen, markers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import Config, DeviceSpec
from rackd.console.attach import ConsoleOperations
from rackd.console.logfile import ConsoleLog
from rackd.console.session import ConsoleSession
from rackd.console.transports import SessionLender, open_stream
from rackd.control.server import ControlServer
from rackd.drivers.contract import DeviceSession
from rackd.drivers.registry import DriverRegistry
from rackd.runtime.backoff import Backoff
from rackd.runtime.clock import Clock

log = structlog.get_logger(__name__)

LOG_DIR_MODE = 0o750


class ConsoleService:
    """Started by the supervisor: `register_operations`, `run` (a task of the root group), `aclose` at shutdown.

    The supervisor also calls `reopen_logs()` on SIGHUP (external logrotate) and `reload(config)` after a
    config reload; power actions call `mark(node, text)`.
    """

    def __init__(self, config: Config, registry: DriverRegistry, publisher: Publisher, clock: Clock) -> None:
        """One session per node with a `console` table; nothing connects until `run()`."""
        self._registry = registry
        self._publisher = publisher
        self._clock = clock
        self._config = config
        self.sessions: dict[str, ConsoleSession] = {}
        self.lend_session: SessionLender | None = None  # set by the daemon: ipmi-sol rides the poller's session
        self.state_listener: Callable[[str, str], None] | None = None  # set by the daemon: (node, console state)
        self.operations = ConsoleOperations(self.sessions, config.settings.console)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._stopped = asyncio.Event()
        for spec in config.devices:
            if spec.console is not None:
                self.sessions[spec.id] = self._make_session(spec)

    @property
    def log_dir(self) -> Path:
        """Where the console logs are."""
        return self._config.settings.daemon.console_log_dir

    def _make_session(self, spec: DeviceSpec) -> ConsoleSession:
        assert spec.console is not None
        settings = self._config.settings
        console_settings = settings.console
        console_log = ConsoleLog(
            self.log_dir / f"{spec.id}.log",
            self._clock,
            console_settings.timestamp_format,
            console_settings.rotate_bytes,
            console_settings.rotate_keep,
        )
        state_dir = settings.daemon.state_dir / "console"
        opener = functools.partial(open_stream, spec, spec.console, self._registry, state_dir, self._lend_session)
        session = ConsoleSession(
            spec,
            spec.console,
            console_settings,
            opener,
            console_log,
            self._publisher,
            self._clock,
            settings.defaults.auth_backoff,
        )
        session.on_state = self._state_changed
        return session

    def _state_changed(self, node: str, state: str) -> None:
        if self.state_listener is not None:
            self.state_listener(node, state)

    async def _lend_session(self, node: str) -> DeviceSession | None:
        return None if self.lend_session is None else await self.lend_session(node)

    def register_operations(self, control: ControlServer) -> None:
        """`console.attach` and `console.send`."""
        self.operations.register(control)

    async def run(self) -> None:
        """Keep every console connected until cancelled or closed."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(LOG_DIR_MODE)
        log.info("console_service_starting", consoles=len(self.sessions), log_dir=str(self.log_dir))
        self._running = True
        for node, session in self.sessions.items():
            self._start(node, session)
        try:
            await self._stopped.wait()
        finally:
            self._running = False
            for task in self._tasks.values():
                task.cancel()

    def _start(self, node: str, session: ConsoleSession) -> None:
        self._tasks[node] = asyncio.create_task(self._keep(session), name=f"console:{node}")

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

    async def _retire(self, node: str, reason: str) -> None:
        session = self.sessions.pop(node)
        task = self._tasks.pop(node, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if session.state != "starting":
            await session.stop(reason)

    async def reload(self, config: Config) -> None:
        """Apply a reloaded config: consoles added, removed or changed; untouched consoles stay connected."""
        fresh = {spec.id: spec for spec in config.devices if spec.console is not None}
        old_settings = self._config.settings
        restart_all = (
            config.settings.console != old_settings.console
            or config.settings.daemon.console_log_dir != old_settings.daemon.console_log_dir
            or config.settings.daemon.state_dir != old_settings.daemon.state_dir
        )
        for node, session in list(self.sessions.items()):
            if node not in fresh:
                await self._retire(node, "console removed from the config")
            elif restart_all or fresh[node] != session.spec:
                await self._retire(node, "console reconfigured")
        self._config = config
        self.operations.settings = config.settings.console
        if self._running:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for node, spec in fresh.items():
            if node not in self.sessions:
                self.sessions[node] = self._make_session(spec)
                if self._running:
                    self._start(node, self.sessions[node])
        log.info("console_service_reloaded", consoles=len(self.sessions))

    async def aclose(self) -> None:
        """Disconnect every console, mark and close the logs."""
        self._stopped.set()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        for session in self.sessions.values():
            if session.state != "starting":
                await session.stop("rackd stopping: console no longer captured")

    def mark(self, node_id: str, text: str) -> None:
        """Write a marker line (a power action) into a node's console log; unknown nodes are ignored."""
        session = self.sessions.get(node_id)
        if session is not None:
            session.mark(text)

    def reopen_logs(self) -> None:
        """Reopen every console log (after an external logrotate renamed them; the supervisor calls it on SIGHUP)."""
        for session in self.sessions.values():
            session.log.reopen()
        log.info("console_logs_reopened", consoles=len(self.sessions))
