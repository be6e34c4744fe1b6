"""`rackd demo`: a broker and the daemon on the example rack of fake devices, on this machine, in one command."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rackd.config import load_config
from rackd.drivers.registry import DriverRegistry
from rackd.runtime.supervisor import Daemon
from rackd.testing.broker import Mosquitto

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fake-rack.toml"


def demo(args: argparse.Namespace) -> int:
    """Start mosquitto on a free loopback port and run the daemon on the example config until Ctrl-C."""
    config_path: Path = args.config or EXAMPLE
    scratch = Path(tempfile.mkdtemp(prefix="rackd-demo-"))
    broker = Mosquitto()
    try:
        broker.start()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"rackd demo: cannot start the broker: {exc}", file=sys.stderr)
        return 1
    os.environ.update(
        {
            "RACKD_MQTT__URL": broker.url,
            "RACKD_DAEMON__STATE_DIR": str(scratch / "state"),
            "RACKD_DAEMON__CONSOLE_LOG_DIR": str(scratch / "console"),
            "RACKD_DAEMON__CONTROL_SOCKET": str(scratch / "control.sock"),
        }
    )
    os.environ.setdefault("RACKD_EXAMPLE_BMC_PASSWORD", "demo")
    try:
        registry = DriverRegistry()
        config = load_config(config_path, registry)
        print(
            f"rackd demo: broker {broker.url}, config {config_path}, state in {scratch}\n"
            f"  watch the stream:  mosquitto_sub -h 127.0.0.1 -p {broker.port} -t 'rackd/#' -v\n"
            f"  one device once:   RACKD_EXAMPLE_BMC_PASSWORD=demo rackd poll -c {config_path} gpu-01\n"
            "  stop: Ctrl-C",
            flush=True,
        )
        return asyncio.run(Daemon(config, registry).run())
    except KeyboardInterrupt:
        return 0
    finally:
        broker.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
