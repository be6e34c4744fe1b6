"""`rackd sim pdu …`: simulated PDUs on loopback; prints one JSON line with endpoints and credentials."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from rackd_sim.pdu.agent import LOOPBACK, PduSpec, V3User
from rackd_sim.pdu.model import PowerOn, Timing
from rackd_sim.pdu.simulator import PduSimulator
from rackd_sim.pdu.vendors.registry import VENDORS


def _v3_user(text: str) -> V3User:
    parts = text.split(":")
    if len(parts) not in (3, 5) or not all(parts):
        raise argparse.ArgumentTypeError("expected USER:AUTHKEY:PRIVKEY[:SHA|SHA-256:AES|AES-256]")
    if any(len(key) < 8 for key in parts[1:3]):
        raise argparse.ArgumentTypeError("SNMPv3 keys need at least 8 characters")
    if len(parts) == 5:
        return V3User(parts[0], parts[1], parts[2], auth_protocol=parts[3], priv_protocol=parts[4])
    return V3User(parts[0], parts[1], parts[2])


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd sim pdu`."""
    parser = subparsers.add_parser(
        "pdu", help="simulated SNMP PDUs (APC, Raritan, ServerTech, Eaton) with switchable outlets"
    )
    parser.add_argument("--vendor", action="append", default=[], choices=sorted(VENDORS),
                        help="simulate a PDU of this family (repeatable)")
    parser.add_argument("--recording", action="append", default=[], type=Path,
                        help="seed a PDU from an snmpsim .snmprec walk (repeatable)")
    parser.add_argument("--count", type=int, default=1, help="PDUs per --vendor/--recording (default 1)")
    parser.add_argument("--outlets", type=int, help="outlets per PDU (default: as recorded, else 8)")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0, help="port of the first PDU (default: free ports)")
    parser.add_argument("--read-community", default="public")
    parser.add_argument("--write-community", default="private")
    parser.add_argument("--shared-port", action="store_true",
                        help="all PDUs on one port and engine; communities become COMMUNITY-pduN")
    parser.add_argument("--v3-user", action="append", default=[], type=_v3_user,
                        help="USER:AUTHKEY:PRIVKEY[:SHA|SHA-256:AES|AES-256] (authPriv, repeatable)")
    parser.add_argument("--switch-delay", type=float, default=0.5, help="relay time after a command (s)")
    parser.add_argument("--reboot-off", type=float, default=5.0, help="off time of a native reboot (s)")
    parser.add_argument("--delayed", type=float, default=3.0, help="delay of delayed/queued commands (s)")
    parser.add_argument("--load", type=float, default=120.0, help="initial load per outlet (W)")
    parser.add_argument("--power-on", choices=[p.value for p in PowerOn], default=PowerOn.LAST.value,
                        help="what outlets do when the PDU powers up")
    parser.set_defaults(func=run)


def specs_from_args(args: argparse.Namespace) -> list[PduSpec]:
    """One spec per PDU the arguments ask for."""
    sources: list[tuple[str | None, Path | None]] = [(vendor, None) for vendor in args.vendor]
    sources += [(None, recording) for recording in args.recording]
    if not sources:
        sources = [("apc_rpdu2", None)]
    timing = Timing(switch=args.switch_delay, reboot_off=args.reboot_off, delayed=args.delayed)
    specs: list[PduSpec] = []
    for vendor, recording in sources:
        for _ in range(max(1, args.count)):
            number = len(specs) + 1
            specs.append(
                PduSpec(
                    name=f"pdu{number}",
                    vendor=vendor,
                    recording=recording,
                    outlets=args.outlets,
                    host=args.host,
                    port=args.port + number - 1 if args.port and not args.shared_port else args.port,
                    read_community=f"{args.read_community}-pdu{number}" if args.shared_port else args.read_community,
                    write_community=(
                        f"{args.write_community}-pdu{number}" if args.shared_port else args.write_community
                    ),
                    v3_users=tuple(args.v3_user),
                    timing=timing,
                    load_w=args.load,
                    power_on=PowerOn(args.power_on),
                )
            )
    return specs


async def _serve(specs: list[PduSpec], shared_port: bool) -> None:
    simulator = PduSimulator(specs, shared_port=shared_port)
    simulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(json.dumps(simulator.describe()), flush=True)
        await stop.wait()
    finally:
        simulator.stop()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    try:
        specs = specs_from_args(args)
        asyncio.run(_serve(specs, args.shared_port))
    except (ValueError, OSError) as exc:
        print(f"rackd sim pdu: {exc}", file=sys.stderr)
        return 1
    return 0
