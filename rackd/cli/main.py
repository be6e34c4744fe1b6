"""Entry point of the `rackd` program: parses arguments and dispatches to the subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rackd.cli import daemon_commands
from rackd.logs import configure_logging

# Modules that add their own subcommands with `add_parser(subparsers)`.
COMMAND_MODULES = (
    "rackd.cli.console_cmd",  # rackd console NODE …
    "rackd.cli.demo",  # rackd demo [--headless] [--spec FILE] [--dir DIR]
    "rackd.cli.operator",  # rackd status / power / outlet / events / sensors
    "rackd_sim.cli",  # rackd sim KIND …
)


def _version() -> str:
    try:
        return version("rackd")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The whole `rackd` argument tree."""
    parser = argparse.ArgumentParser(prog="rackd", description="Out-of-band management of GPU server racks.")
    parser.add_argument("--version", action="version", version=f"rackd {_version()}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["json", "console"], help="default: json unless stderr is a TTY")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, required=True, help="config file (TOML)")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    config_arg(run)
    run.set_defaults(func=daemon_commands.run)

    check = sub.add_parser("check-config", help="validate a config; exit 0, or print every error and exit 1")
    config_arg(check)
    check.set_defaults(func=daemon_commands.check_config)

    poll = sub.add_parser("poll", help="read one device once (no daemon, no broker) and print what it reports")
    config_arg(poll)
    poll.add_argument("device", help="device id from the config")
    poll.add_argument("--json", action="store_true", help="machine-readable output")
    poll.set_defaults(func=daemon_commands.poll)

    drivers = sub.add_parser("drivers", help="list installed drivers and their capabilities")
    drivers.add_argument("--json", action="store_true")
    drivers.set_defaults(func=daemon_commands.drivers)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that part is not built (or not installed)
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `rackd` with `argv` (default: sys.argv); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    json_logs = None if args.log_format is None else args.log_format == "json"
    configure_logging(args.log_level, sys.stderr, json_logs)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
