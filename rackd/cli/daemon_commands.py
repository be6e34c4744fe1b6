"""`rackd run`, `check-config`, `poll` and `drivers`: the commands that need no running daemon."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import threading
from typing import Any

import structlog

from rackd.config import Config, load_config
from rackd.drivers.registry import DriverRegistry
from rackd.errors import ConfigError, DriverNotFoundError, RackdError, describe


def _load(args: argparse.Namespace, registry: DriverRegistry) -> Config | None:
    try:
        return load_config(args.config, registry)
    except ConfigError as exc:
        print(f"rackd: config has {len(exc.issues)} error(s):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return None


def check_config(args: argparse.Namespace) -> int:
    """Validate the config; print every problem and exit 1, or a summary and exit 0."""
    config = _load(args, DriverRegistry())
    if config is None:
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    kinds: dict[str, int] = {}
    for spec in config.devices:
        kinds[spec.kind] = kinds.get(spec.kind, 0) + 1
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "no devices"
    print(f"{config.source}: ok (site {config.site}: {summary})")
    return 0


def _raise_descriptor_limit() -> None:
    """Lift the soft limit on open files to the hard one.

    Every console holds a connection and a log file, every PDU and every 64 BMCs a socket: a site needs more than
    the 1,024 a login shell or a unit without LimitNOFILE= gives by default, and running out (EMFILE) fails
    connections one by one at random.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            structlog.get_logger(__name__).warning("nofile_limit_not_raised", soft=soft, hard=hard, error=str(exc))


def run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from rackd.runtime.supervisor import run_daemon  # noqa: PLC0415 - keep `rackd --help` light

    registry = DriverRegistry()
    config = _load(args, registry)
    if config is None:
        return 1
    _raise_descriptor_limit()
    code = asyncio.run(run_daemon(config, registry))
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if busy:
        # Worker threads still blocked in a library call to a hung device (pyghmi retries for a long time) would
        # hold the interpreter's exit; the shutdown is complete (offline published, spool closed), so leave now.
        structlog.get_logger(__name__).info("exiting_with_busy_threads", threads=len(busy))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def poll(args: argparse.Namespace) -> int:
    """One read of one device, printed as a table or JSON."""
    from rackd.runtime.probe import format_probe, probe_device  # noqa: PLC0415

    registry = DriverRegistry()
    config = _load(args, registry)
    if config is None:
        return 1
    try:
        spec = config.device(args.device)
    except KeyError as exc:
        print(f"rackd: {exc.args[0]}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(probe_device(spec, config, registry))
    except RackdError as exc:
        print(f"rackd: {spec.id}: {describe(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_probe(result))
    return 0 if result.ok else 1


def drivers(args: argparse.Namespace) -> int:
    """List installed drivers, their capabilities and where they come from."""
    registry = DriverRegistry()
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        try:
            info = registry.info(name)
        except DriverNotFoundError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append(
            {
                "name": info.name,
                "capabilities": sorted(info.capabilities),
                "options": sorted(info.options_model.model_fields),
                "distribution": info.distribution,
                "target": info.target,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<12} BROKEN: {row['error']}")
        else:
            print(f"{row['name']:<12} {', '.join(row['capabilities']):<45} {row['target']}")
    return 0
