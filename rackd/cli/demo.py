"""`rackd demo`: mosquitto, the virtual rack and the daemon on this machine, with a live view of the rack."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rackd.testing.broker import Mosquitto

RACK_READY_TIMEOUT = 120.0  # s: six BMC processes starting on a busy laptop
STOP_TIMEOUT = 15.0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd demo`."""
    parser = subparsers.add_parser("demo", help="the whole system on this machine: broker, virtual rack, daemon, view")
    add_arguments(parser)
    parser.set_defaults(func=demo)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument("--spec", type=Path, help="virtual rack spec (TOML; default: the shipped inference rack)")
    parser.add_argument("--headless", action="store_true", help="no live view: run until Ctrl-C / SIGTERM")
    parser.add_argument("--dir", type=Path, help="keep config, secrets, state and logs here (default: a temp dir)")


def _start(argv: list[str], log_path: Path, *, stdout: int | None = None) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 - this interpreter with our own arguments, no shell
            [sys.executable, "-m", "rackd", *argv],
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops its children in order
        )


class StartInterruptedError(Exception):
    """Ctrl-C / SIGTERM arrived while the demo was starting."""


def _ready_line(process: subprocess.Popen[bytes], timeout: float, stop: threading.Event) -> dict[str, Any]:
    """The child's one JSON line on stdout, within `timeout` (StartInterruptedError once `stop` is set)."""
    assert process.stdout is not None
    stream: IO[bytes] = process.stdout
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"\n" not in buffer:
            if stop.is_set():
                raise StartInterruptedError
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not ready within {timeout:g} s")
            if not selector.select(min(remaining, 0.5)):  # wake up now and then to notice a stop signal
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"exited before it was ready (status {process.wait()})")
            buffer += chunk
    ready: dict[str, Any] = json.loads(buffer.split(b"\n", 1)[0])
    return ready


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM by PID, then SIGKILL if it does not exit in time."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class DemoStack:
    """The demo's processes: broker, virtual rack (with its BMC children), daemon."""

    home: Path
    spec: Path | None = None
    broker: Mosquitto = field(default_factory=Mosquitto)
    rack: subprocess.Popen[bytes] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    rack_ready: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def config(self) -> Path:
        """The generated rackd config."""
        return self.home / "rackd.toml"

    def start(self) -> None:
        """Broker, then the rack (which writes the config), then the daemon on it."""
        self.broker.start()
        argv = [
            "--log-level",
            "info",
            "sim",
            "rack",
            "--write-config",
            str(self.config),
            "--mqtt-url",
            self.broker.url,
            "--log-dir",
            str(self.home),
        ]
        if self.spec is not None:
            argv += ["--spec", str(self.spec)]
        self.rack = _start(argv, self.home / "rack.log", stdout=subprocess.PIPE)
        try:
            self.rack_ready = _ready_line(self.rack, RACK_READY_TIMEOUT, self.stopping)
        except (TimeoutError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"the virtual rack did not start ({exc}); see {self.home / 'rack.log'}") from exc
        self.daemon = _start(["--log-format", "json", "run", "-c", str(self.config)], self.home / "rackd.log")

    def failed_child(self) -> str | None:
        """The name of a child that exited on its own, if any."""
        for name, process in (("virtual rack", self.rack), ("daemon", self.daemon)):
            if process is not None and process.poll() is not None:
                return f"{name} exited with status {process.returncode}"
        return None

    def stop(self) -> None:
        """Daemon first (it logs out of the BMCs), then the rack, then the broker; each by its PID."""
        _stop(self.daemon)
        _stop(self.rack)
        self.broker.cleanup()

    def ready(self) -> dict[str, Any]:
        """What a script needs: the broker, the config, the rack's control port and layout."""
        return {
            "kind": "demo",
            "pid": os.getpid(),
            "broker": self.broker.url,
            "config": str(self.config),
            "home": str(self.home),
            "rack_control": self.rack_ready.get("control"),
            "site": self.rack_ready.get("site"),
            "rack": self.rack_ready.get("rack"),
            "servers": [server["id"] for server in self.rack_ready.get("servers", [])],
            "pdus": [pdu["id"] for pdu in self.rack_ready.get("pdus", [])],
            "daemon_pid": self.daemon.pid if self.daemon else None,
            "rack_pid": self.rack.pid if self.rack else None,
            "bmc_pids": [s["bmc"]["pid"] for s in self.rack_ready.get("servers", []) if "bmc" in s],
            "broker_pid": self.broker.process.pid if self.broker.process else None,
        }

    def how_to(self) -> str:
        """How to watch and operate the running demo from another terminal."""
        config = self.config
        control = self.rack_ready.get("control")
        site = self.rack_ready.get("site")
        first = next((s["id"] for s in self.rack_ready.get("servers", []) if "bmc" in s), "gpu-01")
        pdu = next((p["id"] for p in self.rack_ready.get("pdus", [])), "pdu-a1")
        return "\n".join(
            [
                (
                    f"rackd demo: virtual rack {self.rack_ready.get('rack')} (site {site}) managed by rackd, all on "
                    "this machine"
                ),
                f"  broker:                {self.broker.url}",
                f"  config:                {config}  (secrets in {config.parent / 'secrets'})",
                f"  logs:                  {self.home / 'rackd.log'}, {self.home / 'rack.log'}",
                f"  watch the raw stream:  mosquitto_sub -h 127.0.0.1 -p {self.broker.port} -t 'rackd/v1/{site}/#' -v",
                f"  status:                rackd status -c {config}",
                f"  power-cycle a server:  rackd power cycle {first} --reason demo -c {config}",
                f"  with escalation:       rackd power cycle {first} --escalate --reason demo -c {config}",
                f"  PDU outlets:           rackd outlet status {pdu}:1 -c {config}",
                f"  events:                rackd events --follow -c {config}",
                f"  sensors:               rackd sensors {first} -c {config}",
                f"  console:               rackd console {first} -c {config}   (detach: &.)",
                (
                    f"  inject a fault:        rackd sim fault {first} hang --control {control}"
                    "   (all kinds: rackd sim fault -h)"
                ),
                "  stop:                  Ctrl-C",
            ]
        )


class _Stop:
    """SIGINT / SIGTERM → a flag the demo's loops check."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _headless(stack: DemoStack, stop: _Stop) -> int:
    print(stack.how_to(), flush=True)
    print(json.dumps(stack.ready()), flush=True)
    while not stop.event.wait(0.5):  # a signal, or a child that died, ends the demo
        failure = stack.failed_child()
        if failure is not None:
            print(f"rackd demo: {failure}; stopping", file=sys.stderr)
            return 1
    return 0


def _view(stack: DemoStack, stop: _Stop) -> int:
    from rackd_sim.rack.view.screen import ViewSetup, run_view  # noqa: PLC0415 - curses only with a terminal

    ready = stack.rack_ready
    setup = ViewSetup(
        site=str(ready["site"]),
        rack=str(ready["rack"]),
        servers=[server["id"] for server in ready["servers"]],
        consoles={server["id"] for server in ready["servers"] if "console" in server},
        pdus=[pdu["id"] for pdu in ready["pdus"]],
        broker_port=stack.broker.port,
        config=stack.config,
        rack_control=str(ready["control"]),
        how_to=stack.how_to().splitlines(),
        failed_child=stack.failed_child,
    )
    return run_view(setup, stop.event)


def demo(args: argparse.Namespace) -> int:
    """Start everything, show the view (or wait headless), stop everything on Ctrl-C / SIGTERM."""
    if getattr(args, "config", None) is not None:
        print(
            "rackd demo: -c is not used any more: the demo writes its own config for the virtual rack "
            "(choose the rack with --spec)",
            file=sys.stderr,
        )
        return 2
    home: Path = getattr(args, "dir", None) or Path(tempfile.mkdtemp(prefix="rackd-demo-"))
    keep = getattr(args, "dir", None) is not None
    home.mkdir(parents=True, exist_ok=True)
    stop = _Stop()
    stack = DemoStack(home.resolve(), spec=getattr(args, "spec", None), stopping=stop.event)
    stop.install()
    try:
        print("rackd demo: starting mosquitto, the virtual rack and the daemon …", file=sys.stderr, flush=True)
        stack.start()
        if stop.event.is_set():
            return 0
        if getattr(args, "headless", False) or not sys.stdout.isatty():
            return _headless(stack, stop)
        print(stack.how_to(), flush=True)  # stays in the terminal's scrollback under the view
        return _view(stack, stop)
    except StartInterruptedError:
        return 0
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"rackd demo: {exc}", file=sys.stderr)
        return 1
    finally:
        print("rackd demo: stopping …", file=sys.stderr, flush=True)
        stack.stop()
        stop.restore()
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rackd.cli.demo [--headless] …` (the same as `rackd demo`)."""
    from rackd.logs import configure_logging  # noqa: PLC0415 - only for this entry point

    parser = argparse.ArgumentParser(prog="rackd demo", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging("warning", sys.stderr, None)
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
