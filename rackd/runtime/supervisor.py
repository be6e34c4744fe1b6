"""The daemon: one root TaskGroup with the bus, a runner per device and the watchdog; clean SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import structlog

from rackd.bus.mqtt import MqttBus
from rackd.config import Config, DeviceSpec, load_config
from rackd.control.operations import EventFeed, FeedPublisher, Operations
from rackd.control.peers import RoleMap
from rackd.control.server import ControlServer
from rackd.drivers.contract import DeviceSession
from rackd.drivers.registry import DriverRegistry
from rackd.errors import ConfigError, DriverNotFoundError
from rackd.runtime.actions import ActionEngine
from rackd.runtime.clock import Clock, SystemClock
from rackd.runtime.cursors import CursorStore
from rackd.runtime.heap import keep_frozen
from rackd.runtime.intake import MqttIntake
from rackd.runtime.rack_power import RackPowerModel
from rackd.runtime.runner import DeviceRunner
from rackd.runtime.state import Availability, SourceState
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
        # One dict shared with the engine, the operations and the rack model: reload mutates it in place.
        self.runners: dict[str, DeviceRunner] = {}
        for spec in config.devices:
            runner = self._make_runner(spec)
            if runner is not None:
                self.runners[spec.id] = runner
        self.runner_tasks: dict[str, asyncio.Task[None]] = {}
        self.engine = ActionEngine(config, self.runners, self.publisher, self.clock, self.state_dir)
        self.intake = MqttIntake(config, self.bus, self.engine)
        self.rack_power = RackPowerModel(config, self.runners, self.publisher, self.clock)
        self.control = ControlServer(settings.daemon.control_socket, _role_map(config))
        self.control.on_denied = lambda peer, op, reason: self.engine.audit_denial(peer.describe(), op, reason)
        self.operations = Operations(config, self.runners, self.engine, self.feed)
        self.operations.register(self.control)
        self.services = [factory(self) for factory in SERVICE_FACTORIES]
        for service in self.services:
            service.register_operations(self.control)
            marker = getattr(service, "mark", None)
            if callable(marker):
                self.engine.console_marker = marker
            sessions = getattr(service, "sessions", None)
            if isinstance(sessions, dict):
                self.engine.consoles = sessions  # console.send / console.break act on the live sessions
            if hasattr(service, "lend_session"):
                service.lend_session = self._lend_session
            if hasattr(service, "state_listener"):
                service.state_listener = self._console_state
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None

    def _console_state(self, node: str, state: str) -> None:
        """Mirror a console's connection state into its node's retained state (`sources.console`)."""
        runner = self.runners.get(node)
        if runner is None:
            return
        availability = _CONSOLE_AVAILABILITY.get(state, Availability.UNKNOWN)
        previous = runner.extra_sources.get("console")
        since = previous.since if previous is not None and previous.availability is availability else self.clock.now()
        error = None if availability is Availability.UP else (None if state in {"starting", "stopped"} else state)
        runner.set_extra_source("console", SourceState(availability, since, error, None))

    async def _lend_session(self, device: str) -> DeviceSession | None:
        """The device's open driver session (ipmi-sol rides the poller's BMC session instead of a second login)."""
        runner = self.runners.get(device)
        if runner is None:
            return None
        return (await runner.session()).session

    def _make_runner(self, spec: DeviceSpec) -> DeviceRunner | None:
        if spec.driver is None:
            return None
        try:
            driver = self.registry.get(spec.driver)
        except DriverNotFoundError:
            log.exception("driver_unavailable", device=spec.id, driver=spec.driver)
            return None
        defaults = self.config.settings.defaults
        return DeviceRunner(spec, driver, self.publisher, self.clock, self.cursors, defaults, self.state_dir)

    def stop(self) -> None:
        """Begin a clean shutdown (SIGTERM/SIGINT)."""
        if not self._stop.is_set():
            log.info("shutdown_requested")
            self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the config (and reopen log files) at the next turn of the loop."""
        log.info("reload_requested")
        self._reload.set()

    def counts(self) -> dict[str, int]:
        """Device counts for the daemon status and systemd STATUS."""
        up = sum(1 for runner in self.runners.values() if runner.available)
        return {"devices": len(self.runners), "reachable": up, "unreachable": len(self.runners) - up}

    async def run(self) -> int:
        """Run until stopped; returns the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        log.info("daemon_starting", site=self.config.site, devices=len(self.runners), config=self.config.source)
        await self.control.start()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                bus_task = group.create_task(self.bus.run(), name="bus")
                for runner in self.runners.values():
                    self._start_runner(runner)
                helpers = [
                    group.create_task(self._status_loop(), name="status"),
                    group.create_task(self._watchdog(bus_task), name="watchdog"),
                    group.create_task(self._reload_loop(), name="reload"),
                    group.create_task(self.engine.recover_interrupted(), name="recover-interrupted"),
                    group.create_task(self.rack_power.run(), name="rack-power"),
                    group.create_task(
                        keep_frozen(
                            # Not before the daemon is ready: the one full pass must not delay its start.
                            [self.bus.first_attempt_done.wait(), *(r.wait_first_poll() for r in self.runners.values())],
                            self.clock,
                            self.engine.idle,
                        ),
                        name="heap",
                    ),
                    *(group.create_task(s.run(), name=type(s).__name__) for s in self.services),
                ]
                await self.bus.first_attempt_done.wait()
                self.notifier.notify("READY=1", f"STATUS={self._status_line()}")
                log.info("daemon_ready")
                await self._stop.wait()
                await self._shutdown()
                for task in helpers:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.control.close()
            self.bus.close_spool()
        log.info("daemon_stopped")
        return 0

    def _start_runner(self, runner: DeviceRunner) -> None:
        assert self._group is not None
        self.runner_tasks[runner.spec.id] = self._group.create_task(runner.run(), name=f"runner:{runner.spec.id}")

    async def _stop_runners(self, ids: list[str]) -> None:
        """Stop some runners: finish their poll (within the grace), log out of their sessions."""
        grace = self.config.settings.daemon.shutdown_grace
        runners = [self.runners[i] for i in ids if i in self.runners]
        tasks = [self.runner_tasks.pop(r.spec.id) for r in runners if r.spec.id in self.runner_tasks]
        for runner in runners:
            runner.request_stop()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()  # abandon polls still running after the grace period
            await asyncio.gather(*tasks, return_exceptions=True)
        closes = {asyncio.ensure_future(runner.aclose()): runner.spec.id for runner in runners}
        if not closes:
            return
        _, pending = await asyncio.wait(closes, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*closes, return_exceptions=True)
        if pending:
            # Only the devices still logging out: at site scale a list of every device hid the few that hung.
            unfinished = sorted(closes[task] for task in pending)
            log.warning("session_logout_timed_out", grace=grace, count=len(unfinished), devices=unfinished)

    async def _shutdown(self) -> None:
        self.notifier.notify("STOPPING=1")
        grace = self.config.settings.daemon.shutdown_grace
        await self.control.close()  # stop intake first
        await self.engine.drain(grace)  # in-flight actions finish, or are reported interrupted below
        await self.engine.aclose()
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(service.aclose() for service in self.services), return_exceptions=True)
        except TimeoutError:
            log.warning("service_close_timed_out", grace=grace)
        await self._stop_runners(list(self.runners))
        try:
            async with asyncio.timeout(grace):
                await self.registry.aclose()
        except TimeoutError:
            log.warning("driver_close_timed_out", grace=grace)
        self.bus.set_counts(self.counts())
        await self.bus.close()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file: add, remove and change devices; untouched devices keep their sessions.

        A config with errors is rejected (each error logged) and the running config kept.
        """
        # `systemctl reload` waits for READY=1 after RELOADING=1 (with the monotonic time of the request).
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        try:
            return await self._apply_reload()
        finally:
            self.notifier.notify("READY=1", f"STATUS={self._status_line()}")

    async def _apply_reload(self) -> bool:
        for service in self.services:
            reopen = getattr(service, "reopen_logs", None)
            if callable(reopen):
                reopen()  # logrotate sends SIGHUP too
        try:
            new = load_config(self.config.source, self.registry)
        except ConfigError as exc:
            log.error(  # noqa: TRY400 - the errors are the message; a traceback would only hide them
                "config_reload_rejected", config=self.config.source, errors=[str(i) for i in exc.issues]
            )
            self.notifier.notify(f"STATUS=config reload rejected ({len(exc.issues)} errors); running the old config")
            return False
        old_settings, new_settings = self.config.settings, new.settings
        for section in ("site", "daemon", "mqtt"):
            if getattr(old_settings, section) != getattr(new_settings, section):
                log.warning("config_change_needs_restart", section=section)
        old = {spec.id: spec for spec in self.config.devices}
        fresh = {spec.id: spec for spec in new.devices}
        removed = sorted(set(old) - set(fresh))
        added = sorted(set(fresh) - set(old))
        changed = sorted(i for i in set(old) & set(fresh) if old[i] != fresh[i])
        await self.engine.wait_idle([*removed, *changed], new_settings.daemon.shutdown_grace)
        await self._stop_runners([i for i in [*removed, *changed] if i in self.runners])
        for device in [*removed, *changed]:
            runner = self.runners.pop(device, None)
            if device in removed and runner is not None:
                self.bus.forget_device(runner.spec)
        self.config = new
        self.engine.configure(new)
        self.intake.configure(new)
        self.rack_power.configure(new)
        self.operations.config = new
        self.control.roles = _role_map(new)
        for device in [*added, *changed]:
            runner = self._make_runner(fresh[device])
            if runner is not None:
                self.runners[device] = runner
                self._start_runner(runner)
        for service in self.services:
            reconfigure = getattr(service, "reload", None)
            if callable(reconfigure):
                result = reconfigure(new)
                if asyncio.iscoroutine(result):
                    await result
        log.info(
            "config_reloaded",
            added=added,
            removed=removed,
            changed=changed,
            unchanged=len(set(old) & set(fresh)) - len(changed),
        )
        return True

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


_CONSOLE_AVAILABILITY = {
    "connected": Availability.UP,
    "disconnected": Availability.DOWN,
    "unreachable": Availability.DOWN,
    "unsupported": Availability.DOWN,
}


def _role_map(config: Config) -> RoleMap:
    control = config.settings.control
    return RoleMap(frozenset(control.viewers), frozenset(control.operators), frozenset(control.admins))


SERVICE_FACTORIES = _service_factories()


async def run_daemon(config: Config, registry: DriverRegistry) -> int:
    """`rackd run`."""
    return await Daemon(config, registry).run()
