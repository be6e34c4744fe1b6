"""The daemon's control-socket operations: status, sensors, events, and commands (single and bulk)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import Config, DeviceSpec
from rackd.control.peers import Peer
from rackd.control.protocol import ControlRequest, Role, encode, write_message
from rackd.control.server import ControlServer, reply
from rackd.model import Command, CommandResult, CommandStatus, CommandStep, Event, Reading
from rackd.runtime.actions import ActionEngine, Origin
from rackd.runtime.rack_power import RackFigures, RackPublisher
from rackd.runtime.runner import DeviceRunner
from rackd.runtime.state import DeviceState

log = structlog.get_logger(__name__)


def result_json(result: CommandResult) -> dict[str, Any]:
    """A command result as sent to CLI clients."""
    return {
        "id": result.id,
        "device": result.device,
        "action": result.action,
        "status": result.status.value,
        "message": result.message,
        "steps": [step_json(s) for s in result.steps],
    }


def step_json(step: CommandStep) -> dict[str, Any]:
    """One step as sent to CLI clients."""
    return {"at": step.at.isoformat(), "message": step.message, "data": dict(step.data)}


class EventFeed:
    """Fans events out to `rackd events --follow` clients; a slow client loses events, never the daemon."""

    def __init__(self) -> None:
        """No followers yet."""
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def push(self, device: str, event: Event) -> None:
        """Offer one event to every follower."""
        item = {
            "ts": event.observed_at.isoformat(),
            "device": device,
            "type": event.type.value,
            "severity": event.severity.value,
            "message": event.message,
            "data": dict(event.data),
        }
        for queue in self._queues:
            if queue.full():
                continue  # this follower is too slow; it sees a gap rather than stalling the runners
            queue.put_nowait(item)

    def follow(self) -> asyncio.Queue[dict[str, Any]]:
        """A new follower's queue."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        return queue

    def unfollow(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Forget a follower."""
        self._queues.discard(queue)


class FullPublisher(Publisher, RackPublisher, Protocol):
    """The bus: device and rack publishing."""


class FeedPublisher:
    """A Publisher that forwards everything to the bus and also offers events to the live feed."""

    def __init__(self, inner: FullPublisher, feed: EventFeed) -> None:
        """Wrap `inner`."""
        self._inner = inner
        self._feed = feed

    def publish_telemetry(
        self, device: DeviceSpec, source: str, readings: Sequence[Reading], observed_at: dt.datetime
    ) -> None:
        """Forward."""
        self._inner.publish_telemetry(device, source, readings, observed_at)

    def publish_state(self, device: DeviceSpec, state: DeviceState) -> None:
        """Forward."""
        self._inner.publish_state(device, state)

    def publish_event(self, device: DeviceSpec, event: Event) -> None:
        """Forward, then feed the followers."""
        self._inner.publish_event(device, event)
        self._feed.push(device.id, event)

    def publish_result(
        self,
        device: DeviceSpec,
        result: CommandResult,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """Forward."""
        self._inner.publish_result(device, result, response_topic, correlation)

    def publish_rack(self, figures: RackFigures, ts: dt.datetime) -> None:
        """Forward."""
        self._inner.publish_rack(figures, ts)

    def publish_rack_event(self, rack: str, event: Event) -> None:
        """Forward, then feed the followers."""
        self._inner.publish_rack_event(rack, event)
        self._feed.push(f"_rack/{rack}", event)


class Operations:
    """Registers the operator operations on the control server."""

    def __init__(
        self, config: Config, runners: Mapping[str, DeviceRunner], engine: ActionEngine, feed: EventFeed
    ) -> None:
        """Keep what the operations read."""
        self.config = config
        self.runners = runners
        self.engine = engine
        self.feed = feed

    def register(self, control: ControlServer) -> None:
        """Add status, sensors, events, command and bulk."""
        control.register("status", Role.VIEWER, self.status)
        control.register("sensors", Role.VIEWER, self.sensors)
        control.register("events", Role.VIEWER, self.events)
        # Commands are open to viewers at the socket level: the engine checks the role per action and audits.
        control.register("command", Role.VIEWER, self.command)
        control.register("bulk", Role.VIEWER, self.bulk)

    async def status(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Availability, power, health and key figures of the named devices (default: all)."""
        del peer, reader
        wanted = _names(request, "devices")
        unknown = [d for d in wanted if not any(s.id == d for s in self.config.devices)]
        if unknown:
            await reply(writer, ok=False, error=f"unknown device(s): {', '.join(unknown)}")
            return
        rows = []
        for spec in self.config.devices:
            if wanted and spec.id not in wanted:
                continue
            runner = self.runners.get(spec.id)
            rows.append(
                {
                    "device": spec.id,
                    "kind": spec.kind.value,
                    "rack": spec.rack,
                    "availability": runner.source.availability.value if runner else "unmanaged",
                    "error": runner.source.error if runner else None,
                    "power": {t: s.value for t, s in runner.power.items()} if runner else {},
                    "health": runner.health.value if runner else "unknown",
                    "figures": dict(runner.figures) if runner else {},
                    "protected": spec.protected,
                }
            )
        racks = sorted({spec.rack for spec in self.config.devices})
        await reply(writer, ok=True, devices=rows, racks={r: self.engine.rack_draw(r) for r in racks})

    async def sensors(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The last readings of one device."""
        del peer, reader
        device = getattr(request, "device", None)
        runner = self.runners.get(device) if isinstance(device, str) else None
        if runner is None:
            await reply(writer, ok=False, error=f"unknown or unmanaged device {device!r}")
            return
        readings = [
            {
                "sensor": r.sensor,
                "kind": r.kind.value,
                "value": r.value,
                "unit": r.unit,
                "health": r.health.value,
                "states": list(r.states),
                "ts": r.observed_at.isoformat(),
            }
            for r in runner.readings
        ]
        await reply(
            writer, ok=True, device=runner.spec.id, availability=runner.source.availability.value, readings=readings
        )

    async def events(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Stream events as JSON lines until the client goes away."""
        del request, peer
        queue = self.feed.follow()
        try:
            await reply(writer, ok=True)
            closed = asyncio.ensure_future(reader.read())  # EOF: the client went away
            while not closed.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await write_message(writer, getter.result())
                else:
                    getter.cancel()
        finally:
            self.feed.unfollow(queue)

    async def command(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One command; streams its steps, then its result."""
        del reader
        command, error = _command_of(request, peer, getattr(request, "device", None))
        if command is None:
            await reply(writer, ok=False, error=error)
            return
        await reply(writer, ok=True, id=command.id)
        result = await self._run(command, peer, writer, force=bool(getattr(request, "force", False)))
        await write_message(writer, {"result": result_json(result)})

    async def bulk(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The same action on several devices: confirmation over the threshold, power-on staggered per rack."""
        del reader
        devices = _names(request, "devices")
        action = getattr(request, "action", "")
        threshold = self.config.settings.actions.bulk_threshold
        if not devices:
            await reply(writer, ok=False, error="bulk needs devices")
            return
        if len(devices) > threshold and action not in {"power.status", "outlet.status"}:
            if not getattr(request, "confirm", False):
                await reply(
                    writer,
                    ok=False,
                    error=f"{len(devices)} targets exceed the confirmation threshold of "
                    f"{threshold}: confirm explicitly (--yes)",
                )
                return
            if peer.role < Role.ADMIN:
                await reply(
                    writer, ok=False, denied=True, error=f"{len(devices)} targets exceed {threshold}: needs role admin"
                )
                self.engine.audit_denial(
                    peer.describe(), f"bulk {action} on {len(devices)} targets", "above bulk threshold without admin"
                )
                return
        commands = []
        for device in devices:
            command, error = _command_of(request, peer, device)
            if command is None:
                await reply(writer, ok=False, error=f"{device}: {error}")
                return
            commands.append(command)
        await reply(writer, ok=True, ids={c.device: c.id for c in commands})
        force = bool(getattr(request, "force", False))
        stagger = self.config.settings.actions.stagger if action == "power.on" else 0.0
        by_rack: dict[str, list[Command]] = {}
        for command in commands:
            rack = self.config.device(command.device).rack if command.device in self.runners else "?"
            by_rack.setdefault(rack, []).append(command)

        async def rack_sequence(batch: list[Command]) -> None:
            for index, command in enumerate(batch):
                if index and stagger:
                    await write_message(
                        writer,
                        {
                            "device": command.device,
                            "step": {
                                "at": self.engine.clock.now().isoformat(),
                                "message": f"staggered: waiting {stagger:g} s",
                                "data": {},
                            },
                        },
                    )
                    await self.engine.clock.sleep(stagger)  # limit inrush: one power-on per rack at a time
                result = await self._run(command, peer, writer, force=force)
                await write_message(writer, {"device": command.device, "result": result_json(result)})

        if stagger:
            await asyncio.gather(*(rack_sequence(batch) for batch in by_rack.values()))
        else:
            await asyncio.gather(*(rack_sequence([c]) for c in commands))
        await write_message(writer, {"done": True})

    async def _run(self, command: Command, peer: Peer, writer: asyncio.StreamWriter, *, force: bool) -> CommandResult:
        def on_step(step: CommandStep) -> None:
            writer.write(encode({"device": command.device, "step": step_json(step)}))  # drained after the command

        origin = Origin("socket", peer.describe(), peer.role)
        result = await self.engine.submit(command, origin, force=force, on_step=on_step)
        await writer.drain()
        if result.status is CommandStatus.REJECTED:
            log.info("command_refused", peer=peer.describe(), device=command.device, reason=result.message)
        return result


def _names(request: ControlRequest, key: str) -> list[str]:
    value = getattr(request, key, None)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _command_of(request: ControlRequest, peer: Peer, device: object) -> tuple[Command | None, str]:
    action = getattr(request, "action", None)
    args = getattr(request, "args", {}) or {}
    reason = getattr(request, "reason", None)
    if not isinstance(device, str) or not device:
        return None, "needs a device"
    if not isinstance(action, str) or not action:
        return None, "needs an action"
    if not isinstance(args, dict):
        return None, "args must be an object"
    command_id = getattr(request, "id", None)
    if not isinstance(command_id, str) or not command_id:
        command_id = str(uuid.uuid4())
    elif request.op == "bulk":
        command_id = f"{command_id}:{device}"
    return Command(command_id, action, device, args, peer.user, reason if isinstance(reason, str) else None), ""
