"""The action engine on a fast-forwarded clock with fake devices: every safety rule, observed on the devices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from rackd.config import Config
from rackd.control.protocol import Role
from rackd.drivers.contract import SessionContext
from rackd.model import Command, CommandResult, CommandStatus, EventType, PowerAction, PowerState, Reading, SensorKind
from rackd.runtime.actions import ActionEngine, Origin
from rackd.runtime.command_store import CommandStore
from rackd.runtime.cursors import CursorStore
from rackd.runtime.runner import DeviceRunner
from rackd.runtime.state import Availability, SourceState
from rackd.testing.clock import ManualClock
from rackd.testing.fake_driver import WORLD, FakeDriver, FakeFault, FakeOptions
from rackd.testing.recording_bus import RecordingPublisher

CONFIG = """
[site]
name = "t"
[defaults]
poll_interval = 30
call_timeout = 3
power_timeout = 60
[actions]
min_interval = 30
cycle_off_time = 5
soft_off_timeout = 20
[[rack]]
id = "r1"
power_budget_w = 3000
[[pdu]]
id = "pdu-a"
rack = "r1"
driver = "fake"
host = "pdu-a"
targets = ["1", "2", "3"]
readings = []
[[pdu]]
id = "pdu-b"
rack = "r1"
driver = "fake"
host = "pdu-b"
targets = ["1", "2", "3"]
readings = []
[[node]]
id = "gpu-01"
rack = "r1"
outlets = ["pdu-a:1", "pdu-b:1"]
escalate = true
max_power_w = 1200
bmc = { driver = "fake", host = "bmc-01", readings = [] }
[[node]]
id = "switch-01"
rack = "r1"
protected = true
outlets = ["pdu-a:3"]
[[node]]
id = "gpu-02"
rack = "r1"
outlets = ["pdu-a:2", "pdu-b:2"]
max_power_w = 1200
bmc = { driver = "fake", host = "bmc-02", readings = [], power = "off" }
"""

OPERATOR = Origin("socket", "alice (uid 1000, pid 1)", Role.OPERATOR)
ADMIN = Origin("socket", "root (uid 0, pid 1)", Role.ADMIN)
VIEWER = Origin("socket", "bob (uid 1001, pid 1)", Role.VIEWER)


class Rack:
    def __init__(self, config: Config, state_dir: Path, drivers: Mapping[str, FakeDriver] | None = None) -> None:
        self.config = config
        self.clock = ManualClock()
        WORLD.sleep = self.clock.sleep
        self.bus = RecordingPublisher()
        cursors = CursorStore(state_dir / "cursors.json")
        self.runners = {
            spec.id: DeviceRunner(
                spec,
                (drivers or {}).get(spec.id, FakeDriver()),
                self.bus,
                self.clock,
                cursors,
                config.settings.defaults,
                state_dir,
            )
            for spec in config.devices
            if spec.driver is not None
        }
        self.state_dir = state_dir
        self.engine = ActionEngine(config, self.runners, self.bus, self.clock, state_dir)

    async def run(
        self,
        action: str,
        device: str,
        origin: Origin = OPERATOR,
        command_id: str | None = None,
        force: bool = False,
        **args: object,
    ) -> CommandResult:
        command = Command(
            command_id or f"{device}-{action}-{len(self.bus.results)}", action, device, args, "test", "testing"
        )
        task = asyncio.create_task(self.engine.submit(command, origin, force=force))
        await self.clock.run_until(task.done, limit=3600)
        return task.result()

    async def aclose(self) -> None:
        await self.engine.aclose()
        for runner in self.runners.values():
            await runner.aclose()

    def calls(self, host: str) -> list[tuple[str, PowerAction]]:
        return WORLD.devices[host].set_power_calls if host in WORLD.devices else []


@pytest.fixture
async def rack(load: Callable[[str], Config], tmp_path: Path) -> AsyncIterator[Rack]:
    the_rack = Rack(load(CONFIG), tmp_path)
    yield the_rack
    await the_rack.aclose()


async def test_cycle_via_bmc_is_off_observed_wait_on_observed(rack: Rack) -> None:
    result = await rack.run("power.cycle", "gpu-01")
    assert result.status is CommandStatus.SUCCEEDED, result.message
    assert rack.calls("bmc-01") == [("chassis", PowerAction.OFF), ("chassis", PowerAction.ON)]
    messages = [s.message for s in result.steps]
    assert messages.index("observed gpu-01/chassis off") < messages.index("waiting 5 s off")
    assert messages.index("waiting 5 s off") < messages.index("sent on to gpu-01/chassis")
    assert messages[-1] == "observed gpu-01/chassis on"
    off_at = next(s.at for s in result.steps if s.message == "observed gpu-01/chassis off")
    on_sent = next(s.at for s in result.steps if s.message == "sent on to gpu-01/chassis")
    assert (on_sent - off_at).total_seconds() >= 5
    statuses = [r.status for _, r, _ in rack.bus.results]
    assert statuses == [CommandStatus.ACCEPTED, CommandStatus.RUNNING, CommandStatus.SUCCEEDED]
    changes = rack.bus.events_of(EventType.POWER_CHANGED, "gpu-01")
    assert [(e.data["from"], e.data["to"]) for e in changes] == [("on", "off"), ("off", "on")]
    assert len(rack.bus.events_of(EventType.ACTION_STARTED)) == 1
    assert len(rack.bus.events_of(EventType.ACTION_FINISHED)) == 1


async def test_same_command_id_never_acts_twice(rack: Rack) -> None:
    first = await rack.run("power.cycle", "gpu-01", command_id="c-1")
    again = await rack.run("power.cycle", "gpu-01", command_id="c-1")
    assert again.status is first.status is CommandStatus.SUCCEEDED
    assert again.steps == first.steps
    assert len(rack.calls("bmc-01")) == 2  # one off, one on: the repeat sent nothing
    # …also across a restart: a new engine on the same state dir knows the id.
    await rack.engine.aclose()
    rack.engine = ActionEngine(rack.config, rack.runners, rack.bus, rack.clock, rack.state_dir)
    rack.clock.sleeps.clear()
    await rack.clock.advance(3600)
    third = await rack.run("power.cycle", "gpu-01", command_id="c-1")
    assert third.status is CommandStatus.SUCCEEDED
    assert len(rack.calls("bmc-01")) == 2


async def test_already_in_state_sends_nothing(rack: Rack) -> None:
    result = await rack.run("power.on", "gpu-01")
    assert result.status is CommandStatus.SUCCEEDED
    assert result.message == "already on"
    assert rack.calls("bmc-01") == []


async def test_cycle_of_an_off_node_is_refused_without_a_command(rack: Rack) -> None:
    result = await rack.run("power.cycle", "gpu-02")
    assert result.status is CommandStatus.REJECTED
    assert "is off" in result.message
    assert rack.calls("bmc-02") == []


async def test_multi_outlet_node_all_off_before_any_on(rack: Rack) -> None:
    result = await rack.run("power.cycle", "gpu-01", via="pdu")
    assert result.status is CommandStatus.SUCCEEDED, result.message
    log = [(host, target, action) for host, target, action in WORLD.power_log]
    assert sorted(log[:2]) == [("pdu-a", "1", PowerAction.OFF), ("pdu-b", "1", PowerAction.OFF)]
    assert sorted(log[2:]) == [("pdu-a", "1", PowerAction.ON), ("pdu-b", "1", PowerAction.ON)]
    assert rack.calls("bmc-01") == []
    observed_off = [
        s.message for s in result.steps if s.message.startswith("observed pdu-") and s.message.endswith("off")
    ]
    assert len(observed_off) == 2


async def test_protected_target_needs_admin_and_force(rack: Rack) -> None:
    denied = await rack.run("power.off", "switch-01")
    assert denied.status is CommandStatus.REJECTED
    assert "protected" in denied.message
    no_force = await rack.run("power.off", "switch-01", origin=ADMIN)
    assert no_force.status is CommandStatus.REJECTED
    # Its outlet is protected too, even addressed as an outlet.
    outlet = await rack.run("outlet.off", "pdu-a", outlet="3")
    assert outlet.status is CommandStatus.REJECTED
    assert rack.calls("pdu-a") == []
    forced = await rack.run("power.off", "switch-01", origin=ADMIN, force=True)
    assert forced.status is CommandStatus.SUCCEEDED, forced.message
    assert rack.calls("pdu-a") == [("3", PowerAction.OFF)]


async def test_minimum_interval_between_actions_on_a_target(rack: Rack) -> None:
    assert (await rack.run("power.off", "gpu-01")).status is CommandStatus.SUCCEEDED
    too_soon = await rack.run("power.on", "gpu-01")
    assert too_soon.status is CommandStatus.REJECTED
    assert "minimum interval is 30 s" in too_soon.message
    await rack.clock.advance(31)
    assert (await rack.run("power.on", "gpu-01")).status is CommandStatus.SUCCEEDED


async def test_one_action_at_a_time_per_target(rack: Rack) -> None:
    first = asyncio.create_task(rack.engine.submit(Command("a", "power.cycle", "gpu-01"), OPERATOR))
    await rack.clock.advance(0.1)
    second = await rack.engine.submit(Command("b", "power.off", "gpu-01"), OPERATOR)
    assert second.status is CommandStatus.REJECTED
    assert "busy with command a" in second.message
    await rack.clock.run_until(first.done, limit=600)
    assert first.result().status is CommandStatus.SUCCEEDED


class PowerReadBug(FakeDriver):
    """A driver whose power read has a bug: it raises something other than a DeviceError."""

    async def open(self, context: SessionContext, options: Any) -> Any:
        session = await super().open(context, options)

        async def broken(target: str) -> PowerState:
            raise KeyError(target)

        session.get_power = broken  # type: ignore[method-assign]  # inject the bug
        return session


async def test_a_driver_bug_fails_the_command_and_frees_its_target(
    load: Callable[[str], Config], tmp_path: Path
) -> None:
    rack = Rack(load(CONFIG), tmp_path, drivers={"gpu-01": PowerReadBug()})
    try:
        with capture_logs() as logs:
            first = await rack.run("power.cycle", "gpu-01")
        assert first.status is CommandStatus.FAILED
        assert first.message == "internal error: KeyError('chassis')"
        assert [r.status for _, r, _ in rack.bus.results] == [
            CommandStatus.ACCEPTED, CommandStatus.RUNNING, CommandStatus.FAILED
        ]  # fmt: skip
        assert [e["command_id"] for e in logs if e["event"] == "command_bug"] == [first.id]
        records = [json.loads(line) for line in (rack.state_dir / "audit.jsonl").read_text().splitlines()]
        assert [r["status"] for r in records] == ["running", "failed"]
        # The target is not left locked by the command that died: the next one is carried out, not refused as busy.
        await rack.clock.advance(31)
        second = await rack.run("power.off", "gpu-01")
        assert second.message == "internal error: KeyError('chassis')"
        assert rack.calls("bmc-01") == []
    finally:
        await rack.aclose()


async def test_viewer_is_refused_and_audited(rack: Rack) -> None:
    result = await rack.run("power.cycle", "gpu-01", origin=VIEWER)
    assert result.status is CommandStatus.REJECTED
    assert "needs role operator" in result.message
    assert rack.calls("bmc-01") == []
    records = [json.loads(line) for line in (rack.state_dir / "audit.jsonl").read_text().splitlines()]
    (record,) = records
    assert record["status"] == "rejected"
    assert record["origin"] == {"via": "socket", "who": "bob (uid 1001, pid 1)", "role": "viewer"}
    assert record["reason"] == "testing"
    status = await rack.run("power.status", "gpu-01", origin=VIEWER)
    assert status.status is CommandStatus.SUCCEEDED
    assert status.message == "gpu-01/chassis on"


async def test_escalation_from_a_hung_bmc_to_the_outlets(rack: Rack) -> None:
    WORLD.device(FakeOptions(host="bmc-01")).fault = FakeFault.HANG
    result = await rack.run("power.cycle", "gpu-01")
    assert result.status is CommandStatus.SUCCEEDED, result.message
    assert result.message.startswith("via PDU outlets")
    messages = [s.message for s in result.steps]
    assert any("escalating to PDU outlets pdu-a/1, pdu-b/1" in m and "DeviceTimeoutError" in m for m in messages)
    assert rack.calls("pdu-a") == [("1", PowerAction.OFF), ("1", PowerAction.ON)]
    assert rack.calls("pdu-b") == [("1", PowerAction.OFF), ("1", PowerAction.ON)]


async def test_soft_off_ignored_escalates_to_hard_off(rack: Rack) -> None:
    WORLD.device(FakeOptions(host="bmc-01")).ignore_soft_off = True
    result = await rack.run("power.soft_off", "gpu-01")
    assert result.status is CommandStatus.SUCCEEDED, result.message
    assert rack.calls("bmc-01") == [("chassis", PowerAction.SOFT_OFF), ("chassis", PowerAction.OFF)]
    assert any("graceful shutdown did not converge" in s.message for s in result.steps)


async def test_unverified_action_fails_with_what_was_observed(rack: Rack, load: Callable[[str], Config]) -> None:
    WORLD.device(FakeOptions(host="bmc-02", power=PowerState.OFF)).stuck = True
    result = await rack.run("power.on", "gpu-02")
    assert result.status is CommandStatus.FAILED
    assert "still off after 60 s" in result.message


async def test_power_on_is_checked_against_the_rack_budget(rack: Rack) -> None:
    for pdu, watts in (("pdu-a", 1200.0), ("pdu-b", 1000.0)):
        rack.runners[pdu].readings = [Reading.of("total_power", SensorKind.POWER, watts)]
        rack.runners[pdu].source = SourceState(Availability.UP)
    result = await rack.run("power.on", "gpu-02")
    assert result.status is CommandStatus.REJECTED
    assert "2200 W drawn + 1200 W expected > 3000 W" in result.message
    assert rack.calls("bmc-02") == []


async def test_crash_mid_action_is_reported_interrupted_and_not_resumed(rack: Rack) -> None:
    store = CommandStore(rack.state_dir / "commands.sqlite3")
    command = Command("crashed-1", "power.cycle", "gpu-01")
    store.claim(command, CommandResult("crashed-1", "gpu-01", "power.cycle", CommandStatus.RUNNING, "running"))
    store.close()
    runner_task = asyncio.create_task(rack.runners["gpu-01"].run())
    recover = asyncio.create_task(rack.engine.recover_interrupted())
    await rack.clock.run_until(recover.done, limit=120)
    runner_task.cancel()
    (_, result, _) = rack.bus.results[-1]
    assert result.status is CommandStatus.INTERRUPTED
    assert "observed: chassis on" in result.message
    assert rack.calls("bmc-01") == []
    again = await rack.run("power.cycle", "gpu-01", command_id="crashed-1")
    assert again.status is CommandStatus.INTERRUPTED
    assert rack.calls("bmc-01") == []


async def test_budget_uses_the_nodes_last_observed_on_power(rack: Rack) -> None:
    for pdu, watts in (("pdu-a", 900.0), ("pdu-b", 900.0)):
        rack.runners[pdu].readings = [Reading.of("total_power", SensorKind.POWER, watts)]
        rack.runners[pdu].source = SourceState(Availability.UP)
    rack.runners["gpu-02"].last_on_power = 1500.0  # measured last time it ran; its max_power_w is 1200
    result = await rack.run("power.on", "gpu-02")
    assert result.status is CommandStatus.REJECTED
    assert "1800 W drawn + 1500 W expected > 3000 W" in result.message
