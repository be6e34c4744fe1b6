"""MqttBus without a broker: what it keeps while offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from rackd.bus.mqtt import MqttBus
from rackd.config import Config
from rackd.model import Event, EventType, Reading, SensorKind, Severity, utc_now
from rackd.testing.clock import ManualClock

CONFIG = """
[site]
name = "lab"
[mqtt]
spool_max_messages = 10
[[node]]
id = "gpu-01"
rack = "r1"
bmc = { driver = "fake" }
"""


def make_bus(config: Config, tmp_path: Path) -> MqttBus:
    settings = config.settings
    return MqttBus(settings.mqtt, config.site, "it", tmp_path, ManualClock(), "test")


def test_full_spool_drops_oldest_with_one_log_line_and_one_event(load: Callable[[str], Config], tmp_path: Path) -> None:
    config = load(CONFIG)
    bus = make_bus(config, tmp_path)
    spec = config.device("gpu-01")
    with capture_logs() as logs:
        for i in range(25):
            bus.publish_event(spec, Event(EventType.LOG_ENTRY, Severity.INFO, f"record {i}", data={"seq": i}))
    assert [entry["event"] for entry in logs].count("spool_full") == 1
    entries = bus.spool.peek(100)
    assert len(entries) == 10  # the bound holds, the overflow notice included
    payloads = [json.loads(e.payload) for e in entries]
    overflow = [(e.topic, p) for e, p in zip(entries, payloads, strict=True) if p["type"] == "spool_overflow"]
    assert len(overflow) == 1  # one notice per episode, and it survived the later trims
    topic, notice = overflow[0]
    assert topic == "rackd/v1/lab/_daemon/it/event"
    assert notice["severity"] == "warning"
    seqs = [p["data"]["seq"] for p in payloads if p["type"] == "log_entry"]
    assert seqs == sorted(seqs)
    assert seqs[-1] == 24  # the newest are kept
    bus.close_spool()


def test_offline_telemetry_keeps_only_the_newest_per_topic(load: Callable[[str], Config], tmp_path: Path) -> None:
    config = load(CONFIG)
    bus = make_bus(config, tmp_path)
    spec = config.device("gpu-01")
    for value in (1.0, 2.0, 3.0):
        bus.publish_telemetry(spec, "bmc", [Reading.of("system_power", SensorKind.POWER, value)], utc_now())
    assert len(bus._telemetry) == 1
    (payload,) = bus._telemetry.values()
    assert json.loads(payload)["readings"][0]["value"] == 3.0
    bus.close_spool()
