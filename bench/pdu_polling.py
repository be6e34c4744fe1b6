"""PDU polling cost: CPU per poll of a 24- and a 48-outlet PDU and varbinds/s for 1/10/100 PDUs, vs snmpbulkwalk.

.venv/bin/python -m bench.pdu_polling --pdus 1,10,100 [--rounds 5] [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rackd_snmp.client import SnmpClient
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.session import SnmpSession

from bench.cpu import Meter, children_cpu
from bench.fleet import JsonLineProcess, unwind_on_sigterm
from bench.report import Table, arguments
from rackd.drivers.contract import SessionContext
from rackd.logs import configure_logging

VENDOR = "apc_rpdu2"
EXEC_PARALLEL = 8
REPETITIONS = 32  # rackd's default max_repetitions; snmpbulkwalk gets the same (-Cr32)


class Tally:
    """Counts varbinds rackd's client returned and remembers which table columns a poll walked."""

    def __init__(self) -> None:
        """Empty."""
        self.varbinds = 0
        self.columns: set[str] = set()


@contextlib.contextmanager
def counting(tally: Tally) -> Iterator[None]:
    """Wrap SnmpClient.walk/get for the block to count the varbinds they return (bench instrumentation only)."""
    walk, get = SnmpClient.walk, SnmpClient.get

    async def counted_walk(self: SnmpClient, columns: Any, *args: Any, **kwargs: Any) -> Any:
        result = await walk(self, columns, *args, **kwargs)
        tally.columns.update(columns)
        tally.varbinds += sum(len(rows) for rows in result.values())
        return result

    async def counted_get(self: SnmpClient, oids: Any) -> Any:
        result = await get(self, oids)
        tally.varbinds += len(result)
        return result

    SnmpClient.walk = counted_walk  # type: ignore[method-assign]
    SnmpClient.get = counted_get  # type: ignore[method-assign]
    try:
        yield
    finally:
        SnmpClient.walk = walk  # type: ignore[method-assign]
        SnmpClient.get = get  # type: ignore[method-assign]


def start_pdus(count: int, outlets: int, workdir: Path) -> tuple[JsonLineProcess, list[dict[str, Any]]]:
    """`rackd sim pdu` with `count` PDUs on one shared port (its own process); returns it and the PDUs."""
    sim = JsonLineProcess(
        ["sim", "pdu", "--vendor", VENDOR, "--count", str(count), "--outlets", str(outlets), "--shared-port"],
        workdir / f"pdu-{outlets}.log",
    )
    ready = sim.start()
    return sim, list(ready["pdus"])


async def open_sessions(driver: SnmpDriver, pdus: list[dict[str, Any]], state: Path) -> list[SnmpSession]:
    """One session per PDU, the profile forced (no detection round trips in the figures)."""
    sessions = []
    for pdu in pdus:
        options = SnmpOptions.model_validate(
            {
                "host": pdu["host"],
                "port": pdu["port"],
                "profile": VENDOR,
                "snmp": {"version": "2c", "community": pdu["communities"]["read"]},
            }
        )
        context = SessionContext(device_id=pdu["name"], role="pdu", state_dir=state)
        sessions.append(await driver.open(context, options))
    return sessions


async def rackd_cost(sessions: list[SnmpSession], rounds: int) -> dict[str, float]:
    """CPU of this process per poll (`read_sensors()` of every PDU at once), varbinds and their rate."""
    tally = Tally()
    with counting(tally):
        await asyncio.gather(*(s.read_sensors() for s in sessions))  # warm-up: not measured
        tally.varbinds = 0
        with Meter() as span:
            for _ in range(rounds):
                results = await asyncio.gather(*(s.read_sensors() for s in sessions))
    polls = len(sessions) * rounds
    return {
        "poll_ms": span.cpu / polls * 1000,
        "varbinds_per_poll": tally.varbinds / polls,
        "us_per_varbind": span.cpu / tally.varbinds * 1e6,
        "varbinds_per_s": tally.varbinds / span.wall,
        "round_wall_s": span.wall / rounds,
        "readings": float(len(results[0])),
        "tables": float(len({column.rsplit(".", 1)[0] for column in tally.columns})),
        "columns": tally.columns,  # type: ignore[dict-item]
    }


async def bulkwalk_cost(pdus: list[dict[str, Any]], tables: list[str], rounds: int) -> dict[str, float]:
    """CPU of `snmpbulkwalk -Cr32` of each table rackd reads, one process per table per PDU per poll."""
    gate = asyncio.Semaphore(EXEC_PARALLEL)
    varbinds = 0

    async def one(pdu: dict[str, Any], table: str) -> None:
        nonlocal varbinds
        argv = [
            "snmpbulkwalk", "-v2c", "-c", pdu["communities"]["read"], f"-Cr{REPETITIONS}", "-On", "-Oq",
            "-t", "2", "-r", "1", f"{pdu['host']}:{pdu['port']}", table,
        ]  # fmt: skip
        async with gate:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            out, _ = await process.communicate()
        varbinds += out.count(b"\n")

    with Meter(children_cpu) as span:
        for _ in range(rounds):
            await asyncio.gather(*(one(pdu, table) for pdu in pdus for table in tables))
    polls = len(pdus) * rounds
    return {
        "poll_ms": span.cpu / polls * 1000,
        "varbinds_per_poll": varbinds / polls,
        "us_per_varbind": span.cpu / max(1, varbinds) * 1e6,
        "varbinds_per_s": varbinds / span.wall,
    }


async def measure(sizes: list[int], outlet_counts: list[int], rounds: int, workdir: Path) -> Table:
    """Each outlet count and fleet size: rackd, then snmpbulkwalk of the same tables, same simulators."""
    table = Table(
        "pdu_polling",
        "PDU polling: CPU per poll and varbinds/s",
        [
            "PDUs", "outlets", "readings/poll", "rackd varbinds/poll", "rackd ms CPU/poll", "rackd µs CPU/varbind",
            "rackd varbinds/s", "rackd round wall s", "snmpbulkwalk varbinds/poll", "snmpbulkwalk ms CPU/poll",
            "snmpbulkwalk µs CPU/varbind", "rackd ÷ snmpbulkwalk (CPU/poll)",
        ],
    )  # fmt: skip
    for outlets in outlet_counts:
        fleet_sizes = sizes if outlets == outlet_counts[0] else [1]
        sim, pdus = start_pdus(max(fleet_sizes), outlets, workdir)
        driver = SnmpDriver()
        try:
            for size in fleet_sizes:
                sessions = await open_sessions(driver, pdus[:size], workdir)
                try:
                    ours = await rackd_cost(sessions, rounds)
                finally:
                    for session in sessions:
                        await session.close()
                tables = sorted({str(column).rsplit(".", 1)[0] for column in ours.pop("columns")})  # type: ignore[attr-defined]
                peer = await bulkwalk_cost(pdus[:size], tables, rounds)
                table.add(
                    **{
                        "PDUs": size,
                        "outlets": outlets,
                        "readings/poll": int(ours["readings"]),
                        "rackd varbinds/poll": ours["varbinds_per_poll"],
                        "rackd ms CPU/poll": ours["poll_ms"],
                        "rackd µs CPU/varbind": ours["us_per_varbind"],
                        "rackd varbinds/s": ours["varbinds_per_s"],
                        "rackd round wall s": ours["round_wall_s"],
                        "snmpbulkwalk varbinds/poll": peer["varbinds_per_poll"],
                        "snmpbulkwalk ms CPU/poll": peer["poll_ms"],
                        "snmpbulkwalk µs CPU/varbind": peer["us_per_varbind"],
                        "rackd ÷ snmpbulkwalk (CPU/poll)": ours["poll_ms"] / peer["poll_ms"],
                    }
                )
                if size == fleet_sizes[-1]:
                    table.notes.append(f"{outlets}-outlet poll reads {len(tables)} tables: {', '.join(tables)}.")
        finally:
            await driver.aclose()
            sim.stop()
    table.notes += [
        (
            f"Simulated {VENDOR} PDUs (`rackd sim pdu --shared-port`, one process, one engine, community per PDU); "
            "their CPU is not counted."
        ),
        (
            f"rackd: the `snmp` driver in this process (the lean v1/v2c codec, GETBULK of the needed columns, "
            f"in-flight cap); a poll is `read_sensors()`; every PDU of the fleet polled at once; {rounds} rounds "
            "after a warm-up. "
            "CPU = getrusage(RUSAGE_SELF)."
        ),
        (
            f"snmpbulkwalk: net-snmp `snmpbulkwalk -v2c -Cr{REPETITIONS}` of each table rackd reads (whole tables, so "
            f"more varbinds than rackd's columns), one process per table per PDU, {EXEC_PARALLEL} at a time; "
            "CPU = getrusage(RUSAGE_CHILDREN), process start included."
        ),
    ]
    return table


def main() -> None:
    """Parse flags, run, write bench/results/pdu_polling.{md,json}."""
    parser = arguments(__doc__ or "")
    unwind_on_sigterm()
    parser.add_argument("--pdus", default="1,10,100", help="comma-separated fleet sizes (24-outlet PDUs)")
    parser.add_argument("--rounds", type=int, default=5, help="measured polls per PDU")
    args = parser.parse_args()
    configure_logging("warning")
    sizes = [1, 2] if args.quick else [int(n) for n in args.pdus.split(",")]
    rounds = 1 if args.quick else args.rounds
    workdir = Path(tempfile.mkdtemp(prefix="rackd-bench-pdu-"))
    try:
        table = asyncio.run(measure(sizes, [24, 48], rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table.quick = args.quick
    table.write(args.out)


if __name__ == "__main__":
    main()
