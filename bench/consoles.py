"""Consoles: rackd's CPU and memory for 50 and 200 consoles streaming at 115200 baud, every byte logged.

.venv/bin/python -m bench.consoles --consoles 50,200 [--window 30] [--quick]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.daemon import Daemon, base_sections, render
from bench.fleet import JsonLineProcess, unwind_on_sigterm
from bench.report import Table, arguments
from rackd.testing.broker import Mosquitto

BAUD = 115200
LINE_BYTES = 70  # about the length of a flood line of the simulator


def logged_bytes(directory: Path) -> int:
    """Bytes of console log on disk (rotated files included)."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def measure_one(count: int, window: float, workdir: Path, broker: Mosquitto) -> dict[str, float]:
    """`count` consoles on one simulated console server, all flooding, for `window` seconds of rackd's CPU."""
    sim = JsonLineProcess(
        ["sim", "console-server", "--count", str(count), "--baud", str(BAUD), "--boot-speed", "0"],
        workdir / f"consoles{count}.log",
        stdin_pipe=True,
    )
    consoles = sim.start()["consoles"]
    site = workdir / f"site{count}"
    site.mkdir()
    nodes = [{"id": c["name"], "rack": "r1", "console": {"url": c["raw"]}} for c in consoles]
    config = site / "rackd.toml"
    config.write_text(render(base_sections(site, broker.url, 30.0, 5.0), {"node": nodes}), encoding="utf-8")
    daemon = Daemon(config, site / "daemon.log")
    try:
        daemon.start()
        # Enough output for the warm-up and the window at full line rate, queued once (the simulator paces it).
        lines = int((window + 15) * BAUD / 10 / LINE_BYTES) + 100
        for console in consoles:
            sim.command(f"flood {console['name']} {lines}")
        logs = site / "console"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if logged_bytes(logs) > count * 8192:  # every console has streamed for a while
                break
            time.sleep(0.5)
        time.sleep(2)  # past the connect burst: measure the steady stream
        cpu0, bytes0, t0 = daemon.cpu(), logged_bytes(logs), time.monotonic()
        time.sleep(window)
        cpu1, bytes1, t1 = daemon.cpu(), logged_bytes(logs), time.monotonic()
        rss = daemon.rss()
        alive = daemon.alive()
    finally:
        daemon.stop()
        sim.stop()
    wall = t1 - t0
    rate = (bytes1 - bytes0) / wall
    return {
        "cpu_share": (cpu1 - cpu0) / wall,
        "bytes_per_s": rate,
        "per_console_bps": rate * 10 / count,  # 8N1: 10 bits on the wire per byte
        "us_per_kib": (cpu1 - cpu0) / max(1.0, (bytes1 - bytes0) / 1024) * 1e6,
        "rss_mib": rss,
        "alive": float(alive),
    }


def measure(sizes: list[int], window: float, workdir: Path) -> Table:
    """Each console count against a fresh daemon and simulator; one broker."""
    table = Table(
        "consoles",
        "Consoles: rackd CPU and memory while every console streams, all logged",
        [
            "consoles", "line rate (baud)", "logged KiB/s (all)", "effective baud per console",
            "rackd CPU (% of one core)", "rackd µs CPU per KiB", "rackd RSS MiB",
        ],
    )  # fmt: skip
    broker = Mosquitto(workdir=workdir / "broker")
    (workdir / "broker").mkdir()
    broker.start()
    try:
        for count in sizes:
            got = measure_one(count, window, workdir, broker)
            table.add(
                **{
                    "consoles": count,
                    "line rate (baud)": BAUD,
                    "logged KiB/s (all)": got["bytes_per_s"] / 1024,
                    "effective baud per console": got["per_console_bps"],
                    "rackd CPU (% of one core)": got["cpu_share"] * 100,
                    "rackd µs CPU per KiB": got["us_per_kib"],
                    "rackd RSS MiB": got["rss_mib"],
                }
            )
            if not got["alive"]:
                table.notes.append(f"{count} consoles: the daemon had exited by the end of the window.")
    finally:
        broker.cleanup()
    table.notes += [
        (
            f"One `rackd sim console-server` process (raw TCP ports, output paced at {BAUD} baud, `flood` on every "
            f'console); `rackd run` with one `[[node]]` per console (`console = {{ url = "tcp://…" }}`), logging to '
            f"console_log_dir. Window {window:.0f} s after every console had logged; rackd CPU from /proc/PID/stat."
        ),
        (
            "effective baud = bytes logged per second x 10 / consoles. The log file adds a timestamp per line, so a "
            "console at full line rate shows above 115200; well below it means the simulator (one Python process "
            "on the shared cores) could not pace every console at line rate."
        ),
    ]
    return table


def main() -> None:
    """Parse flags, run, write bench/results/consoles.{md,json}."""
    parser = arguments(__doc__ or "")
    unwind_on_sigterm()
    parser.add_argument("--consoles", default="50,200", help="comma-separated console counts")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per count")
    args = parser.parse_args()
    sizes = [3] if args.quick else [int(n) for n in args.consoles.split(",")]
    window = 3.0 if args.quick else args.window
    workdir = Path(tempfile.mkdtemp(prefix="rackd-bench-con-"))
    try:
        table = measure(sizes, window, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table.quick = args.quick
    table.write(args.out)


if __name__ == "__main__":
    main()
