"""The rack power model: feed and phase totals from PDU readings, per-node draw, budget and imbalance events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rackd.config import Config
from rackd.model import EventType, Reading, SensorKind, Severity
from rackd.runtime.cursors import CursorStore
from rackd.runtime.rack_power import RackPowerModel, pdu_total
from rackd.runtime.runner import DeviceRunner
from rackd.runtime.state import Availability, SourceState
from rackd.testing.clock import ManualClock
from rackd.testing.fake_driver import FakeDriver
from rackd.testing.recording_bus import RecordingPublisher

CONFIG = """
[site]
name = "t"
[[rack]]
id = "r1"
power_budget_w = 10000
[[pdu]]
id = "pdu-a"
rack = "r1"
feed = "A"
driver = "fake"
[[pdu]]
id = "pdu-b"
rack = "r1"
feed = "B"
driver = "fake"
[[node]]
id = "gpu-01"
rack = "r1"
outlets = ["pdu-a:1", "pdu-b:1"]
bmc = { driver = "fake" }
"""


def power(sensor: str, value: float) -> Reading:
    kind = SensorKind.CURRENT if sensor.endswith("current") else SensorKind.POWER
    return Reading.of(sensor, kind, value)


@pytest.fixture
def model(
    load: Callable[[str], Config], tmp_path: Path
) -> tuple[RackPowerModel, RecordingPublisher, dict[str, DeviceRunner]]:
    config = load(CONFIG)
    bus = RecordingPublisher()
    clock = ManualClock()
    runners = {
        spec.id: DeviceRunner(
            spec, FakeDriver(), bus, clock, CursorStore(tmp_path / "c.json"), config.settings.defaults, tmp_path
        )
        for spec in config.devices
    }
    for runner in runners.values():
        runner.source = SourceState(Availability.UP)
    return RackPowerModel(config, runners, bus, clock), bus, runners


def test_pdu_total_prefers_the_device_total_then_inlets_phases_outlets() -> None:
    assert pdu_total([power("total_power", 5000), power("outlet1_power", 1)]) == 5000
    assert pdu_total([power("inlet1_power", 2000), power("inlet2_power", 1000)]) == 3000
    assert pdu_total([power("phase1_power", 100), power("phase2_power", 200), power("outlet1_power", 7)]) == 300
    assert pdu_total([power("outlet1_power", 7), power("outlet2_power", 8)]) == 15
    assert pdu_total([]) is None


def test_feeds_phases_nodes_and_budget(
    model: tuple[RackPowerModel, RecordingPublisher, dict[str, DeviceRunner]],
) -> None:
    rack_model, bus, runners = model
    runners["pdu-a"].readings = [
        power("inlet1_l1_current", 10),
        power("inlet1_l2_current", 10),
        power("inlet1_l3_current", 10),
        power("inlet1_power", 4000),
        power("outlet1_power", 600),
    ]
    runners["pdu-b"].readings = [power("total_power", 3000), power("outlet1_power", 500)]
    runners["gpu-01"].figures = {"system_power": 1050.0}
    (figures,) = rack_model.update()
    assert figures.total_power == 7000
    assert figures.feeds["A"].power == 4000
    assert figures.feeds["A"].phases["1"] == {"current": 10}
    assert figures.nodes["gpu-01"] == {"outlet_power": 1100, "bmc_power": 1050.0}
    assert figures.budget_use == pytest.approx(0.7)
    assert bus.racks == [figures]
    assert bus.rack_events == []


def test_budget_and_imbalance_events_fire_on_transitions_only(
    model: tuple[RackPowerModel, RecordingPublisher, dict[str, DeviceRunner]],
) -> None:
    rack_model, bus, runners = model
    runners["pdu-b"].readings = [power("total_power", 0)]
    runners["pdu-a"].readings = [
        power("total_power", 9500),
        power("phase1_current", 20),
        power("phase2_current", 10),
        power("phase3_current", 10),
    ]
    rack_model.update()
    rack_model.update()
    kinds = [(e.data["sensor"], e.severity) for _, e in bus.rack_events]
    assert kinds == [("rack_power_budget", Severity.WARNING), ("feed_A_phase_imbalance", Severity.WARNING)]
    runners["pdu-a"].readings = [power("total_power", 10500)]
    rack_model.update()
    assert bus.rack_events[-1][1].severity is Severity.CRITICAL
    runners["pdu-a"].readings = [power("total_power", 5000)]
    rack_model.update()
    assert bus.rack_events[-1][1].data["to"] == "ok"
    assert all(e.type is EventType.THRESHOLD_CROSSED for _, e in bus.rack_events)


def test_an_unreachable_pdu_makes_the_total_unknown(
    model: tuple[RackPowerModel, RecordingPublisher, dict[str, DeviceRunner]],
) -> None:
    rack_model, _, runners = model
    runners["pdu-a"].readings = [power("total_power", 4000)]
    runners["pdu-b"].readings = [power("total_power", 3000)]
    runners["pdu-b"].source = SourceState(Availability.DOWN)
    (figures,) = rack_model.update()
    assert figures.total_power is None  # never a partial sum passed off as the rack's draw
    assert figures.budget_use is None
