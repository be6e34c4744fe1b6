"""Operator commands — status, power, outlet, events, sensors — over the control socket (or MQTT with --mqtt)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

from rackd.control.client import ControlError, call, open_operation
from rackd.control.protocol import ProtocolError, read_message

DEFAULT_SOCKET = "/run/rackd/control.sock"
NODE_ACTIONS = ["on", "off", "cycle", "reset", "soft-off", "diag", "status"]
OUTLET_ACTIONS = ["on", "off", "cycle", "status"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the operator subcommands."""

    def target_args(parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("-c", "--config", type=Path, help="daemon config (to find its control socket)")
        where.add_argument("--socket", type=Path, help="control socket path")
        where.add_argument("--mqtt", metavar="URL", help="go through the broker instead (mqtt://host:port)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--sign-as", metavar="NAME", help="with --mqtt: sign commands as this operator")
        parser.add_argument("--sign-key-file", type=Path, metavar="FILE", help="with --mqtt: the operator's key")

    status = sub.add_parser("status", help="availability, power and health of devices")
    status.add_argument("targets", nargs="*", metavar="TARGET")
    target_args(status)
    status.set_defaults(func=_sync(status_cmd))

    power = sub.add_parser("power", help="power action on nodes (verified by observed state)")
    power.add_argument("action", choices=NODE_ACTIONS)
    power.add_argument("targets", nargs="+", metavar="NODE")
    power.add_argument("--via", choices=["auto", "bmc", "pdu"], default="auto")
    power.add_argument("--escalate", action="store_true", help="soft-off → hard off → PDU outlets if needed")
    _action_args(power)
    target_args(power)
    power.set_defaults(func=_sync(power_cmd))

    outlet = sub.add_parser("outlet", help="switch PDU outlets (PDU:N)")
    outlet.add_argument("action", choices=OUTLET_ACTIONS)
    outlet.add_argument("targets", nargs="+", metavar="PDU:N")
    _action_args(outlet)
    target_args(outlet)
    outlet.set_defaults(func=_sync(outlet_cmd))

    events = sub.add_parser("events", help="device events")
    events.add_argument("--follow", action="store_true", help="keep streaming (the default)", default=True)
    target_args(events)
    events.set_defaults(func=_sync(events_cmd))

    sensors = sub.add_parser("sensors", help="the last readings of a device")
    sensors.add_argument("device")
    target_args(sensors)
    sensors.set_defaults(func=_sync(sensors_cmd))


def _action_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why (kept in the audit log)")
    parser.add_argument("--force", action="store_true", help="act on protected targets / inside the minimum interval")
    parser.add_argument("--yes", action="store_true", help="confirm an action on more targets than the threshold")
    parser.add_argument("--id", help="command id (default: a new UUID); the same id never acts twice")


def _sync(coroutine: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = asyncio.run(coroutine(args))
        except ControlError as exc:
            print(f"rackd: {exc}", file=sys.stderr)
            return 3 if exc.denied else 1
        return code

    return run


def socket_path(args: argparse.Namespace) -> Path:
    """The control socket: --socket, else the config's daemon.control_socket, else the default."""
    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        return control_socket_of(args.config)
    return Path(os.environ.get("RACKD_DAEMON__CONTROL_SOCKET", DEFAULT_SOCKET))


def control_socket_of(config: Path) -> Path:
    """Only `[daemon] control_socket` of a config: an operator need not be able to read the daemon's secrets."""
    override = os.environ.get("RACKD_DAEMON__CONTROL_SOCKET")
    if override:
        return Path(override)
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ControlError(f"{config}: cannot read the control socket path: {exc}") from None
    daemon = data.get("daemon")
    value = daemon.get("control_socket") if isinstance(daemon, dict) else None
    return Path(value) if isinstance(value, str) else Path(DEFAULT_SOCKET)


async def status_cmd(args: argparse.Namespace) -> int:
    """`rackd status`."""
    if args.mqtt:
        from rackd.cli.mqtt_client import mqtt_status  # noqa: PLC0415 - only with --mqtt

        return await mqtt_status(args)
    response = await call(socket_path(args), "status", devices=args.targets)
    if args.json:
        print(json.dumps(response["devices"], indent=2))
        return 0
    rows = [["DEVICE", "KIND", "RACK", "REACH", "POWER", "HEALTH", "POWER W", "HOTTEST"]]
    for row in response["devices"]:
        power = ",".join(f"{t}={s}" if len(row["power"]) > 1 else s for t, s in row["power"].items()) or "-"
        figures = row["figures"]
        watts = figures.get("system_power", figures.get("total_power"))
        rows.append(
            [
                row["device"],
                row["kind"],
                row["rack"],
                row["availability"],
                power,
                row["health"],
                "-" if watts is None else f"{watts:.0f}",
                "-" if figures.get("hottest_temp") is None else f"{figures['hottest_temp']:.0f} C",
            ]
        )
    _table(rows)
    for rack, draw in response.get("racks", {}).items():
        print(f"rack {rack}: {draw:.0f} W")
    return 0


async def power_cmd(args: argparse.Namespace) -> int:
    """`rackd power ACTION NODE…`."""
    action = "power." + args.action.replace("-", "_")
    extra: dict[str, Any] = {"via": args.via}
    if args.escalate:
        extra["escalate"] = True
    return await _act(args, action, [(t, extra) for t in args.targets])


async def outlet_cmd(args: argparse.Namespace) -> int:
    """`rackd outlet ACTION PDU:N…`."""
    targets = []
    for target in args.targets:
        pdu, sep, outlet = target.partition(":")
        if not sep or not pdu or not outlet:
            print(f"rackd: {target!r} is not PDU:N", file=sys.stderr)
            return 2
        targets.append((pdu, {"outlet": outlet}))
    return await _act(args, "outlet." + args.action, targets)


async def _act(args: argparse.Namespace, action: str, targets: list[tuple[str, dict[str, Any]]]) -> int:
    if args.mqtt:
        from rackd.cli.mqtt_client import mqtt_act  # noqa: PLC0415 - only with --mqtt

        return await mqtt_act(args, action, targets)
    path = socket_path(args)
    command_id = args.id or str(uuid.uuid4())
    results: dict[str, dict[str, Any]] = {}
    if len(targets) == 1:
        device, extra = targets[0]
        reader, writer, _ = await open_operation(
            path,
            "command",
            device=device,
            action=action,
            args=extra,
            reason=args.reason,
            force=args.force,
            id=command_id,
        )
        await _stream(reader, args, results)
        writer.close()
    else:
        # Outlet targets differ per PDU in their args; the daemon's bulk op takes one args for all devices.
        groups: dict[str, list[str]] = {}
        for device, extra in targets:
            groups.setdefault(json.dumps(extra, sort_keys=True), []).append(device)
        for extra_json, devices in groups.items():
            reader, writer, _ = await open_operation(
                path,
                "bulk",
                devices=devices,
                action=action,
                args=json.loads(extra_json),
                reason=args.reason,
                force=args.force,
                confirm=args.yes,
                id=command_id,
            )
            await _stream(reader, args, results)
            writer.close()
    if args.json:
        print(json.dumps(list(results.values()), indent=2))
    else:
        for result in results.values():
            print(f"{result['device']}: {result['status']}: {result['message']}")
    return 0 if results and all(r["status"] == "succeeded" for r in results.values()) else 1


async def _stream(reader: asyncio.StreamReader, args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    """Print live progress lines until the result(s) arrive."""
    while True:
        try:
            message = await read_message(reader)
        except ProtocolError:
            return
        if "step" in message and not args.json:
            step = message["step"]
            print(f"  {message.get('device', '')}: {step['message']}", flush=True)
        if "result" in message:
            result = message["result"]
            results[result["device"]] = result
            if "device" not in message:  # a single command ends with its result
                return
        if message.get("done"):
            return


async def events_cmd(args: argparse.Namespace) -> int:
    """`rackd events --follow`."""
    reader, writer, _ = await open_operation(socket_path(args), "events")
    try:
        while True:
            try:
                event = await read_message(reader)
            except ProtocolError:
                return 0
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                print(
                    f"{event['ts']} {event['device']:<12} {event['severity']:<8} {event['type']:<20} "
                    f"{event['message']}",
                    flush=True,
                )
    finally:
        writer.close()


async def sensors_cmd(args: argparse.Namespace) -> int:
    """`rackd sensors NODE`."""
    response = await call(socket_path(args), "sensors", device=args.device)
    if args.json:
        print(json.dumps(response["readings"], indent=2))
        return 0
    rows = [["SENSOR", "VALUE", "UNIT", "HEALTH", "STATES"]]
    for r in response["readings"]:
        value = "n/a" if r["value"] is None else f"{r['value']:g}"
        rows.append([r["sensor"], value, r["unit"], r["health"], ", ".join(r["states"])])
    print(f"{response['device']} ({response['availability']})")
    _table(rows)
    return 0


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
