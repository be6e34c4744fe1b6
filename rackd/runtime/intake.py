"""Command intake from MQTT: validate at the boundary, answer malformed requests with `rejected`, never crash."""

from __future__ import annotations

import json
from typing import Any

import aiomqtt
import structlog
from pydantic import ValidationError

from rackd.bus.codec import CommandRequestPayload
from rackd.bus.mqtt import MqttBus
from rackd.config import Config
from rackd.control.protocol import Role
from rackd.control.signing import SIGNATURE_FIELDS, SignatureError, SignatureVerifier
from rackd.model import Command, CommandResult, CommandStatus
from rackd.runtime.actions import ActionEngine, Origin

log = structlog.get_logger(__name__)

MAX_PAYLOAD = 64 * 1024


class MqttIntake:
    """Subscribes to `…/+/+/cmd` and hands valid requests to the action engine."""

    def __init__(self, config: Config, bus: MqttBus, engine: ActionEngine) -> None:
        """Subscribe (the bus re-subscribes after every reconnect)."""
        self.bus = bus
        self.engine = engine
        self.configure(config)
        bus.subscribe(bus.topics.command_subscription(), self.handle)

    def configure(self, config: Config) -> None:
        """Take a (reloaded) config: MQTT role and signing keys."""
        self.config = config
        self.role = Role[config.settings.actions.mqtt_role.upper()]
        signing = config.settings.control.signing
        self.verifier = SignatureVerifier(signing.keys, signing.max_skew) if signing is not None else None
        self.signing_admins = frozenset(signing.admins) if signing is not None else frozenset()

    async def handle(self, message: aiomqtt.Message) -> None:
        """One request message."""
        topic = str(message.topic)
        parsed = self.bus.topics.parse_device_topic(topic)
        response_topic, correlation = _response_of(message)
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        if parsed is None or parsed[2] != "cmd":
            return
        rack, device, _ = parsed
        request, error, raw_id = parse_request(payload, signed=self.verifier is not None)
        if request is None:
            self._reject(device, raw_id, "invalid", error, response_topic, correlation)
            return
        role, who = self.role, request.requested_by or "mqtt"
        if self.verifier is not None:
            try:
                # A redelivery of a command already carried out is answered from the store, not refused as replayed.
                known = self.engine.store.get(request.id) is not None
                who = self.verifier.verify(json.loads(payload), self.engine.clock.now(), check_nonce=not known)
            except SignatureError as exc:
                log.warning("command_signature_refused", device=device, command_id=request.id, error=str(exc))
                self.engine.audit_denial(
                    f"mqtt {request.requested_by or '?'}", f"{request.action} on {device}", str(exc)
                )
                self._reject(
                    device, request.id, request.action, str(exc), response_topic, correlation, prefix="refused"
                )
                return
            role = Role.ADMIN if who in self.signing_admins else Role.OPERATOR
        try:
            spec = self.config.device(device)
        except KeyError:
            log.info("command_for_unknown_device", topic=topic)
            return  # no device to answer as; the topic belongs to someone else's config
        if spec.rack != rack:
            self._reject(
                device,
                request.id,
                request.action,
                f"{device} is in rack {spec.rack}, not {rack}",
                response_topic,
                correlation,
            )
            return
        command = Command(request.id, request.action, device, request.args, who, request.reason)
        origin = Origin("mqtt", who, role, response_topic, correlation)
        self.engine.submit_in_background(command, origin, force=bool(request.args.get("force", False)))

    def _reject(
        self,
        device: str,
        command_id: str,
        action: str,
        why: str,
        response_topic: str | None,
        correlation: bytes | None,
        prefix: str = "malformed request",
    ) -> None:
        log.info("command_malformed", device=device, command_id=command_id, error=why)
        try:
            spec = self.config.device(device)
        except KeyError:
            return
        result = CommandResult(command_id, device, action, CommandStatus.REJECTED, f"{prefix}: {why}")
        self.bus.publish_result(spec, result, response_topic, correlation)


def parse_request(payload: bytes, *, signed: bool = False) -> tuple[CommandRequestPayload | None, str, str]:
    """(request, "", id) or (None, why it is malformed, the id if one could be read)."""
    if len(payload) > MAX_PAYLOAD:
        return None, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", "unknown"
    raw_id = "unknown"
    try:
        data: Any = json.loads(payload.decode("utf-8"))
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            raw_id = data["id"][:128]
        if signed and isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in SIGNATURE_FIELDS}  # checked by the verifier
        return CommandRequestPayload.model_validate(data), "", raw_id
    except (UnicodeDecodeError, ValueError, RecursionError, ValidationError) as exc:
        return None, _describe(exc), raw_id


def _response_of(message: aiomqtt.Message) -> tuple[str | None, bytes | None]:
    properties = message.properties
    if properties is None:
        return None, None
    topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    return (
        topic if isinstance(topic, str) and topic else None,
        bytes(correlation) if isinstance(correlation, (bytes, bytearray)) else None,
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
    if isinstance(exc, UnicodeDecodeError):
        return "payload is not UTF-8"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return f"not JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
