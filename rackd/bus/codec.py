"""The wire format: pydantic models of every MQTT payload (v1) — JSON encoding and JSON Schemas come from here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rackd.config import DeviceKind, DeviceSpec
from rackd.model import (
    CommandResult,
    CommandStatus,
    Event,
    EventType,
    Health,
    Inventory,
    PowerState,
    Reading,
    SensorKind,
    Severity,
)
from rackd.runtime.state import Availability, DeviceState, SourceState

WIRE_VERSION = 1


class WireModel(BaseModel):
    """Base of payloads: unknown fields are errors (inbound) and never emitted (outbound)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def encode(self) -> bytes:
        """Compact JSON bytes."""
        return self.model_dump_json().encode()


class _Envelope(WireModel):
    v: Literal[1] = 1
    ts: dt.datetime = Field(description="when the message was produced (ISO-8601 UTC)")


class _DeviceEnvelope(_Envelope):
    site: str
    rack: str
    device: str


class ReadingPayload(WireModel):
    """One reading: canonical unit per kind; value null when the device reports 'not available'."""

    sensor: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    kind: SensorKind
    value: float | None
    unit: str
    health: Health
    ts: dt.datetime = Field(description="when the device was read")
    states: list[str] = []
    flags: list[str] = []


class TelemetryPayload(_DeviceEnvelope):
    """`…/{device}/telemetry`: one message per poll of one source."""

    source: str
    readings: list[ReadingPayload]


class SourcePayload(WireModel):
    """Reachability of one source; `since` is when the availability last changed."""

    availability: Availability
    since: dt.datetime | None
    error: str | None
    last_success: dt.datetime | None


class InventoryPayload(WireModel):
    """Model, serial and firmware, as the device reports them."""

    manufacturer: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    extra: dict[str, str] = {}


class StatePayload(_DeviceEnvelope):
    """`…/{device}/state` (retained): power, health, reachability per source, key figures."""

    kind: DeviceKind
    power: dict[str, PowerState]
    health: Health
    sources: dict[str, SourcePayload]
    figures: dict[str, float | None]
    inventory: InventoryPayload | None
    protected: bool
    tags: list[str]


class EventPayload(_DeviceEnvelope):
    """`…/{device}/event`: something happened; `id` lets consumers drop a QoS 1 redelivery."""

    id: str
    type: EventType
    severity: Severity
    message: str
    source: str | None
    data: dict[str, Any]


class PhasePayload(WireModel):
    """One phase of a feed: power (W) and current (A) where the PDUs meter them."""

    power: float | None = None
    current: float | None = None


class FeedPayload(WireModel):
    """One power feed (A/B) of a rack: the sum of its PDUs."""

    power: float | None
    pdus: list[str]
    phases: dict[str, PhasePayload]


class RackNodePayload(WireModel):
    """A node's draw as its outlets meter it, next to its BMC's own figure (DCMI)."""

    outlet_power: float | None
    bmc_power: float | None


class RackTelemetryPayload(_Envelope):
    """`…/{rack}/_rack/telemetry`: totals per feed and phase, per-node draw, budget use."""

    site: str
    rack: str
    total_power: float | None
    budget_w: float | None
    budget_use: float | None
    feeds: dict[str, FeedPayload]
    nodes: dict[str, RackNodePayload]


class RackEventPayload(_Envelope):
    """`…/{rack}/_rack/event`: budget thresholds and phase imbalance."""

    site: str
    rack: str
    id: str
    type: EventType
    severity: Severity
    message: str
    data: dict[str, Any]


class DaemonEventPayload(_Envelope):
    """`…/_daemon/{instance}/event`: events about the daemon itself."""

    id: str
    instance: str
    type: EventType
    severity: Severity
    message: str
    data: dict[str, Any]


class DaemonStatusPayload(_Envelope):
    """`…/_daemon/{instance}/status` (retained, also the last will): online or offline."""

    state: Literal["online", "offline"]
    instance: str
    version: str
    started_at: dt.datetime | None = None
    counts: dict[str, int] = {}


class CommandRequestPayload(WireModel):
    """`…/{device}/cmd`: a command request; the client-chosen `id` makes it idempotent."""

    v: Literal[1]
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
    action: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)*$")]
    args: dict[str, Any] = {}
    requested_by: Annotated[str, Field(max_length=256)] | None = None
    reason: Annotated[str, Field(max_length=1024)] | None = None


class CommandStepPayload(WireModel):
    """One step of a command, with its time."""

    at: dt.datetime
    message: str
    data: dict[str, Any] = {}


class CommandResultPayload(_DeviceEnvelope):
    """`…/{device}/cmd/result` (or the request's response topic): where a command stands."""

    id: str
    action: str
    status: CommandStatus
    message: str
    steps: list[CommandStepPayload]


WIRE_MODELS: Mapping[str, type[WireModel]] = {
    "telemetry": TelemetryPayload,
    "state": StatePayload,
    "event": EventPayload,
    "rack_telemetry": RackTelemetryPayload,
    "rack_event": RackEventPayload,
    "daemon_event": DaemonEventPayload,
    "daemon_status": DaemonStatusPayload,
    "command_request": CommandRequestPayload,
    "command_result": CommandResultPayload,
}


INBOUND = frozenset({"command_request"})


def _device_fields(site: str, device: DeviceSpec) -> dict[str, Any]:
    return {"site": site, "rack": device.rack, "device": device.id}


def telemetry_payload(
    site: str, device: DeviceSpec, source: str, readings: Sequence[Reading], ts: dt.datetime
) -> TelemetryPayload:
    """The telemetry message of one poll."""
    return TelemetryPayload(
        ts=ts,
        source=source,
        readings=[
            ReadingPayload(
                sensor=r.sensor,
                kind=r.kind,
                value=r.value,
                unit=r.unit,
                health=r.health,
                ts=r.observed_at,
                states=list(r.states),
                flags=list(r.flags),
            )
            for r in readings
        ],
        **_device_fields(site, device),
    )


def _source(state: SourceState) -> SourcePayload:
    return SourcePayload(
        availability=state.availability, since=state.since, error=state.error, last_success=state.last_success
    )


def _inventory(inventory: Inventory | None) -> InventoryPayload | None:
    if inventory is None:
        return None
    return InventoryPayload(
        manufacturer=inventory.manufacturer,
        model=inventory.model,
        serial=inventory.serial,
        firmware=inventory.firmware,
        extra=dict(inventory.extra),
    )


def state_payload(site: str, device: DeviceSpec, state: DeviceState, ts: dt.datetime) -> StatePayload:
    """The retained state message of a device."""
    return StatePayload(
        ts=ts,
        kind=device.kind,
        power=dict(state.power),
        health=state.health,
        sources={name: _source(source) for name, source in state.sources.items()},
        figures=dict(state.figures),
        inventory=_inventory(state.inventory),
        protected=device.protected,
        tags=list(device.tags),
        **_device_fields(site, device),
    )


def event_payload(site: str, device: DeviceSpec, event: Event) -> EventPayload:
    """The event message."""
    return EventPayload(
        ts=event.observed_at,
        id=event.id,
        type=event.type,
        severity=event.severity,
        message=event.message,
        source=event.source,
        data=dict(event.data),
        **_device_fields(site, device),
    )


def result_payload(site: str, device: DeviceSpec, result: CommandResult) -> CommandResultPayload:
    """The command result message."""
    return CommandResultPayload(
        ts=result.at,
        id=result.id,
        action=result.action,
        status=result.status,
        message=result.message,
        steps=[CommandStepPayload(at=s.at, message=s.message, data=dict(s.data)) for s in result.steps],
        **_device_fields(site, device),
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (2020-12) of every payload, as published in docs/schemas/."""
    schemas = {}
    for name, model in WIRE_MODELS.items():
        # Outbound payloads always carry every field; the inbound request may omit those with defaults.
        schema = model.model_json_schema(mode="validation" if name in INBOUND else "serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://rackd.invalid/schemas/v1/{name}.schema.json"
        schemas[name] = schema
    return schemas
