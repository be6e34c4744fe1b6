"""`rackd sim fault TARGET KIND [VALUE]`: tell a running virtual rack to misbehave, over its control port."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

from rackd_sim.rack.faults import PDU_FAULTS, SERVER_FAULTS

CONTROL_ENV = "RACKD_SIM_RACK_CONTROL"


def _epilog() -> str:
    servers = "\n".join(f"  {kind:<16} {text}" for kind, text in SERVER_FAULTS.items())
    pdus = "\n".join(f"  {kind:<16} {text}" for kind, text in PDU_FAULTS.items())
    return f"faults of a server (TARGET = its id):\n{servers}\nfaults of a PDU (TARGET = its id):\n{pdus}"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd sim fault`."""
    parser = subparsers.add_parser(
        "fault",
        help="inject a fault into a running `rackd sim rack` (BMC hang, PDU timeout, panic, Xid, PSU failure …)",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help="a server or PDU id of the rack")
    parser.add_argument("kind", help="what goes wrong (see below)")
    parser.add_argument("value", nargs="?", help="the fault's parameter (rate, seconds, Xid code, PSU number)")
    parser.add_argument("--control", default=os.environ.get(CONTROL_ENV),
                        help=f"HOST:PORT of the rack's control channel (its ready line; default ${CONTROL_ENV})")
    parser.set_defaults(func=run)


def send(control: str, request: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """One request to the rack's control channel; its answer."""
    host, _, port = control.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, Any] = json.loads(connection.makefile("rb").readline() or b"{}")
    return reply


def run(args: argparse.Namespace) -> int:
    """Send the fault; print what the rack did (exit 0) or why it could not (exit 1)."""
    if not args.control:
        print(f"rackd sim fault: say where the rack is: --control HOST:PORT or ${CONTROL_ENV}", file=sys.stderr)
        return 2
    try:
        reply = send(args.control, {"op": "fault", "target": args.target, "kind": args.kind, "value": args.value})
    except (OSError, ValueError) as exc:
        print(f"rackd sim fault: cannot reach the rack at {args.control}: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"rackd sim fault: {reply.get('error')}", file=sys.stderr)
        return 1
    print(f"{args.target}: {reply.get('result')}")
    return 0
