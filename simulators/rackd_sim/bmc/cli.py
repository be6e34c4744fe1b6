"""`rackd sim bmc`: run one simulated GPU-server BMC and print its endpoint and credentials as one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from types import FrameType

import structlog

from rackd_sim.bmc.control import BmcController, ControlServer
from rackd_sim.bmc.machine import ServerMachine, Timing
from rackd_sim.bmc.sel import EventLog
from rackd_sim.bmc.server import SimulatedBmc, serve_forever

log = structlog.get_logger(__name__)


def _suites(text: str) -> tuple[int, ...]:
    suites = tuple(int(part) for part in text.split(",") if part.strip())
    if not suites or any(s not in (3, 17) for s in suites):
        raise argparse.ArgumentTypeError("cipher suites: a comma-separated subset of 3,17")
    return suites


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bmc` to `rackd sim`."""
    p = subparsers.add_parser("bmc", help="a GPU server's BMC (IPMI 2.0 / RMCP+ on UDP)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="UDP port (default: a free one)")
    p.add_argument("--control-port", type=int, default=0, help="TCP control port (default: a free one)")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default=None, help="default: random, printed in the ready line")
    p.add_argument("--off", action="store_true", help="start with the server powered off")
    p.add_argument("--load", type=float, default=0.3, help="workload share 0..1 (default 0.3)")
    p.add_argument("--power-on-delay", type=float, default=3.0)
    p.add_argument("--power-off-delay", type=float, default=0.5)
    p.add_argument("--boot-delay", type=float, default=20.0, help="OS boot time after power-on")
    p.add_argument("--shutdown-delay", type=float, default=5.0, help="OS shutdown time after soft-off")
    p.add_argument("--cycle-off-time", type=float, default=2.0)
    p.add_argument("--session-limit", type=int, default=4)
    p.add_argument("--session-timeout", type=float, default=60.0, help="idle session expiry (seconds)")
    p.add_argument("--cipher-suites", type=_suites, default=(3, 17), help="accepted suites, e.g. 3,17")
    p.add_argument("--sel-capacity", type=int, default=512)
    p.add_argument("--sel-no-wrap", action="store_true", help="stop logging when the SEL is full")
    p.add_argument("--cold-reset-time", type=float, default=1.0, help="silence after a BMC cold reset")
    p.set_defaults(func=run)


def build(args: argparse.Namespace, password: str) -> SimulatedBmc:
    """The BMC these arguments describe (bound, not yet serving)."""
    timing = Timing(
        power_on=args.power_on_delay,
        power_off=args.power_off_delay,
        boot=args.boot_delay,
        shutdown=args.shutdown_delay,
        cycle_off=args.cycle_off_time,
    )
    machine = ServerMachine(timing, powered=not args.off, sel=EventLog(args.sel_capacity, wrap=not args.sel_no_wrap))
    machine.set_load(args.load)
    return SimulatedBmc(
        {args.username: password},
        port=args.port,
        address=args.host,
        machine=machine,
        session_limit=args.session_limit,
        session_timeout=args.session_timeout,
        cipher_suites=args.cipher_suites,
        cold_reset_time=args.cold_reset_time,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    password = args.password if args.password is not None else secrets.token_urlsafe(9)
    bmc = build(args, password)
    control = ControlServer(BmcController(bmc), host=args.host, port=args.control_port)
    control.start()
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ready = {
        "kind": "bmc",
        "pid": os.getpid(),
        "host": args.host,
        "port": bmc.port,
        "username": args.username,
        "password": password,
        "cipher_suites": list(bmc.cipher_suites),
        "control": f"{args.host}:{control.port}",
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    log.info("bmc_sim_ready", host=args.host, port=bmc.port, control_port=control.port)
    serve_forever(stop)
    control.stop()
    log.info("bmc_sim_stopped", port=bmc.port)
    return 0
