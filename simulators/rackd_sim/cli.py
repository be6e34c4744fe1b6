"""`rackd sim …`: each simulator kind adds its own subcommand from its own module."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

# kind -> module with `add_parser(subparsers) -> None`; the parser sets `func(args) -> int` as a default.
SIMULATOR_MODULES = {
    "bmc": "rackd_sim.bmc.cli",
    "pdu": "rackd_sim.pdu.cli",
    "console-server": "rackd_sim.console_server.cli",
    "rack": "rackd_sim.rack.cli",
    "fault": "rackd_sim.fault.cli",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd sim KIND` for every simulator whose module is present."""
    sim = subparsers.add_parser("sim", help="run device simulators on loopback (prints one JSON line when ready)")
    kinds = sim.add_subparsers(dest="sim_kind", required=True, metavar="KIND")
    for module_name in SIMULATOR_MODULES.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that simulator is not built yet
            raise
        add_parser: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = module.add_parser
        add_parser(kinds)
