"""`rackd sim rack`: the linked virtual rack; prints one JSON line (endpoints, credentials, control port) when ready."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import structlog

from rackd_sim.rack.config_writer import write_config
from rackd_sim.rack.control import RackControl
from rackd_sim.rack.rack import LOOPBACK, VirtualRack
from rackd_sim.rack.spec import SpecError, load_spec

log = structlog.get_logger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd sim rack`."""
    parser = subparsers.add_parser(
        "rack",
        help="a whole linked rack: BMCs, PDUs on feeds A/B, consoles (faults: rackd sim fault)",
        description="Outlets feed PSUs, host power drives draw, temperatures and the console, and the PDUs meter "
        "what the servers draw. See docs/demo.md for the spec format.",
    )
    parser.add_argument("--spec", type=Path, help="rack spec (TOML; default: the shipped inference rack)")
    parser.add_argument("--write-config", type=Path, metavar="PATH",
                        help="write a rackd config for this rack (secrets in PATH's directory, under secrets/)")
    parser.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883", help="broker URL for the written config")
    parser.add_argument("--control-port", type=int, default=0, help="TCP port of the fault channel (default: free)")
    parser.add_argument("--log-dir", type=Path, help="keep each BMC simulator's log here")
    parser.set_defaults(func=run)


async def serve(args: argparse.Namespace) -> int:
    """Start the rack, print the ready line, link until SIGTERM/SIGINT, stop every part."""
    spec = load_spec(args.spec)
    rack = VirtualRack(spec, log_dir=args.log_dir)
    control = RackControl(rack)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rack.start()
    try:
        port = await control.start(args.control_port)
        config = None
        if args.write_config is not None:
            write_config(rack, args.write_config, args.mqtt_url)
            config = str(args.write_config.resolve())
        ready = {"kind": "rack", "pid": os.getpid(), "control": f"{LOOPBACK}:{port}", "config": config,
                 **rack.describe()}
        print(json.dumps(ready), flush=True)
        log.info("rack_sim_ready", rack=spec.id, servers=len(rack.servers), pdus=len(spec.pdus), control_port=port)
        await stop.wait()
    finally:
        await control.stop()
        await rack.stop()
        log.info("rack_sim_stopped", rack=spec.id)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `rackd sim rack`."""
    try:
        return asyncio.run(serve(args))
    except (SpecError, OSError, TimeoutError) as exc:
        print(f"rackd sim rack: {exc}", file=sys.stderr)
        return 1
