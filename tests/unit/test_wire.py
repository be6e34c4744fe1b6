"""The wire format: topics, payload encoding, and the JSON Schemas published in docs/schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from rackd.bus.codec import CommandRequestPayload, event_payload, json_schemas, state_payload, telemetry_payload
from rackd.bus.schemas import render
from rackd.bus.topics import Topics
from rackd.config import Config
from rackd.model import Event, EventType, Health, PowerState, Reading, SensorKind, Severity, utc_now
from rackd.runtime.state import Availability, DeviceState, SourceState

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
CONFIG = """
[site]
name = "aus1"
[[node]]
id = "gpu-01"
rack = "r12"
tags = ["h100"]
bmc = { driver = "fake" }
"""


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_docs_schemas_are_generated_from_the_models(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.read_text() == render(name), "run: python -m rackd.bus.schemas docs/schemas"


def test_topics_follow_the_v1_tree() -> None:
    topics = Topics("rackd", "aus1")
    assert topics.telemetry("r12", "gpu-01") == "rackd/v1/aus1/r12/gpu-01/telemetry"
    assert topics.state("r12", "gpu-01") == "rackd/v1/aus1/r12/gpu-01/state"
    assert topics.event("r12", "gpu-01") == "rackd/v1/aus1/r12/gpu-01/event"
    assert topics.command_result("r12", "gpu-01") == "rackd/v1/aus1/r12/gpu-01/cmd/result"
    assert topics.rack_telemetry("r12") == "rackd/v1/aus1/r12/_rack/telemetry"
    assert topics.daemon_status("host1") == "rackd/v1/aus1/_daemon/host1/status"
    assert topics.parse_device_topic("rackd/v1/aus1/r12/gpu-01/cmd") == ("r12", "gpu-01", "cmd")
    assert topics.parse_device_topic("rackd/v1/other/r12/gpu-01/cmd") is None


def test_encoded_payloads_validate(load: Callable[[str], Config]) -> None:
    spec = load(CONFIG).device("gpu-01")
    now = utc_now()
    readings = [
        Reading.of("gpu3_temp", SensorKind.TEMPERATURE, 71.5, health=Health.WARNING, observed_at=now),
        Reading.of("psu1_status", SensorKind.STATUS, None, states=("Presence detected",), observed_at=now),
    ]
    telemetry = json.loads(telemetry_payload("aus1", spec, "bmc", readings, now).encode())
    validator("telemetry").validate(telemetry)
    assert telemetry["readings"][0] == {
        "sensor": "gpu3_temp",
        "kind": "temperature",
        "value": 71.5,
        "unit": "Cel",
        "health": "warning",
        "ts": telemetry["readings"][0]["ts"],
        "states": [],
        "flags": [],
    }
    assert telemetry["v"] == 1
    assert telemetry["ts"].endswith("Z")
    state = DeviceState(
        power={"chassis": PowerState.ON},
        health=Health.WARNING,
        sources={"bmc": SourceState(Availability.UP, now, None, now)},
        figures={"system_power": 812.0},
    )
    validator("state").validate(json.loads(state_payload("aus1", spec, state, now).encode()))
    event = Event(EventType.POWER_CHANGED, Severity.INFO, "on -> off", now, "bmc", {"target": "chassis"})
    validator("event").validate(json.loads(event_payload("aus1", spec, event).encode()))


def test_schema_rejects_what_the_model_would_not_emit() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator("event").validate({"v": 2, "ts": "x"})


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 1, "id": "x", "action": "power.cycle", "unexpected": 1},
        {"v": 1, "id": "", "action": "power.cycle"},
        {"v": 1, "id": "a/b", "action": "power.cycle"},
        {"v": 2, "id": "abc", "action": "power.cycle"},
        {"v": 1, "id": "abc", "action": "Power Cycle"},
    ],
)
def test_command_requests_are_validated_at_the_boundary(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CommandRequestPayload.model_validate(payload)
    with pytest.raises(jsonschema.ValidationError):
        validator("command_request").validate(payload)


def test_valid_command_request() -> None:
    payload = {"v": 1, "id": "6f1c1d0e-1", "action": "power.cycle", "reason": "hung", "requested_by": "ops"}
    CommandRequestPayload.model_validate(payload)
    validator("command_request").validate(payload)
