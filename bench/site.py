"""One daemon at site scale: BMCs + PDUs + consoles on loopback simulators, polled at 30 s, under faults.

    .venv/bin/python -m bench.site --bmcs 1000 --pdus 200 --consoles 500 [--interval 30 --intervals 4] [--quick]

10 % of the BMCs hang and the rest drop 5 % of incoming packets. Measured: whether every healthy device's
telemetry stays fresher than 1.5 x its interval, rackd's CPU and resident memory, time from start to the first
telemetry of every device, and power.cycle commands over MQTT: publish -> first packet at the BMC (through a
timestamping UDP relay), and the verified cycle's time beyond the device's own delays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt

from bench.daemon import Daemon, base_sections, render
from bench.fleet import JsonLineProcess, bmc_fleet, unwind_on_sigterm
from bench.ipmi_sim import ipmi_sim_fleet
from bench.report import Table, arguments
from bench.udp_tap import UdpTap
from rackd.testing.broker import Mosquitto

PASSWORD = "bench-pass"
HANG_SHARE = 0.10
DROP_RATE = 0.05
PROBES = 3  # BMCs behind a timestamping relay, the targets of the power commands
CYCLE_OFF_TIME = 0.5  # [actions] cycle_off_time
SIM_OFF_DELAY, SIM_ON_DELAY = 0.1, 0.2  # the simulated BMC's own power delays (bench.fleet.BMC_TIMINGS)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation: with few samples p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


class TelemetryLog:
    """`mosquitto_sub` in its own process writing `unix-time topic` for every telemetry message."""

    def __init__(self, broker: Mosquitto, path: Path) -> None:
        """Subscribe to every device's telemetry."""
        self.path = path
        self._out = path.open("wb")
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "rackd/v1/bench/+/+/telemetry",
             "-F", "%U %t"],
            stdout=self._out, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> dict[str, list[float]]:
        """Stop by PID and return arrival times (unix seconds) per device id."""
        self.proc.terminate()
        self.proc.wait(10)
        self._out.close()
        arrivals: dict[str, list[float]] = {}
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            stamp, _, topic = line.partition(" ")
            parts = topic.split("/")
            if len(parts) == 6 and parts[-1] == "telemetry":
                arrivals.setdefault(parts[4], []).append(float(stamp))
        return arrivals


def write_config(
    workdir: Path, broker: Mosquitto, bmcs: list[tuple[str, int]], pdus: list[dict[str, Any]],
    consoles: list[dict[str, Any]], interval: float,
) -> Path:  # fmt: skip
    """The site's config: one node per BMC and per console, one [[pdu]] per PDU, secrets in files."""
    secrets = workdir / "secrets"
    secrets.mkdir()
    (secrets / "bmc").write_text(PASSWORD + "\n", encoding="utf-8")
    nodes: list[dict[str, Any]] = [
        {
            "id": f"gpu-{i:04d}",
            "rack": f"r{i // 40:02d}",
            "bmc": {
                "driver": "ipmi",
                "host": host,
                "port": port,
                "username": "admin",
                "password": {"file": str(secrets / "bmc")},
            },
        }
        for i, (host, port) in enumerate(bmcs)
    ]
    nodes += [{"id": f"con-{c['name']}", "rack": "rc", "console": {"url": c["raw"]}} for c in consoles]
    pdu_tables = []
    for pdu in pdus:
        community = secrets / pdu["name"]
        community.write_text(pdu["communities"]["read"] + "\n", encoding="utf-8")
        pdu_tables.append(
            {
                "id": pdu["name"], "rack": f"r{int(pdu['name'][3:]) // 2:02d}", "driver": "snmp",
                "host": pdu["host"], "port": pdu["port"], "profile": "apc_rpdu2", "timeout": 1.0, "retries": 1,
                "snmp": {"version": "2c", "community": {"file": str(community)}},
            }
        )  # fmt: skip
    sections = base_sections(workdir, broker.url, interval, 10.0)
    sections["actions"] = {"min_interval": 0.0, "cycle_off_time": CYCLE_OFF_TIME, "verify_interval": 0.1}
    config = workdir / "rackd.toml"
    config.write_text(render(sections, {"pdu": pdu_tables, "node": nodes}), encoding="utf-8")
    return config


async def power_cycles(
    broker: Mosquitto, taps: dict[str, UdpTap], rounds: int, interval: float, until: float
) -> tuple[list[float], list[float], int, dict[str, float]]:
    """`power.cycle` to each probe node over MQTT.

    (ms to first BMC packet, s beyond device delays, failures, wall-clock publish time of each succeeded command).
    """
    first_packet: list[float] = []
    overhead: list[float] = []
    published: dict[str, float] = {}
    failures = 0
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"bench-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe("rackd/v1/bench/+/+/cmd/result", qos=1)
        for round_no in range(rounds):
            for device, tap in taps.items():
                if time.monotonic() >= until:
                    return first_packet, overhead, failures, published  # the window is over: none may outlast it
                command_id = f"bench-{uuid.uuid4().hex[:12]}"
                request = {"v": 1, "id": command_id, "action": "power.cycle", "reason": "benchmark"}
                sent, sent_unix = time.monotonic(), time.time()
                await client.publish(f"rackd/v1/bench/r00/{device}/cmd", json.dumps(request), qos=1)
                status = await _final_status(client, command_id, max(1.0, min(30.0, until - time.monotonic())))
                done = time.monotonic()
                first = tap.first_after(sent)
                if status != "succeeded" or first is None:
                    failures += 1
                    continue
                first_packet.append((first - sent) * 1000)
                published[command_id] = sent_unix
                overhead.append(done - sent - CYCLE_OFF_TIME - SIM_OFF_DELAY - SIM_ON_DELAY)
            if round_no + 1 < rounds:
                await asyncio.sleep(min(interval / 3, 5.0))  # spread the commands over the poll schedule
    return first_packet, overhead, failures, published


def state_read_answered_ms(published: dict[str, float], steps: list[dict[str, Any]]) -> list[float]:
    """Publish -> the daemon's first step of each command, logged once the command's own state read was answered.

    The relay's first packet may belong to a poll of the same BMC; this bounds the command's own first packet
    from above (it includes that packet's round trip).
    """
    first_step: dict[str, float] = {}
    for step in steps:
        command_id = step.get("command_id")
        if command_id in published and command_id not in first_step:
            stamp = dt.datetime.fromisoformat(str(step["timestamp"]))
            first_step[command_id] = stamp.timestamp()
    return [(first_step[c] - published[c]) * 1000 for c in published if c in first_step]


async def _final_status(client: aiomqtt.Client, command_id: str, within: float) -> str:
    try:
        async with asyncio.timeout(within):
            async for message in client.messages:
                payload = json.loads(bytes(message.payload))
                if payload.get("id") == command_id and payload.get("status") in {"succeeded", "failed", "rejected"}:
                    return str(payload["status"])
    except TimeoutError:
        return "timeout"
    return "closed"


def freshness(
    arrivals: dict[str, list[float]], devices: list[str], start: float, end: float, interval: float
) -> tuple[int, float, str]:
    """(devices fresher than 1.5 x interval throughout [start, end], worst gap in s, the worst device)."""
    fresh, worst, worst_device = 0, 0.0, ""
    for device in devices:
        times = sorted(t for t in arrivals.get(device, []) if t <= end)
        inside = [t for t in times if t >= start]
        before = [t for t in times if t < start]
        marks = ([before[-1]] if before else [start - 1.5 * interval - 1]) + inside + [end]
        gap = max(b - a for a, b in itertools.pairwise(marks))
        if gap <= 1.5 * interval:
            fresh += 1
        if gap > worst:
            worst, worst_device = gap, device
    return fresh, worst, worst_device


async def run_site(
    n_bmcs: int, n_pdus: int, n_consoles: int, interval: float, intervals: int, commands: int, workdir: Path,
    impl: str = "ipmi_sim", hang_share: float = HANG_SHARE, drop_rate: float = DROP_RATE, log_level: str = "info",
) -> dict[str, Any]:  # fmt: skip
    """Start the simulators, the broker and the daemon; observe; command; stop everything by PID."""
    broker = Mosquitto(workdir=workdir / "broker")
    (workdir / "broker").mkdir()
    pdu_sim = JsonLineProcess(
        ["sim", "pdu", "--vendor", "apc_rpdu2", "--count", str(n_pdus), "--outlets", "24", "--shared-port"],
        workdir / "pdus.log",
    )
    console_sim = JsonLineProcess(
        ["sim", "console-server", "--count", str(n_consoles), "--boot-speed", "0"], workdir / "consoles.log"
    )
    taps: dict[str, UdpTap] = {}
    relays: list[UdpTap] = []
    stopped: list[int] = []  # ipmi_sim processes frozen with SIGSTOP: the hung BMCs
    daemon: Daemon | None = None
    telemetry: TelemetryLog | None = None
    n_pyghmi = n_bmcs if impl == "pyghmi" else min(PROBES, n_bmcs)
    with (
        bmc_fleet(n_pyghmi, workdir, ("--username", "admin", "--password", PASSWORD)) as fleet,
        ipmi_sim_fleet(n_bmcs - n_pyghmi, workdir) as sims,
    ):
        try:
            broker.start()
            pdus = pdu_sim.start()["pdus"]
            consoles = console_sim.start()["consoles"] if n_consoles else []
            hung = max(1, round(n_bmcs * hang_share)) if hang_share else 0
            probes = min(PROBES, n_bmcs - hung, n_pyghmi)
            # The last `hung` BMCs hang; the first `probes` (pyghmi simulators) sit behind timestamping relays
            # and take the commands. ipmi_sim has no fault injection: a relay drops its packets, SIGSTOP hangs it.
            endpoints: list[tuple[str, int]] = []
            for i in range(n_bmcs):
                is_hung = i >= n_bmcs - hung
                if i < n_pyghmi:
                    bmc = fleet[i]
                    ep = bmc.endpoint
                    assert ep is not None
                    bmc.control("faults", **({"hang": True} if is_hung else {"drop_rate": drop_rate}))
                    if i < probes:
                        tap = UdpTap((ep.host, ep.port))
                        taps[f"gpu-{i:04d}"] = tap
                        endpoints.append(("127.0.0.1", await tap.start()))
                    else:
                        endpoints.append((ep.host, ep.port))
                    continue
                sim = sims[i - n_pyghmi]
                if is_hung:
                    sim.process.send_signal(signal.SIGSTOP)
                    stopped.append(sim.process.pid)
                    endpoints.append((sim.host, sim.port))
                else:
                    relay = UdpTap((sim.host, sim.port), drop_rate=drop_rate, record=False)
                    relays.append(relay)
                    endpoints.append(("127.0.0.1", await relay.start()))
            config = write_config(workdir, broker, endpoints, pdus, consoles, interval)
            healthy = [f"gpu-{i:04d}" for i in range(n_bmcs - hung)] + [p["name"] for p in pdus]
            telemetry = TelemetryLog(broker, workdir / "telemetry.txt")
            await asyncio.sleep(0.5)  # the subscription is in place before the daemon publishes
            daemon = Daemon(config, workdir / "daemon.log", level=log_level)
            started_unix, started = time.time(), time.monotonic()
            daemon.start()
            # Wait (bounded) for the first telemetry of every healthy device.
            first_all: float | None = None
            seen: set[str] = set()
            deadline = started + max(3 * interval, 60.0)
            while time.monotonic() < deadline and first_all is None:
                await asyncio.sleep(0.25)
                lines = telemetry.path.read_text(encoding="utf-8", errors="replace").splitlines()
                seen = {line.split("/")[4] for line in lines if line.count("/") == 5}
                if set(healthy) <= seen:
                    first_all = time.time() - started_unix
            cpu0, window0 = daemon.cpu(), time.time()
            until = time.monotonic() + interval * intervals
            cycle_task = asyncio.create_task(power_cycles(broker, taps, commands, interval, until))
            await asyncio.sleep(interval * intervals)
            first_packet, overhead, failures, published = await cycle_task
            window1 = time.time()
            cpu1 = daemon.cpu()
            rss = daemon.rss()
            arrivals = telemetry.stop()
            telemetry = None
            fresh, worst_gap, worst_device = freshness(arrivals, healthy, window0, window1, interval)
            console_logs = sum(1 for p in (workdir / "console").rglob("*") if p.is_file())
            return {
                "bmcs": n_bmcs, "hung": hung, "pdus": n_pdus, "consoles": n_consoles, "interval": interval,
                "healthy": len(healthy), "fresh": fresh, "worst_gap": worst_gap, "worst_device": worst_device,
                "first_all": first_all, "seen_before_window": len(seen & set(healthy)),
                "cpu_cores": (cpu1 - cpu0) / (window1 - window0), "rss": rss, "window": window1 - window0,
                "first_packet_ms": first_packet, "overhead_s": overhead, "command_failures": failures,
                "state_read_ms": state_read_answered_ms(published, daemon.events("command_step")),
                "console_log_files": console_logs, "probes": probes, "impl": impl, "n_pyghmi": n_pyghmi,
                "drop_rate": drop_rate, "log_level": log_level,
                "unavailable": [
                    f"{e.get('device')}: {e.get('error')}"
                    for e in daemon.events("device_unavailable")
                    if e.get("device") in set(healthy)
                ],
            }  # fmt: skip
        finally:
            if telemetry is not None:
                telemetry.stop()
            if daemon is not None:
                # In a thread: the relays run on this event loop, and the daemon's logouts at shutdown go through
                # them (blocking here, every logout to an ipmi_sim went unanswered and the shutdown grace ran out).
                await asyncio.to_thread(daemon.stop)
            for tap in [*taps.values(), *relays]:
                tap.close()
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)  # a stopped process would not act on the SIGTERM that ends it
            console_sim.stop()
            pdu_sim.stop()
            broker.cleanup()


def table_of(result: dict[str, Any], quick: bool) -> Table:
    """The site result as one row plus notes saying what was reduced and why."""
    faults = result["hung"] or result["drop_rate"]
    table = Table(
        "site" if faults else "site_nofaults",
        "One daemon at site scale " + ("under the fault mix" if faults else "without faults (control)"),
        [
            "BMCs (hung)", "PDUs", "consoles", "interval s", "healthy devices fresh < 1.5x interval",
            "worst telemetry gap s", "start to first telemetry of all s", "rackd CPU (cores)", "rackd RSS MiB",
            "cmd -> first BMC packet p50 ms", "p99 ms", "cmd -> own state read answered p50 ms", "p99 ms (read)",
            "verified cycle overhead p50 s", "commands ok/failed",
        ],
    )  # fmt: skip
    packets, overhead = result["first_packet_ms"], result["overhead_s"]
    reads = result.get("state_read_ms", [])
    table.add(
        **{
            "BMCs (hung)": f"{result['bmcs']} ({result['hung']})",
            "PDUs": result["pdus"],
            "consoles": result["consoles"],
            "interval s": result["interval"],
            "healthy devices fresh < 1.5x interval": f"{result['fresh']}/{result['healthy']}",
            "worst telemetry gap s": result["worst_gap"],
            "start to first telemetry of all s": result["first_all"],
            "rackd CPU (cores)": result["cpu_cores"],
            "rackd RSS MiB": result["rss"],
            "cmd -> first BMC packet p50 ms": statistics.median(packets) if packets else None,
            "p99 ms": percentile(packets, 0.99) if packets else None,
            "cmd -> own state read answered p50 ms": statistics.median(reads) if reads else None,
            "p99 ms (read)": percentile(reads, 0.99) if reads else None,
            "verified cycle overhead p50 s": statistics.median(overhead) if overhead else None,
            "commands ok/failed": f"{len(packets)}/{result['command_failures']}",
        }
    )
    table.notes += [
        (
            f"BMCs: {result['n_pyghmi']} `rackd sim bmc` (pyghmi Bmc, one process each, DCMI) and "
            f"{result['bmcs'] - result['n_pyghmi']} OpenIPMI `ipmi_sim` (24 sensors, no DCMI). The last "
            f"{result['hung']} hang (pyghmi: hang fault; ipmi_sim: SIGSTOP); the rest lose {result['drop_rate']:.0%}"
            " of the packets sent to them (pyghmi: drop fault; ipmi_sim: a dropping UDP relay in the bench process). "
            "PDUs: one `rackd sim pdu --shared-port` process (apc_rpdu2, 24 outlets, no packet loss: the PDU "
            "simulator has no drop fault). Consoles: one "
            "`rackd sim console-server` process, raw TCP, boot log then idle."
        ),
        (
            f"Freshness: a `mosquitto_sub` in another process timestamps every telemetry message; a device is fresh "
            f"when no gap in its telemetry over the {result['window']:.0f} s window exceeded 1.5 x interval. Worst "
            f"device: {result['worst_device'] or '-'}. Hung BMCs are excluded (they cannot be fresh); consoles "
            f"publish no telemetry ({result['console_log_files']} console log files were written)."
        ),
        (
            f"Commands: `power.cycle` over MQTT (QoS 1) to {result['probes']} BMCs behind a timestamping UDP relay in "
            "the bench process; latency = publish -> the first packet rackd sent to that BMC afterwards (the state "
            f"read that starts the action). Overhead = publish -> `succeeded` result minus the device's own delays "
            f"(off {SIM_OFF_DELAY} s + on {SIM_ON_DELAY} s) and cycle_off_time {CYCLE_OFF_TIME} s. The relay cannot "
            "tell a command's packet from a poll's, so 'own state read answered' is also reported: publish -> the "
            "daemon's first log line of the command, written once its own state read was answered (wall clocks of "
            "one machine; an upper bound of the command's first packet)."
        ),
        (
            "rackd CPU and RSS from /proc of the daemon over the window, at the end. The daemon logs at "
            f"{result.get('log_level', 'info')} level."
        ),
    ]
    if packets:
        # With a few dozen commands p99 is the slowest one or two: show them all so the tail can be read.
        table.notes.append(
            "Every command, sorted (ms): first BMC packet "
            + ", ".join(f"{v:.0f}" for v in sorted(packets))
            + "; own state read answered "
            + ", ".join(f"{v:.0f}" for v in sorted(reads))
            + "."
        )
    lost = result["unavailable"]
    table.notes.append(
        f"Healthy devices that went unavailable during the run: {len(lost)}"
        + (f" (e.g. {'; '.join(lost[:3])})." if lost else ".")
    )
    if quick:
        table.notes.append("Quick mode: a tiny site with a short interval; proves the harness, measures nothing.")
    return table


def main() -> None:
    """Parse flags, run, write bench/results/site.{md,json}."""
    parser = arguments(__doc__ or "")
    unwind_on_sigterm()
    parser.add_argument("--bmcs", type=int, default=1000)
    parser.add_argument(
        "--bmc-impl",
        choices=("ipmi_sim", "pyghmi"),
        default="ipmi_sim",
        help="BMCs besides the 3 command targets (always pyghmi simulators)",
    )
    parser.add_argument("--pdus", type=int, default=200)
    parser.add_argument("--consoles", type=int, default=500)
    parser.add_argument("--interval", type=float, default=30.0, help="poll interval of every device (s)")
    parser.add_argument("--intervals", type=int, default=4, help="observation window in intervals")
    parser.add_argument("--commands", type=int, default=10, help="power.cycle rounds (each to every probe BMC)")
    parser.add_argument("--hang-share", type=float, default=HANG_SHARE, help="share of BMCs that hang")
    parser.add_argument("--drop-rate", type=float, default=DROP_RATE, help="share of BMC packets dropped")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (daemon log) for inspection")
    parser.add_argument(
        "--log-level", choices=("debug", "info"), default="info", help="the daemon's (debug: to diagnose a run)"
    )
    args = parser.parse_args()
    # A site run holds thousands of sockets here and in the children (relays, consoles): lift the soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    if args.quick:
        args.bmcs, args.pdus, args.consoles, args.interval, args.intervals, args.commands = 5, 2, 3, 2.0, 2, 1
    workdir = Path(tempfile.mkdtemp(prefix="rackd-bench-site-"))
    try:
        result = asyncio.run(
            run_site(
                args.bmcs,
                args.pdus,
                args.consoles,
                args.interval,
                args.intervals,
                args.commands,
                workdir,
                args.bmc_impl,
                args.hang_share,
                args.drop_rate,
                args.log_level,
            )
        )
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = table_of(result, args.quick)
    table.quick = args.quick
    table.write(args.out)


if __name__ == "__main__":
    main()
