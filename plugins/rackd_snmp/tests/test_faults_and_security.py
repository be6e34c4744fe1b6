"""SNMP v1/v3, wrong credentials, a PDU that stops answering, garbage values, a PDU reboot, conformance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rackd_sim.pdu.agent import PduSpec, V3User
from rackd_sim.pdu.model import PowerOn, Timing
from rackd_sim.pdu.simulator import PduSimulator

from rackd.drivers.contract import SessionContext
from rackd.errors import AuthError, DeviceTimeoutError
from rackd.model import Health, PowerAction, PowerState
from rackd.testing.conformance import check_driver
from rackd_snmp.client import RECEIVE_BUFFER
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.session import SnmpSession

Simulated = Callable[..., PduSimulator]
USER = V3User("rackd", "auth-key-123", "priv-key-456", auth_protocol="SHA-256", priv_protocol="AES")


def v3_options(endpoint: str, auth_key: str = USER.auth_key, priv_key: str = USER.priv_key) -> SnmpOptions:
    host, port = endpoint.rsplit(":", 1)
    return SnmpOptions.model_validate(
        {"host": host, "port": int(port), "timeout": 0.5, "retries": 0,
         "snmp": {"version": "3", "user": USER.name, "auth_protocol": "SHA-256", "auth_key": auth_key,
                  "priv_protocol": "AES", "priv_key": priv_key}}
    )


def v2_options(endpoint: str, version: str = "2c", timeout: float = 0.5) -> SnmpOptions:
    host, port = endpoint.rsplit(":", 1)
    return SnmpOptions.model_validate(
        {"host": host, "port": int(port), "timeout": timeout, "retries": 0,
         "snmp": {"version": version, "community": "private"}}
    )


async def observed(session: SnmpSession, target: str, state: PowerState, deadline: float = 5.0) -> None:
    until = time.monotonic() + deadline
    while await session.get_power(target) is not state:
        assert time.monotonic() < until, f"outlet {target} never observed {state}"
        await asyncio.sleep(0.02)


async def test_v3_auth_priv_reads_and_switches(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=2, v3_users=(USER,)))
    session = await driver.open(context, v3_options(sim["pdu1"].endpoint))
    await session.set_power("2", PowerAction.OFF)
    await observed(session, "2", PowerState.OFF)
    readings = {r.sensor: r for r in await session.read_sensors()}
    assert readings["outlet2_state"].states == ("off",)


async def test_v3_wrong_auth_key_is_an_auth_error(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=2, v3_users=(USER,)))
    with pytest.raises(AuthError, match="credentials refused"):
        await driver.open(context, v3_options(sim["pdu1"].endpoint, auth_key="not-the-key"))


async def test_v3_wrong_priv_key_is_an_auth_error(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    # pysnmp's agent answers a report (usmStatsDecryptionErrors); snmpd-like agents drop the request instead,
    # which the driver reports as a timeout whose message names a wrong privacy key as a possible cause.
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=2, v3_users=(USER,)))
    with pytest.raises(AuthError, match="credentials refused"):
        await driver.open(context, v3_options(sim["pdu1"].endpoint, priv_key="not-the-key"))


async def test_v3_unknown_user_is_an_auth_error(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=2, v3_users=(USER,)))
    options = v3_options(sim["pdu1"].endpoint)
    stranger = options.model_copy(update={"snmp": options.snmp.model_copy(update={"user": "stranger"})})
    with pytest.raises(AuthError, match="Unknown USM user"):
        await driver.open(context, stranger)


async def test_snmp_v1_walks_with_getnext(simulated: Simulated, driver: SnmpDriver, context: SessionContext) -> None:
    sim = simulated(PduSpec(vendor="raritan_pdu2", outlets=3))
    session = await driver.open(context, v2_options(sim["pdu1"].endpoint, version="1"))
    assert [t.id for t in await session.power_targets()] == ["1", "2", "3"]
    readings = {r.sensor: r for r in await session.read_sensors()}
    assert readings["inlet1_power"].value == pytest.approx(360.0)


async def test_pdu_that_stops_answering_mid_cycle_times_out(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="eaton_epdu", outlets=2))
    session = await driver.open(context, v2_options(sim["pdu1"].endpoint, timeout=0.3))
    await session.set_power("1", PowerAction.OFF)  # the runtime's cycle: off …
    await observed(session, "1", PowerState.OFF)
    sim["pdu1"].pdu.faults.silent = True  # … the management card hangs …
    with pytest.raises(DeviceTimeoutError, match=r"no response to GET .* within 0.3 s x 1 tries"):
        await session.set_power("1", PowerAction.ON)  # … so "on" fails clearly instead of hanging
    with pytest.raises(DeviceTimeoutError):
        await session.read_sensors()
    sim["pdu1"].pdu.faults.silent = False
    await session.set_power("1", PowerAction.ON)
    await observed(session, "1", PowerState.ON)


async def test_garbage_values_become_unknown_readings(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=2))
    session = await driver.open(context, v2_options(sim["pdu1"].endpoint))
    sim["pdu1"].pdu.faults.wrong_values = True
    readings = {r.sensor: r for r in await session.read_sensors()}
    assert readings["outlet1_power"].value is None
    assert readings["outlet1_power"].health is Health.UNKNOWN
    assert readings["outlet1_state"].states == ("on",)  # states are not meters: still readable


async def test_pdu_reboot_brings_outlets_back_per_power_on_setting(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="sentry4", outlets=2, power_on=PowerOn.OFF, timing=Timing(boot=0.3)))
    pdu = sim["pdu1"].pdu
    pdu.set_power_on(2, PowerOn.ON)
    session = await driver.open(context, v2_options(sim["pdu1"].endpoint, timeout=0.2))
    before = {r.sensor: r for r in await session.read_sensors()}
    assert before["outlet1_power_on_state"].states == ("off",)
    assert before["outlet2_power_on_state"].states == ("on",)
    pdu.power_cycle()
    with pytest.raises(DeviceTimeoutError):
        await session.read_sensors()
    until = time.monotonic() + 10
    while pdu.booting:
        assert time.monotonic() < until
        await asyncio.sleep(0.02)
    assert await session.get_power("1") is PowerState.OFF
    assert await session.get_power("2") is PowerState.ON


async def test_conformance_suite(simulated: Simulated, tmp_path: Path) -> None:
    sim = simulated(PduSpec(vendor="eaton_epdu", outlets=8))
    snmp_driver = SnmpDriver()
    try:
        report = await check_driver(snmp_driver, v2_options(sim["pdu1"].endpoint), tmp_path)
    finally:
        await snmp_driver.aclose()
    assert report.problems == []
    assert len(report.power) == 8


async def test_many_pdus_share_one_engine_under_a_small_in_flight_cap(
    simulated: Simulated, context: SessionContext
) -> None:
    sim = simulated(*(PduSpec(name=f"pdu{n}", vendor="apc_rpdu2", outlets=24) for n in range(12)))
    snmp_driver = SnmpDriver(max_in_flight=2)
    try:
        sessions = [await snmp_driver.open(context, v2_options(agent.endpoint)) for agent in sim.agents.values()]
        engine = snmp_driver.pool.engine
        results = await asyncio.gather(*(session.read_sensors() for session in sessions))
        assert all(len(readings) == len(results[0]) for readings in results)
        assert snmp_driver.pool.engine is engine
        buffer = snmp_driver.pool.receive_buffer()
        assert buffer is not None
        rmem_max = Path("/proc/sys/net/core/rmem_max")
        if rmem_max.exists():  # the kernel caps the request at rmem_max (and reports double what it grants)
            assert buffer >= min(RECEIVE_BUFFER, int(rmem_max.read_text()))
    finally:
        await snmp_driver.aclose()


async def test_pdus_behind_one_port_by_community_and_v3_context(context: SessionContext) -> None:
    specs = [
        PduSpec(name=f"pdu{n}", vendor=vendor, outlets=8, read_community=f"public-{n}", write_community=f"private-{n}",
                v3_users=(USER,))
        for n, vendor in enumerate(["eaton_epdu", "sentry4", "raritan_pdu2", "vertiv_v5"] * 5)
    ]
    sim = PduSimulator(specs, shared_port=True)
    sim.start()
    snmp_driver = SnmpDriver()
    try:
        endpoint = sim["pdu0"].endpoint
        host, port = endpoint.rsplit(":", 1)
        sessions = []
        for n in range(len(specs)):
            options = SnmpOptions.model_validate(
                {"host": host, "port": int(port), "timeout": 1.0, "retries": 0,
                 "snmp": {"version": "2c", "community": f"private-{n}"}}
            )
            sessions.append(await snmp_driver.open(context, options))
        assert [s.profile_name for s in sessions[:4]] == ["eaton_epdu", "sentry4", "raritan_pdu2", "vertiv_v5"]
        results = await asyncio.gather(*(session.read_sensors() for session in sessions))
        assert all(any(r.sensor == "outlet8_state" for r in readings) for readings in results)

        await sessions[6].set_power("8", PowerAction.OFF)  # pdu6 only
        await observed(sessions[6], "8", PowerState.OFF)
        assert sim["pdu2"].pdu.outlets[8].on

        v3 = SnmpOptions.model_validate(
            {"host": host, "port": int(port), "timeout": 1.0, "retries": 0,
             "snmp": {"version": "3", "user": USER.name, "auth_protocol": "SHA-256", "auth_key": USER.auth_key,
                      "priv_protocol": "AES", "priv_key": USER.priv_key, "context": "pdu6"}}
        )
        v3_session = await snmp_driver.open(context, v3)
        assert v3_session.profile_name == "raritan_pdu2"
        assert await v3_session.get_power("8") is PowerState.OFF
    finally:
        await snmp_driver.aclose()
        sim.stop()
