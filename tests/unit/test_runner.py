"""The device runner on a fast-forwarded clock: schedule, deadlines, backoff, availability, events."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from structlog.testing import capture_logs

from rackd.config import Config, DeviceSpec
from rackd.drivers.contract import Capability, DriverOptions, SessionContext
from rackd.drivers.deadline import current_deadline
from rackd.errors import DeviceTimeoutError
from rackd.model import EventType, Health, PowerState, SensorKind
from rackd.runtime.backoff import phase_offset
from rackd.runtime.cursors import CursorStore
from rackd.runtime.runner import INVENTORY_MAX_AGE, SESSION_FREE_MARGIN, DeviceRunner
from rackd.testing.clock import ManualClock
from rackd.testing.fake_driver import WORLD, FakeDevice, FakeDriver, FakeFault, FakeOptions, FakeReadingSpec
from rackd.testing.recording_bus import RecordingPublisher

CONFIG = """
[site]
name = "t"
[defaults]
poll_interval = 10
call_timeout = 3
open_timeout = 5
backoff_initial = 2
backoff_max = 60
auth_backoff = 900
[[node]]
id = "gpu-01"
rack = "r1"
bmc = { driver = "fake", host = "a", log_entries_per_poll = 2 }
[[node]]
id = "gpu-02"
rack = "r1"
bmc = { driver = "fake", host = "b" }
"""


class MaxRandom(random.Random):
    """Jitter at its upper bound, so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Harness:
    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.config = config
        self.clock = ManualClock()
        WORLD.sleep = self.clock.sleep
        self.bus = RecordingPublisher()
        self.cursors = CursorStore(tmp_path / "cursors.json")
        self.tmp_path = tmp_path
        self.tasks: list[asyncio.Task[None]] = []
        self.runners: dict[str, DeviceRunner] = {}

    def runner(self, device: str, driver: Any = None, rng: random.Random | None = None) -> DeviceRunner:
        spec = self.config.device(device)
        runner = DeviceRunner(
            spec,
            driver or FakeDriver(),
            self.bus,
            self.clock,
            self.cursors,
            self.config.settings.defaults,
            self.tmp_path,
            rng or MaxRandom(),
        )
        self.runners[device] = runner
        return runner

    def start(self, *devices: str) -> None:
        for device in devices:
            runner = self.runners.get(device) or self.runner(device)
            self.tasks.append(asyncio.create_task(runner.run()))

    def device(self, host: str) -> FakeDevice:
        return WORLD.devices[host]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for runner in self.runners.values():
            await runner.aclose()


@pytest.fixture
def harness(load: Callable[[str], Config], tmp_path: Path) -> Harness:
    return Harness(load(CONFIG), tmp_path)


async def test_polls_follow_interval_and_phase_offset(harness: Harness) -> None:
    harness.start("gpu-01", "gpu-02")
    await harness.clock.advance(45)
    for device in ("gpu-01", "gpu-02"):
        phase = phase_offset(device, 10)
        expected = [phase + k * 10 for k in range(5) if phase + k * 10 <= 45]
        assert _telemetry_offsets(harness, device) == pytest.approx(expected)
    assert phase_offset("gpu-01", 10) != phase_offset("gpu-02", 10)
    await harness.stop()


async def test_overrunning_poll_skips_ticks_instead_of_piling_up(load: Callable[[str], Config], tmp_path: Path) -> None:
    harness = Harness(load(CONFIG.replace("call_timeout = 3", "call_timeout = 30")), tmp_path)
    WORLD.device(FakeOptions(host="b")).call_delay = 5  # 3 calls per poll: 15 s against a 10 s interval
    harness.start("gpu-02")
    await harness.clock.advance(200)
    runner = harness.runners["gpu-02"]
    assert runner.skipped_ticks > 0
    assert runner.available
    starts = [t - 15 for t in _telemetry_offsets(harness, "gpu-02")[1:]]  # telemetry is stamped at poll end
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps
    assert all(gap == pytest.approx(20) for gap in gaps), gaps  # every other tick skipped, never back to back
    await harness.stop()


def _telemetry_offsets(harness: Harness, device: str) -> list[float]:
    base = harness.clock.epoch
    return [(ts - base).total_seconds() for d, _, _, ts in harness.bus.telemetry if d == device]


async def test_hung_device_costs_only_its_own_deadline(harness: Harness) -> None:
    harness.start("gpu-01", "gpu-02")
    await harness.clock.advance(11)
    polls_b = len(_telemetry_offsets(harness, "gpu-02"))
    WORLD.devices["a"].fault = FakeFault.HANG
    with capture_logs() as logs:
        await harness.clock.advance(100)
    # The healthy device kept its schedule: one poll per 10 s.
    assert len(_telemetry_offsets(harness, "gpu-02")) - polls_b == 10
    hung = harness.runners["gpu-01"]
    assert not hung.available
    assert hung.source.error is not None
    assert "DeviceTimeoutError" in hung.source.error
    assert [e["event"] for e in logs if e.get("device") == "gpu-01"].count("device_unavailable") == 1
    # Every session that timed out was discarded and logged out, none leaked.
    device = WORLD.devices["a"]
    await harness.clock.advance(6)
    assert device.opens >= 2
    assert device.open_sessions <= 1
    await harness.stop()
    assert device.open_sessions == 0


async def test_backoff_is_exponential_full_jitter_and_capped(harness: Harness) -> None:
    runner = harness.runner("gpu-02")
    harness.start("gpu-02")
    await harness.clock.advance(11)
    WORLD.devices["b"].fault = FakeFault.UNREACHABLE
    harness.clock.sleeps.clear()
    await harness.clock.advance(400)
    backoffs = [s for s in harness.clock.sleeps if s > 0]
    # MaxRandom puts the jitter at its bound: 2, 4, 8, 16, 32, then capped at 60.
    assert backoffs[:7] == [2, 4, 8, 16, 32, 60, 60]
    assert runner.failures == len(backoffs)
    await harness.stop()


async def test_full_jitter_spreads_retries(harness: Harness) -> None:
    runner = harness.runner("gpu-02", rng=random.Random(7))
    harness.start("gpu-02")
    await harness.clock.advance(11)
    WORLD.devices["b"].fault = FakeFault.UNREACHABLE
    harness.clock.sleeps.clear()
    await harness.clock.advance(300)
    delays = [s for s in harness.clock.sleeps if s > 0][:6]
    caps = [2, 4, 8, 16, 32, 60]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)
    assert runner.failures >= 6
    await harness.stop()


async def test_auth_failure_waits_long_and_fixed(harness: Harness) -> None:
    WORLD.device(FakeOptions(host="b")).fault = FakeFault.AUTH
    runner = harness.runner("gpu-02")
    harness.start("gpu-02")
    await harness.clock.advance(3600)
    # One login per 15 minutes at most: the account never locks.
    assert runner.open_attempts <= 5
    assert WORLD.devices["b"].opens == runner.open_attempts
    assert "AuthError" in (runner.source.error or "")
    await harness.stop()


async def test_a_session_limit_with_a_known_wait_is_retried_then_not_later(harness: Harness) -> None:
    # The IPMI driver counts a BMC's sessions itself and says when one frees: a growing backoff would keep a device
    # that was never up waiting long after that. Without a known wait, the usual backoff.
    device = WORLD.device(FakeOptions(host="b"))
    device.fault, device.session_frees_in = FakeFault.SESSION_LIMIT, 3.0
    runner = harness.runner("gpu-02")
    harness.start("gpu-02")
    await harness.clock.advance(phase_offset("gpu-02", 10) + 0.01)  # the first poll is refused
    harness.clock.sleeps.clear()
    await harness.clock.advance(20)
    waits = [s for s in harness.clock.sleeps if s > 0]
    assert waits[:4] == pytest.approx([3.0 + SESSION_FREE_MARGIN] * 4)  # MaxRandom: a backoff would be 2, 4, 8...
    assert "SessionLimitError" in (runner.source.error or "")
    device.session_frees_in = None
    harness.clock.sleeps.clear()
    await harness.clock.advance(40)
    assert [s for s in harness.clock.sleeps if s > 0][:3] == [2, 4, 8]
    device.fault = FakeFault.NONE
    await harness.clock.advance(61)  # the backoff's cap in this config
    assert runner.available
    await harness.stop()


async def test_availability_transitions_are_logged_and_published_once(harness: Harness) -> None:
    harness.start("gpu-02")
    with capture_logs() as logs:
        await harness.clock.advance(11)
        WORLD.devices["b"].fault = FakeFault.UNREACHABLE
        await harness.clock.advance(300)
        WORLD.devices["b"].fault = FakeFault.NONE
        await harness.clock.advance(120)
    names = [entry["event"] for entry in logs if entry.get("device") == "gpu-02"]
    assert names.count("device_available") == 1
    assert names.count("device_unavailable") == 1
    assert names.count("device_recovered") == 1
    assert len(harness.bus.events_of(EventType.UNREACHABLE)) == 1
    assert len(harness.bus.events_of(EventType.RECOVERED)) == 1
    assert harness.runners["gpu-02"].failures > 3
    state = harness.bus.last_state("gpu-02")
    assert state is not None
    assert state.sources["bmc"].availability == "up"
    await harness.stop()


class BuggyDriver(FakeDriver):
    name: ClassVar[str] = "buggy"
    capabilities: ClassVar[frozenset[Capability]] = FakeDriver.capabilities
    options_model: ClassVar[type[DriverOptions]] = FakeOptions

    async def open(self, context: SessionContext, options: Any) -> Any:
        session = await super().open(context, options)

        async def broken() -> Any:
            return 1 / 0

        session.read_sensors = broken  # type: ignore[method-assign]  # inject a driver bug
        return session


async def test_a_driver_bug_is_contained_in_its_runner(harness: Harness) -> None:
    harness.runner("gpu-01", driver=BuggyDriver())
    harness.start("gpu-01", "gpu-02")
    with capture_logs() as logs:
        await harness.clock.advance(100)
    assert any(entry["event"] == "driver_bug" for entry in logs)
    assert not harness.runners["gpu-01"].available
    assert "ZeroDivisionError" in (harness.runners["gpu-01"].source.error or "")
    assert len(_telemetry_offsets(harness, "gpu-02")) == 10
    await harness.stop()


async def test_power_change_log_entries_and_cursor_survive_restart(harness: Harness, tmp_path: Path) -> None:
    harness.start("gpu-01")
    await harness.clock.advance(35)
    # First read only positions the cursor; each later poll yields two records.
    entries = harness.bus.events_of(EventType.LOG_ENTRY)
    polls = harness.runners["gpu-01"].polls
    assert len(entries) == 2 * (polls - 1)
    assert [e.data["seq"] for e in entries] == list(range(3, 3 + len(entries)))
    WORLD.devices["a"].power["chassis"] = PowerState.OFF
    await harness.clock.advance(10)
    (changed,) = harness.bus.events_of(EventType.POWER_CHANGED)
    assert changed.data == {"target": "chassis", "from": "on", "to": "off"}
    await harness.stop()
    seen = len(harness.bus.events_of(EventType.LOG_ENTRY))

    # A new runner (daemon restart) resumes from the stored cursor: no replay, no gap.
    restarted = Harness(harness.config, tmp_path)
    restarted.bus = harness.bus
    restarted.start("gpu-01")
    await restarted.clock.advance(15)
    seqs = [e.data["seq"] for e in harness.bus.events_of(EventType.LOG_ENTRY)]
    assert len(seqs) > seen
    assert seqs == sorted(set(seqs))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await restarted.stop()


async def test_threshold_crossing_raises_one_event(harness: Harness) -> None:
    harness.start("gpu-02")
    await harness.clock.advance(11)
    device = WORLD.devices["b"]
    device.readings = [
        FakeReadingSpec(sensor="inlet_temp", kind=SensorKind.TEMPERATURE, value=41.0, health=Health.CRITICAL)
    ]
    await harness.clock.advance(30)
    (crossed,) = harness.bus.events_of(EventType.THRESHOLD_CROSSED)
    assert crossed.severity == "critical"
    assert crossed.data["sensor"] == "inlet_temp"
    assert crossed.data["from"] == "ok"
    state = harness.bus.last_state("gpu-02")
    assert state is not None
    assert state.health is Health.CRITICAL
    assert state.figures["hottest_temp"] == 41.0
    await harness.stop()


def test_spec_is_hashable_for_reload(harness: Harness) -> None:
    spec: DeviceSpec = harness.config.device("gpu-01")
    assert spec == harness.config.device("gpu-01")


async def test_an_unreadable_sensor_is_not_a_threshold_crossing(harness: Harness) -> None:
    harness.start("gpu-02")
    await harness.clock.advance(11)
    device = WORLD.devices["b"]
    for health in (Health.UNKNOWN, Health.OK, Health.UNKNOWN, Health.CRITICAL):
        device.readings = [FakeReadingSpec(sensor="gpu1_temp", kind=SensorKind.TEMPERATURE, value=None, health=health)]
        await harness.clock.advance(10)
    (crossed,) = harness.bus.events_of(EventType.THRESHOLD_CROSSED)  # only ok → critical, across the gap
    assert (crossed.data["from"], crossed.data["to"]) == ("ok", "critical")
    await harness.stop()


async def _slow_poll_under_way(harness: Harness, device: str, host: str) -> DeviceRunner:
    """Run `device` past its first poll, make each call take 2 s, and stop 0.5 s into its next poll."""
    runner = harness.runners.get(device) or harness.runner(device)
    started = harness.clock.monotonic()
    harness.start(device)
    phase = phase_offset(device, 10)
    await harness.clock.advance(phase + 1)  # the first poll (calls take no time) is over
    assert runner.polls == 1
    harness.device(host).call_delay = 2  # each later poll: power, sensors, log = 6 s
    await harness.clock.advance(started + phase + 10.5 - harness.clock.monotonic())
    return runner


async def test_a_command_does_not_wait_for_the_poll_in_progress(harness: Harness) -> None:
    runner = await _slow_poll_under_way(harness, "gpu-02", "b")
    command = asyncio.create_task(runner.read_power("chassis"))
    await harness.clock.advance(2)  # one call's time: the poll is 2.5 s into its 6 s
    assert command.done()
    assert command.result() is PowerState.ON
    assert runner.polls == 1  # the poll is still under way
    await harness.clock.advance(4)
    assert runner.polls == 2
    await harness.stop()


async def test_a_poll_does_not_report_a_power_state_older_than_a_commands(harness: Harness) -> None:
    runner = await _slow_poll_under_way(harness, "gpu-02", "b")
    await harness.clock.advance(2)  # the poll has read the chassis on; its sensors and log take 4 s more
    harness.device("b").power["chassis"] = PowerState.OFF
    command = asyncio.create_task(runner.read_power("chassis"))
    await harness.clock.advance(2)
    assert command.result() is PowerState.OFF
    await harness.clock.advance(2.5)  # the poll ended, with the "on" it read before the command's "off"
    assert runner.polls == 2
    assert runner.power["chassis"] is PowerState.OFF
    changes = [(e.data["from"], e.data["to"]) for e in harness.bus.events_of(EventType.POWER_CHANGED)]
    assert changes == [("on", "off")]
    await harness.stop()


async def test_a_poll_whose_session_a_failed_command_discarded_polls_again_without_going_down(
    harness: Harness,
) -> None:
    runner = await _slow_poll_under_way(harness, "gpu-02", "b")
    device = harness.device("b")
    device.call_delay, device.fault = 0, FakeFault.TIMEOUT  # the command's call fails at once
    with pytest.raises(DeviceTimeoutError):
        await runner.read_power("chassis")
    device.call_delay, device.fault = 2, FakeFault.NONE
    with capture_logs() as logs:
        await harness.clock.advance(20)
    # The poll's call failed with the session the command discarded: the command reported the failure; the poll
    # went again at once on a fresh session, and the device never went down.
    assert "poll_session_lost_to_command" in [e["event"] for e in logs]
    assert device.opens == 2
    assert runner.available
    assert runner.failures == 0
    assert harness.bus.events_of(EventType.UNREACHABLE) == []
    await harness.stop()


async def test_a_command_read_whose_session_a_failing_poll_discarded_is_sent_again(harness: Harness) -> None:
    runner = await _slow_poll_under_way(harness, "gpu-02", "b")
    device = harness.device("b")
    await harness.clock.advance(1)  # 1.5 s into the poll: its power read ends at 2 s
    command = asyncio.create_task(runner.read_power("chassis"))  # in flight until 3.5 s
    device.fault = FakeFault.TIMEOUT
    await harness.clock.advance(0.75)  # the poll's call timed out at 2 s and discarded the session
    assert not runner.available
    device.fault = FakeFault.NONE
    with capture_logs() as logs:
        await harness.clock.advance(4)  # the read ends at 3.5 s, and is sent again on a fresh session: 5.5 s
    # The read failed with its session; it was sent again on a fresh one and answered.
    assert command.result() is PowerState.ON
    assert "command_read_repeated" in [e["event"] for e in logs]
    await harness.stop()


class OrderRecordingDriver(FakeDriver):
    """Records, for every login, power and sensor read, when it ran and the queue order the runtime gave it."""

    name: ClassVar[str] = "order-recording"
    capabilities: ClassVar[frozenset[Capability]] = FakeDriver.capabilities
    options_model: ClassVar[type[DriverOptions]] = FakeOptions

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, float]] = []  # (when, order)

    def record(self) -> None:
        deadline = current_deadline()
        assert deadline is not None
        self.calls.append((self.clock.monotonic(), deadline.order))

    async def open(self, context: SessionContext, options: Any) -> Any:
        self.record()
        session = await super().open(context, options)
        get_power, read_sensors = session.get_power, session.read_sensors

        async def recorded_get_power(target: str) -> PowerState:
            self.record()
            return await get_power(target)

        async def recorded_read_sensors() -> Any:
            self.record()
            return await read_sensors()

        session.get_power = recorded_get_power  # type: ignore[method-assign]  # observe the runtime's queue order
        session.read_sensors = recorded_read_sensors  # type: ignore[method-assign]
        return session


async def test_the_retry_of_a_failed_poll_queues_as_that_poll_did_while_the_device_was_up(harness: Harness) -> None:
    driver = OrderRecordingDriver(harness.clock)
    harness.runner("gpu-02", driver=driver)
    tick = harness.clock.monotonic() + phase_offset("gpu-02", 10)
    harness.start("gpu-02")
    await harness.clock.advance(tick + 0.5 - harness.clock.monotonic())  # the first poll: fine
    device = harness.device("b")
    device.fault = FakeFault.TIMEOUT
    await harness.clock.advance(
        tick + 10.5 - harness.clock.monotonic()
    )  # the poll at tick + 10 failed at once; the retry waits 2 s
    device.fault = FakeFault.NONE
    await harness.clock.advance(tick + 12.5 - harness.clock.monotonic())
    retry = [order for when, order in driver.calls if when == pytest.approx(tick + 12)]
    assert retry  # the retry logged in, read power and sensors at tick + 12, queued as the failed poll at tick + 10
    assert retry == pytest.approx([tick + 10] * len(retry))
    assert harness.runners["gpu-02"].available

    # A device that is down already gets no such place: its retries queue by their own time.
    device.fault = FakeFault.TIMEOUT
    await harness.clock.advance(
        tick + 24.5
    )  # the poll at tick + 22 failed (the device was up - harness.clock.monotonic()), its retry too
    device.fault = FakeFault.NONE
    await harness.clock.advance(
        tick + 28.5
    )  # the next retry, at tick + 28 (backoff 4 s - harness.clock.monotonic()), succeeds
    assert [order for when, order in driver.calls if when == pytest.approx(tick + 24)] == pytest.approx([tick + 22])
    # (the login of the retry at tick + 24 failed: the device went down)
    later = [order for when, order in driver.calls if when == pytest.approx(tick + 28)]
    assert later
    assert later == pytest.approx([tick + 28] * len(later))
    assert harness.runners["gpu-02"].available
    await harness.stop()


async def test_a_new_session_reuses_the_inventory_until_it_is_an_hour_old(harness: Harness) -> None:
    start = harness.clock.monotonic()
    harness.start("gpu-02")
    await harness.clock.advance(11)
    device = harness.device("b")
    assert (device.opens, device.inventory_reads) == (1, 1)

    async def lose_the_session() -> None:
        """The next poll fails (its session is discarded); the retry 2 s later logs in again and succeeds."""
        next_tick = start + _telemetry_offsets(harness, "gpu-02")[-1] + 10
        opens = device.opens
        device.fault = FakeFault.TIMEOUT
        await harness.clock.advance(next_tick + 0.5 - harness.clock.monotonic())
        device.fault = FakeFault.NONE
        await harness.clock.advance(next_tick + 2.5 - harness.clock.monotonic())
        assert device.opens == opens + 1
        assert harness.runners["gpu-02"].available

    await lose_the_session()
    assert not any(state.inventory is None for d, state in harness.bus.states if d == "gpu-02")  # down too
    assert device.inventory_reads == 1  # the re-login after a failed poll did not read the FRU again

    await harness.clock.advance(INVENTORY_MAX_AGE)
    assert device.inventory_reads == 1  # an open session never reads it again
    await lose_the_session()
    assert device.inventory_reads == 2  # the first session opened after an hour does
    await harness.stop()


class FirstInventoryFailsDriver(FakeDriver):
    """The first inventory read of the process times out (as a FRU read under load did); later ones answer."""

    name: ClassVar[str] = "first-inventory-fails"
    capabilities: ClassVar[frozenset[Capability]] = FakeDriver.capabilities
    options_model: ClassVar[type[DriverOptions]] = FakeOptions

    def __init__(self) -> None:
        self.failed = False

    async def open(self, context: SessionContext, options: Any) -> Any:
        session = await super().open(context, options)
        read_inventory = session.read_inventory

        async def first_fails() -> Any:
            if not self.failed:
                self.failed = True
                raise DeviceTimeoutError("fake: read FRU: no answer")
            return await read_inventory()

        session.read_inventory = first_fails  # type: ignore[method-assign]  # inject the device's failure
        return session


async def test_a_failed_inventory_read_does_not_cost_the_polls_telemetry(harness: Harness) -> None:
    harness.runner("gpu-02", driver=FirstInventoryFailsDriver())
    harness.start("gpu-02")
    with capture_logs() as logs:
        await harness.clock.advance(11)
    runner = harness.runners["gpu-02"]
    assert runner.available  # the poll's readings stood
    assert len(_telemetry_offsets(harness, "gpu-02")) == 1
    assert [entry["event"] for entry in logs if entry["event"].startswith("inventory")] == ["inventory_read_failed"]
    device = harness.device("b")
    assert device.closes == 1  # the session the read failed on was discarded (a timeout poisons it)
    await harness.clock.advance(10)
    assert device.opens == 2
    assert device.inventory_reads == 1  # the next session read it
    state = harness.bus.last_state("gpu-02")
    assert state is not None
    assert state.inventory is not None
    assert len(_telemetry_offsets(harness, "gpu-02")) == 2
    await harness.stop()
