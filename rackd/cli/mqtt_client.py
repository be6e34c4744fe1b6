"""`--mqtt URL`: operator commands through the broker (MQTT 5 request/response) instead of the control socket."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import socket
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rackd.control.client import ControlError
from rackd.control.signing import sign

RETAINED_QUIET = 0.5  # s without a new retained message before the snapshot is taken as complete


def _client(url: str) -> aiomqtt.Client:
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise ControlError(f"--mqtt needs mqtt://host:port or mqtts://host:port, not {url!r}")
    tls = parts.scheme == "mqtts"
    return aiomqtt.Client(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        username=parts.username,
        password=parts.password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=aiomqtt.TLSParameters() if tls else None,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


async def _retained_states(client: aiomqtt.Client, device: str = "+") -> dict[str, tuple[str, dict[str, Any]]]:
    """Map each device to (state topic, payload) from the retained state messages."""
    await client.subscribe(f"+/v1/+/+/{device}/state", qos=1)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    try:
        while True:
            async with asyncio.timeout(RETAINED_QUIET if found else 5):
                message = await anext(client.messages)
            if not message.retain or not isinstance(message.payload, bytes):
                continue
            payload = json.loads(message.payload)
            found[payload["device"]] = (str(message.topic), payload)
    except TimeoutError:
        pass
    return found


async def mqtt_status(args: argparse.Namespace) -> int:
    """`rackd status --mqtt URL`: the retained state of every device."""
    async with _client(args.mqtt) as client:
        states = await _retained_states(client)
    wanted = set(args.targets)
    rows = [payload for device, (_, payload) in sorted(states.items()) if not wanted or device in wanted]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            power = ",".join(f"{t}={s}" for t, s in row["power"].items()) or "-"
            reach = ",".join(f"{n}={s['availability']}" for n, s in row["sources"].items())
            print(f"{row['device']:<14} {row['kind']:<6} {row['rack']:<8} {reach:<14} {power:<12} {row['health']}")
    return 0 if rows else 1


async def mqtt_act(args: argparse.Namespace, action: str, targets: list[tuple[str, dict[str, Any]]]) -> int:
    """Send one command per target with a response topic; print results as they come."""
    results: dict[str, dict[str, Any]] = {}
    async with _client(args.mqtt) as client:
        for device, extra in targets:
            states = await _retained_states(client, device)
            if device not in states:
                raise ControlError(f"no retained state for {device}: is it managed by a running rackd?")
            topic = states[device][0].rsplit("/", 1)[0] + "/cmd"
            prefix, version, site = topic.split("/")[:3]
            reply_topic = f"{prefix}/{version}/{site}/_reply/{uuid.uuid4()}"
            await client.subscribe(reply_topic, qos=1)
            command_id = f"{args.id}:{device}" if args.id and len(targets) > 1 else (args.id or str(uuid.uuid4()))
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho has no types here
            properties.ResponseTopic = reply_topic
            properties.CorrelationData = command_id.encode()
            args_out = {**extra, **({"force": True} if args.force else {})}
            request: dict[str, Any] = {
                "v": 1,
                "id": command_id,
                "action": action,
                "args": args_out,
                "reason": args.reason,
                "requested_by": args.sign_as or "rackd-cli",
            }
            if args.sign_as and args.sign_key_file:
                key = args.sign_key_file.read_text(encoding="utf-8").splitlines()[0]
                request = sign(request, args.sign_as, key, dt.datetime.now(dt.UTC))
            await client.publish(topic, json.dumps(request), qos=1, properties=properties)
            async for message in client.messages:
                if str(message.topic) != reply_topic or not isinstance(message.payload, bytes):
                    continue
                result = json.loads(message.payload)
                if not args.json:
                    print(f"  {device}: {result['status']}", flush=True)
                if result["status"] in {"succeeded", "failed", "rejected", "interrupted"}:
                    results[device] = result
                    break
    for device, result in results.items():
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{device}: {result['status']}: {result['message']}")
    ok = len(results) == len(targets) and all(r["status"] == "succeeded" for r in results.values())
    if not ok and not results:
        print("rackd: no results", file=sys.stderr)
    return 0 if ok else 1
