"""BMC polling cost: CPU per full poll (SDR sensors, DCMI power, power state) of rackd vs ipmitool vs FreeIPMI.

.venv/bin/python -m bench.bmc_polling --bmcs 10,100 [--rounds 3] [--quick]
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.session import IpmiSession
from rackd_sim.bmc.process import BmcProcess

from bench.cpu import Meter, children_cpu
from bench.fleet import bmc_fleet, unwind_on_sigterm
from bench.ipmi_sim import PASSWORD as SIM_PASSWORD
from bench.ipmi_sim import USER as SIM_USER
from bench.ipmi_sim import ipmi_sim_fleet
from bench.report import Table, arguments
from rackd.drivers.contract import SessionContext
from rackd.logs import configure_logging

EXEC_PARALLEL = 8  # ipmitool processes in flight at once, as an exporter's worker pool would run them
ERRORS: list[str] = []  # stderr of peer runs that exited non-zero (reported in the notes)


Endpoint = tuple[str, int, str, str]  # host, port, user, password


@dataclass(frozen=True)
class Impl:
    """A BMC implementation and what the peers need to talk to it."""

    name: str
    sensors: int  # SDR sensor records: a host that printed fewer rows did not answer fully
    ipmitool_flags: tuple[str, ...] = ()
    freeipmi_flags: tuple[str, ...] = ()


PYGHMI_SIM = Impl("rackd sim bmc (pyghmi Bmc, 1 process each)", 25)
IPMI_SIM = Impl("OpenIPMI ipmi_sim (24 sensors, no DCMI)", 24, ("-C", "3"), ("-W", "opensesspriv"))


def _endpoint(bmc: BmcProcess) -> Endpoint:
    ep = bmc.endpoint
    assert ep is not None
    return ep.host, ep.port, ep.username, ep.password


async def _poll(session: IpmiSession) -> int:
    """One full poll as the runner does it: every sensor (with DCMI system power) and the chassis power state."""
    readings = await session.read_sensors()
    await session.get_power("chassis")
    return len(readings)


async def rackd_cost(bmcs: list[Endpoint], rounds: int, state: Path) -> dict[str, float]:
    """CPU of this process (all threads: asyncio loop, pyghmi I/O thread, executor) per login and per poll."""
    driver = IpmiDriver()
    sessions: list[IpmiSession] = []
    try:
        with Meter() as login:
            for i, bmc in enumerate(bmcs):
                host, port, user, password = bmc
                options = IpmiOptions.model_validate(
                    {"host": host, "port": port, "username": user, "password": password}
                )
                device_state = state / f"gpu{i}"
                device_state.mkdir(parents=True, exist_ok=True)
                context = SessionContext(device_id=f"gpu{i}", role="bmc", state_dir=device_state)
                sessions.append(await driver.open(context, options))
        with Meter() as first:
            counts = await asyncio.gather(*(_poll(s) for s in sessions))
        with Meter() as steady:
            for _ in range(rounds):
                await asyncio.gather(*(_poll(s) for s in sessions))
    finally:
        for session in sessions:
            await session.close()
        await driver.aclose()
    polls = len(bmcs) * rounds
    return {
        "login_ms": login.cpu / len(bmcs) * 1000,
        "first_poll_ms": first.cpu / len(bmcs) * 1000,
        "poll_ms": steady.cpu / polls * 1000,
        "round_wall_s": steady.wall / rounds,
        "readings": float(counts[0]),
    }


async def _run(argv: list[str]) -> int:
    """Run a peer; returns how many sensor rows it printed (0 when it failed)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        ERRORS.append(err.decode(errors="replace").strip()[:300])
    return sum(1 for line in out.splitlines() if line.count(b"|") >= 3 and b"| Name " not in line)


async def ipmitool_cost(bmcs: list[Endpoint], rounds: int, impl: Impl) -> dict[str, float]:
    """CPU of `ipmitool -I lanplus … sdr elist`, one process per BMC per poll (what exporters and Telegraf do)."""
    gate = asyncio.Semaphore(EXEC_PARALLEL)
    failures = 0

    async def one(bmc: Endpoint) -> None:
        nonlocal failures
        host, port, user, password = bmc
        argv = ["ipmitool", "-I", "lanplus", *impl.ipmitool_flags, "-H", host, "-p", str(port), "-U", user, "-P",
                password, "sdr", "elist"]  # fmt: skip
        async with gate:
            failures += await _run(argv) < impl.sensors

    with Meter(children_cpu) as span:
        for _ in range(rounds):
            await asyncio.gather(*(one(b) for b in bmcs))
    return {"poll_ms": span.cpu / (len(bmcs) * rounds) * 1000, "round_wall_s": span.wall / rounds, "failed": failures}


async def freeipmi_cost(bmcs: list[Endpoint], rounds: int, cache: Path, impl: Impl) -> dict[str, float]:
    """CPU of one `ipmi-sensors` process fanning out over every BMC (SDR cache warmed by an unmeasured run)."""
    user, password = bmcs[0][2:]
    hosts = ",".join(f"{h}:{p}" for h, p, _, _ in bmcs)
    argv = [
        "ipmi-sensors",
        *impl.freeipmi_flags,
        "-D",
        "LAN_2_0",
        "-h",
        hosts,
        "-u",
        user,
        "-p",
        password,
        "-l",
        "admin",
        "--sdr-cache-directory",
        str(cache),
    ]
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before measuring; FreeIPMI refuses a cache directory it must create
    if len({b[3] for b in bmcs}) != 1:
        raise RuntimeError("ipmi-sensors takes one password for all hosts: start the fleet with --password")
    await _run(argv)
    failures = 0
    with Meter(children_cpu) as span:
        for _ in range(rounds):
            rows = await _run(argv)
            failures += rows < len(bmcs) * impl.sensors
    return {"poll_ms": span.cpu / (len(bmcs) * rounds) * 1000, "round_wall_s": span.wall / rounds, "failed": failures}


async def measure(sizes: list[int], big: list[int], rounds: int, workdir: Path) -> Table:
    """Every fleet size against the same simulators, rackd first, then the two peers, in one run."""
    table = Table(
        "bmc_polling",
        "BMC polling: CPU per full poll of one BMC",
        [
            "BMCs", "BMC impl", "readings/poll", "rackd ms CPU/poll", "rackd round wall s",
            "ipmitool exec ms CPU/poll", "rackd ÷ ipmitool",
            "ipmi-sensors ms CPU/poll", "rackd ÷ ipmi-sensors", "rackd login ms CPU", "rackd first poll ms CPU",
        ],
    )  # fmt: skip

    async def one_size(bmcs: list[Endpoint], impl: Impl) -> None:
        size = len(bmcs)
        tag = f"{size}-{impl.sensors}"
        ours = await rackd_cost(bmcs, rounds, workdir / f"state{tag}")
        exec_peer = await ipmitool_cost(bmcs, rounds, impl)
        fanout = await freeipmi_cost(bmcs, rounds, workdir / f"freeipmi{tag}", impl)
        table.add(
            **{
                "BMCs": size,
                "BMC impl": impl.name,
                "readings/poll": int(ours["readings"]),
                "rackd ms CPU/poll": ours["poll_ms"],
                "rackd round wall s": ours["round_wall_s"],
                "ipmitool exec ms CPU/poll": exec_peer["poll_ms"],
                "rackd ÷ ipmitool": ours["poll_ms"] / exec_peer["poll_ms"],
                "ipmi-sensors ms CPU/poll": fanout["poll_ms"],
                "rackd ÷ ipmi-sensors": ours["poll_ms"] / fanout["poll_ms"],
                "rackd login ms CPU": ours["login_ms"],
                "rackd first poll ms CPU": ours["first_poll_ms"],
            }
        )
        if exec_peer["failed"] or fanout["failed"]:
            table.notes.append(
                f"{size} BMCs ({impl.name}): ipmitool runs short {exec_peer['failed']}, ipmi-sensors runs short "
                f"of some hosts {fanout['failed']} (their CPU is still counted)."
            )

    if sizes:
        with bmc_fleet(max(sizes), workdir, ("--username", "admin", "--password", "bench-pass")) as fleet:
            for size in sizes:
                await one_size([_endpoint(b) for b in fleet[:size]], PYGHMI_SIM)
    if big:
        with ipmi_sim_fleet(max(big), workdir) as sims:
            for size in big:
                await one_size([(b.host, b.port, SIM_USER, SIM_PASSWORD) for b in sims[:size]], IPMI_SIM)
    table.notes += [f"peer error (first of {len(ERRORS)}): {ERRORS[0]}"] if ERRORS else []
    table.notes += [
        (
            "rackd: the `ipmi` driver in this process, as the daemon runs it (its worker pool and login gate, "
            "pyghmi with rackd's patches: the fine-grained clock, poll(2), the keepalive thread); "
            "a poll is "
            f"`read_sensors()` (all SDR sensors + DCMI power) + `get_power('chassis')`; {rounds} rounds after one "
            "unmeasured warm-up round (SDR cached, session open). CPU = getrusage(RUSAGE_SELF): every thread of rackd."
        ),
        (
            f"ipmitool: `ipmitool -I lanplus -H … sdr elist` spawned per BMC per poll, {EXEC_PARALLEL} at a time; "
            "CPU = "
            "getrusage(RUSAGE_CHILDREN). It reads the SDR without power state or DCMI, so it is a lower bound on an "
            "exec-per-poll full poll (which would spawn 2 more processes)."
        ),
        (
            "ipmi-sensors: one FreeIPMI process fanning out over all hosts (`-h h1:p1,h2:p2,…`), SDR cache warm; "
            "sensors only (no DCMI, no power state)."
        ),
        "Simulated BMCs run in their own processes; their CPU is not counted.",
    ]
    return table


def main() -> None:
    """Parse flags, run, write bench/results/bmc_polling.{md,json}."""
    parser = arguments(__doc__ or "")
    unwind_on_sigterm()
    parser.add_argument("--bmcs", default="10,100", help="fleet sizes of pyghmi simulator processes (comma-separated)")
    parser.add_argument("--ipmi-sim", default="500", help="fleet sizes of OpenIPMI ipmi_sim processes ('' for none)")
    parser.add_argument("--rounds", type=int, default=3, help="measured polls per BMC")
    args = parser.parse_args()
    configure_logging("warning")
    sizes = [2] if args.quick else [int(n) for n in args.bmcs.split(",") if n]
    big = [2] if args.quick else [int(n) for n in args.ipmi_sim.split(",") if n]
    rounds = 1 if args.quick else args.rounds
    workdir = Path(tempfile.mkdtemp(prefix="rackd-bench-bmc-"))
    try:
        table = asyncio.run(measure(sizes, big, rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table.quick = args.quick
    table.write(args.out)


if __name__ == "__main__":
    main()
