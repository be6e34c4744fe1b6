"""The lean codec and pysnmp read exactly the same from the six recorded PDUs (snmpsim) and the simulator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.simulator import PduSimulator

from rackd.drivers.contract import SessionContext
from rackd.model import Reading, SensorKind
from rackd_snmp.client import SnmpClient, Value
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.session import SnmpSession
from rackd_snmp.tests.snmpsim_agent import RECORDINGS, SnmpsimAgent
from rackd_snmp.tests.test_switching import VENDORS

NAMES = sorted(path.stem for path in RECORDINGS.glob("*.snmprec"))
Simulated = Callable[..., PduSimulator]


def options(host: str, port: int, community: str, lean: bool, version: str = "2c") -> SnmpOptions:
    return SnmpOptions.model_validate(
        {"host": host, "port": port, "timeout": 2.0, "retries": 1, "lean_codec": lean,
         "snmp": {"version": version, "community": community}}
    )  # fmt: skip


def comparable(readings: Sequence[Reading]) -> list[tuple[Any, ...]]:
    """Everything of a reading but the time it was observed, in the order the driver produced them."""
    return [(r.sensor, r.kind, r.value, r.unit, r.health, r.states, r.flags) for r in readings]


def typed(values: dict[Any, Value]) -> dict[Any, tuple[str, Value]]:
    """Values with their Python type, so 5 and "5" differ."""
    return {key: (type(value).__name__, value) for key, value in values.items()}


async def everything(driver: SnmpDriver, opts: SnmpOptions, state: Path) -> dict[str, Any]:
    """What the rest of rackd sees of one PDU through one path: discovery, two polls, outlets, inventory."""
    session = await driver.open(SessionContext(device_id="pdu1", role="pdu", state_dir=state), opts)
    assert isinstance(session, SnmpSession)
    assert session._client.lean is opts.lean_codec  # each path is really the one under test
    seen = {
        "profile": session.profile_name,
        "layout": repr(session._layout),
        "first": comparable(await session.read_sensors()),
        "second": comparable(await session.read_sensors()),  # energy history and table sizes carried over
        "targets": list(await session.power_targets()),
        "inventory": await session.read_inventory(),
    }
    await session.close()
    return seen


def recorded_oids(name: str) -> list[str]:
    lines = (RECORDINGS / f"{name}.snmprec").read_text(encoding="utf-8").splitlines()
    return [line.split("|", 1)[0] for line in lines if "|" in line]


@pytest.mark.parametrize("name", NAMES)
async def test_recorded_pdu_reads_the_same_through_both_paths(
    snmpsim: SnmpsimAgent, name: str, tmp_path: Path
) -> None:
    driver = SnmpDriver()
    try:
        lean = await everything(driver, options("127.0.0.1", snmpsim.port, name, lean=True), tmp_path)
        pysnmp = await everything(driver, options("127.0.0.1", snmpsim.port, name, lean=False), tmp_path)
    finally:
        await driver.aclose()
    assert lean["first"], "no readings at all"
    assert lean == pysnmp


@pytest.mark.parametrize("name", NAMES)
async def test_whole_recording_walks_and_gets_the_same(snmpsim: SnmpsimAgent, name: str) -> None:
    """Every recorded object, of every type the recordings hold (INTEGER, OCTET STRING, hex strings, OID,
    IpAddress, Counter32, Gauge32, TimeTicks, Counter64), by GETBULK walk and by GET, plus absent objects."""
    driver = SnmpDriver()
    try:
        lean = SnmpClient(driver.pool, options("127.0.0.1", snmpsim.port, name, lean=True))
        pysnmp = SnmpClient(driver.pool, options("127.0.0.1", snmpsim.port, name, lean=False))
        roots = ["1.3.6.1.2.1", "1.3.6.1.4.1"]
        for repetitions in (7, 32):
            walked = await lean.walk(roots, repetitions, max_pages=10_000)
            other = await pysnmp.walk(roots, repetitions, max_pages=10_000)
            assert {root: typed(rows) for root, rows in walked.items()} == {
                root: typed(rows) for root, rows in other.items()
            }
        oids = recorded_oids(name)
        assert sum(len(rows) for rows in walked.values()) == sum(oid.startswith(tuple(roots)) for oid in oids)
        absent = ["1.3.6.1.2.1.1.99.0", "1.3.6.1.4.1.99999.1.0", oids[0] + ".5"]
        for start in range(0, len(oids), 24):
            batch = oids[start : start + 24] + absent
            assert typed(await lean.get(batch)) == typed(await pysnmp.get(batch))
    finally:
        await driver.aclose()


@pytest.mark.parametrize("name", ["apc_ap8959eu3", "raritan-pdu_px2"])
async def test_snmp_v1_reads_the_same_through_both_paths(snmpsim: SnmpsimAgent, name: str, tmp_path: Path) -> None:
    driver = SnmpDriver()
    try:
        lean = await everything(driver, options("127.0.0.1", snmpsim.port, name, True, version="1"), tmp_path)
        pysnmp = await everything(driver, options("127.0.0.1", snmpsim.port, name, False, version="1"), tmp_path)
    finally:
        await driver.aclose()
    assert lean["first"]
    assert lean == pysnmp


@pytest.mark.parametrize("vendor", VENDORS)
async def test_simulated_pdu_reads_the_same_through_both_paths(
    simulated: Simulated, vendor: str, tmp_path: Path
) -> None:
    sim = simulated(PduSpec(vendor=vendor, outlets=6))
    host, port = sim["pdu1"].endpoint.rsplit(":", 1)
    driver = SnmpDriver()
    try:
        lean = await everything(driver, options(host, int(port), "public", lean=True), tmp_path)
        pysnmp = await everything(driver, options(host, int(port), "public", lean=False), tmp_path)
    finally:
        await driver.aclose()
    for seen in (lean, pysnmp):  # the simulator's energy meters run on between the two sessions' reads
        for poll in ("first", "second"):
            seen[poll] = [(*r[:2], None, *r[3:]) if r[1] is SensorKind.ENERGY else r for r in seen[poll]]
    assert lean == pysnmp
