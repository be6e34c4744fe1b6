"""The daemon: one root TaskGroup with the bus, a runner per device and the watchdog; clean SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import structlog

from rackd.bus.mqtt import MqttBus
from rackd.config import Config
from rackd.control.operations import EventFeed, FeedPublisher, Operations
from rackd.control.peers import RoleMap
from rackd.control.server import ControlServer
from rackd.drivers.registry import DriverRegistry
from rackd.errors import DriverNotFoundError
from rackd.runtime.actions import ActionEngine
from rackd.runtime.clock import Clock, SystemClock
from rackd.runtime.cursors import CursorStore
from rackd.runtime.intake import MqttIntake
from rackd.runtime.rack_power import RackPowerModel
from rackd.runtime.runner import DeviceRunner
from rackd.systemd import Notifier

log = structlog.get_logger(__name__)


class Service(Protocol):
    """A long-running part of the daemon beside the runners (console service, command intake)."""

    def register_operations(self, control: ControlServer) -> None:
        """Add its control-socket operations."""

    async def run(self) -> None:
        """Run until cancelled; faults of single devices never escape."""

    async def aclose(self) -> None:
        """Release everything at shutdown (within the grace period)."""


def _service_factories() -> list[Callable[[Daemon], Service]]:
    factories: list[Callable[[Daemon], Service]] = []
    try:
        from rackd.console.service import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415 - arrives with the console issue
            ConsoleService,
        )
    except ModuleNotFoundError as exc:
        if exc.name != "rackd.console.service":
            raise
    else:
        factories.append(lambda daemon: ConsoleService(daemon.config, daemon.registry, daemon.publisher, daemon.clock))
    return factories


def rackd_version() -> str:
    """The installed version of rackd."""
    try:
        return version("rackd")
    except PackageNotFoundError:
        return "0+unknown"


def prepare_dir(path: Path, mode: int) -> None:
    """Create a directory the daemon owns, with the given mode."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)


class Daemon:
    """Everything one `rackd run` owns."""

    def __init__(self, config: Config, registry: DriverRegistry, clock: Clock | None = None) -> None:
        """Build the bus and one runner per device that has a driver."""
        self.config = config
        self.registry = registry
        self.clock = clock or SystemClock()
        settings = config.settings
        self.state_dir = settings.daemon.state_dir
        prepare_dir(self.state_dir, 0o750)
        self.bus = MqttBus(
            settings.mqtt, config.site, settings.daemon.instance, self.state_dir, self.clock, rackd_version()
        )
        self.cursors = CursorStore(self.state_dir / "cursors.json")
        self.feed = EventFeed()
        self.publisher = FeedPublisher(self.bus, self.feed)
        self.runners: list[DeviceRunner] = []
        for spec in config.devices:
            if spec.driver is None:
                continue
            try:
                driver = registry.get(spec.driver)
            except DriverNotFoundError:
                log.exception("driver_unavailable", device=spec.id, driver=spec.driver)
                continue
            self.runners.append(
                DeviceRunner(spec, driver, self.publisher, self.clock, self.cursors, settings.defaults, self.state_dir)
            )
        by_id = {runner.spec.id: runner for runner in self.runners}
        self.engine = ActionEngine(config, by_id, self.publisher, self.clock, self.state_dir)
        self.intake = MqttIntake(config, self.bus, self.engine)
        self.rack_power = RackPowerModel(config, by_id, self.publisher, self.clock)
        control = settings.control
        self.control = ControlServer(
            settings.daemon.control_socket,
            RoleMap(frozenset(control.viewers), frozenset(control.operators), frozenset(control.admins)),
        )
        self.control.on_denied = lambda peer, op, reason: self.engine.audit_denial(peer.describe(), op, reason)
        Operations(config, by_id, self.engine, self.feed).register(self.control)
        self.services = [factory(self) for factory in SERVICE_FACTORIES]
        for service in self.services:
            service.register_operations(self.control)
            marker = getattr(service, "mark", None)
            if callable(marker):
                self.engine.console_marker = marker
        self.notifier = Notifier()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Begin a clean shutdown (SIGTERM/SIGINT)."""
        if not self._stop.is_set():
            log.info("shutdown_requested")
            self._stop.set()

    def counts(self) -> dict[str, int]:
        """Device counts for the daemon status and systemd STATUS."""
        up = sum(1 for runner in self.runners if runner.available)
        return {"devices": len(self.runners), "reachable": up, "unreachable": len(self.runners) - up}

    async def run(self) -> int:
        """Run until stopped; returns the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        log.info("daemon_starting", site=self.config.site, devices=len(self.runners), config=self.config.source)
        await self.control.start()
        try:
            async with asyncio.TaskGroup() as group:
                bus_task = group.create_task(self.bus.run(), name="bus")
                runner_tasks = [
                    group.create_task(runner.run(), name=f"runner:{runner.spec.id}") for runner in self.runners
                ]
                helpers = [
                    group.create_task(self._status_loop(), name="status"),
                    group.create_task(self._watchdog(bus_task), name="watchdog"),
                    group.create_task(self.engine.recover_interrupted(), name="recover-interrupted"),
                    group.create_task(self.rack_power.run(), name="rack-power"),
                    *(group.create_task(s.run(), name=type(s).__name__) for s in self.services),
                ]
                await self.bus.first_attempt_done.wait()
                self.notifier.notify("READY=1", f"STATUS={self._status_line()}")
                log.info("daemon_ready")
                await self._stop.wait()
                await self._shutdown(runner_tasks)
                for task in helpers:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.control.close()
            self.bus.close_spool()
        log.info("daemon_stopped")
        return 0

    async def _shutdown(self, runner_tasks: list[asyncio.Task[None]]) -> None:
        self.notifier.notify("STOPPING=1")
        grace = self.config.settings.daemon.shutdown_grace
        await self.control.close()  # stop intake first
        await self.engine.drain(grace)  # in-flight actions finish, or are reported interrupted below
        await self.engine.aclose()
        for runner in self.runners:
            runner.request_stop()
        if runner_tasks:
            _, pending = await asyncio.wait(runner_tasks, timeout=grace)
            for task in pending:
                task.cancel()  # abandon polls still running after the grace period
            await asyncio.gather(*runner_tasks, return_exceptions=True)
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(service.aclose() for service in self.services), return_exceptions=True)
                await asyncio.gather(*(runner.aclose() for runner in self.runners), return_exceptions=True)
                await self.registry.aclose()
        except TimeoutError:
            log.warning("session_logout_timed_out", grace=grace)
        self.bus.set_counts(self.counts())
        await self.bus.close()

    def _status_line(self) -> str:
        counts = self.counts()
        broker = "connected" if self.bus.connected.is_set() else "disconnected"
        return f"{counts['reachable']}/{counts['devices']} devices reachable, broker {broker}"

    async def _status_loop(self) -> None:
        last = ""
        while True:
            self.bus.set_counts(self.counts())
            line = self._status_line()
            if line != last:
                self.notifier.notify(f"STATUS={line}")
                last = line
            await self.clock.sleep(1.0)

    async def _watchdog(self, bus_task: asyncio.Task[None]) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            # Fed only while the loop turns and the bus task lives; device health never stops the feed.
            if not bus_task.done():
                self.notifier.notify("WATCHDOG=1")
            await self.clock.sleep(interval)


SERVICE_FACTORIES = _service_factories()


async def run_daemon(config: Config, registry: DriverRegistry) -> int:
    """`rackd run`."""
    return await Daemon(config, registry).run()
