"""The ipmi driver against the simulated BMC: power, sensors, DCMI, SEL, FRU, cipher suites, options."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import EventLogSource, InventorySource, PowerControl, SensorSource, SessionContext
from rackd.errors import AuthError, DeviceProtocolError, DeviceRefusedError, SessionLimitError, UnsupportedError
from rackd.model import Health, LogEntry, PowerAction, PowerState, SensorKind, Severity
from rackd.testing.conformance import check_driver

from .conftest import OptionsFactory


async def test_session_implements_the_contract(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        for protocol in (PowerControl, SensorSource, EventLogSource, InventorySource):
            assert isinstance(session, protocol)
        assert [t.id for t in await session.power_targets()] == ["chassis"]
    finally:
        await session.close()
        await session.close()  # idempotent
    assert sim.wait_for(lambda s: s["open_sessions"] == 0)["logins_by_suite"] == {"17": 1}


async def test_conformance_suite(driver: IpmiDriver, sim: BmcProcess, tmp_path: Path, options: OptionsFactory) -> None:
    report = await check_driver(driver, options(sim), tmp_path)
    assert report.problems == []
    assert report.power == {"chassis": PowerState.ON}
    assert sim.wait_for(lambda s: s["open_sessions"] == 0)["logins_by_suite"] == {"17": 1}


async def test_power_actions_are_accepted_and_refused_like_a_bmc(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        assert await session.get_power("chassis") is PowerState.ON
        await session.set_power("chassis", PowerAction.OFF)
        await asyncio.to_thread(sim.wait_for, lambda s: s["power"] == "off")
        assert await session.get_power("chassis") is PowerState.OFF
        with pytest.raises(DeviceRefusedError, match="0xD5"):
            await session.set_power("chassis", PowerAction.CYCLE)
        with pytest.raises(DeviceRefusedError):
            await session.set_power("chassis", PowerAction.RESET)
        await session.set_power("chassis", PowerAction.ON)
        await asyncio.to_thread(sim.wait_for, lambda s: s["power"] == "on" and s["os_up"])
        await session.set_power("chassis", PowerAction.CYCLE)
        await asyncio.to_thread(sim.wait_for, lambda s: s["power"] == "off")
        await asyncio.to_thread(sim.wait_for, lambda s: s["power"] == "on" and s["os_up"])
        await session.set_power("chassis", PowerAction.SOFT_OFF)
        await asyncio.to_thread(sim.wait_for, lambda s: s["power"] == "off")
        with pytest.raises(DeviceProtocolError, match="no power target"):
            await session.get_power("outlet7")
    finally:
        await session.close()


async def test_sensors_have_canonical_units_slugs_and_health(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    sim.control("sensor", name="GPU3 Temp", value=92)
    sim.control("psu", psu=2, failed=True)
    session = await driver.open(context, options(sim))
    try:
        readings = {r.sensor: r for r in await session.read_sensors()}
    finally:
        await session.close()
    expected = sim.control("readings")
    assert readings["inlet_temp"].kind is SensorKind.TEMPERATURE
    assert readings["inlet_temp"].unit == "Cel"
    assert readings["fan1"].unit == "rpm"
    assert readings["p12v"].unit == "V"
    assert readings["psu1_current"].unit == "A"
    assert readings["psu1_input_power"].unit == "W"
    assert readings["inlet_temp"].value == expected["sensors"]["Inlet Temp"]
    assert readings["gpu3_temp"].value == 92.0
    assert readings["gpu3_temp"].health is Health.CRITICAL
    assert readings["gpu1_temp"].health is Health.OK
    assert readings["psu2_status"].kind is SensorKind.STATUS
    assert readings["psu2_status"].value is None
    assert readings["psu2_status"].health is Health.CRITICAL
    assert "Present" in readings["psu1_status"].states
    assert readings["system_power"].value == expected["system_power"]
    assert sum(1 for s in readings if s.startswith("gpu")) == 8


async def test_host_sensors_are_unavailable_while_off(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim("--off")
    session = await driver.open(context, options(sim))
    try:
        readings = {r.sensor: r for r in await session.read_sensors()}
    finally:
        await session.close()
    assert readings["cpu1_temp"].value is None
    assert readings["cpu1_temp"].health is Health.UNKNOWN
    assert readings["inlet_temp"].value is not None
    assert readings["system_power"].value == sim.control("readings")["system_power"]


async def test_system_power_falls_back_to_psu_sensors_without_dcmi(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim, use_dcmi=False))
    try:
        readings = {r.sensor: r for r in await session.read_sensors()}
    finally:
        await session.close()
    psu_sum = readings["psu1_input_power"].value + readings["psu2_input_power"].value  # type: ignore[operator]
    assert readings["system_power"].value == psu_sum


async def test_sel_cursor_new_entries_clear_and_wrap(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim("--sel-capacity", "40")
    sim.control("sel_add", count=5)
    session = await driver.open(context, options(sim))
    try:
        first = await session.read_log(None)
        assert first.entries == ()  # no history on the first read
        assert first.cursor is not None
        assert not first.log_reset
        again = await session.read_log(first.cursor)
        assert again.entries == ()
        sim.control("sensor", name="GPU3 Temp", value=92)
        batch = await session.read_log(first.cursor)
        assert len(batch.entries) == 2  # upper non-critical and upper critical going high
        assert batch.entries[-1].severity is Severity.CRITICAL
        assert "GPU3 Temp" in batch.entries[-1].message
        assert batch.entries[0].observed_at is not None
        cursor = batch.cursor
        # cleared: detected, not replayed
        sim.control("sel_clear")
        sim.control("psu", psu=1, failed=True)
        cleared = await session.read_log(cursor)
        assert cleared.log_reset
        assert len(cleared.entries) == 1
        assert "PSU1 Status" in cleared.entries[0].message
        assert (await session.read_log(cleared.cursor)).entries == ()
        # wrapped: the record we stopped at was overwritten; old entries are not replayed as new
        sim.control("sel_add", count=100)
        wrapped = await session.read_log(cleared.cursor)
        assert wrapped.log_reset
        assert len(wrapped.entries) <= 16
        after = await session.read_log(wrapped.cursor)
        assert after.entries == ()
        assert not after.log_reset
    finally:
        await session.close()


async def test_sel_batches_are_bounded_and_cursor_survives_a_new_session(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    opts = options(sim, log_batch_max=10)
    session = await driver.open(context, opts)
    start = await session.read_log(None)
    await session.close()
    sim.control("sel_add", count=25)
    session = await driver.open(context, opts)  # as after a daemon restart: only the cursor string survives
    try:
        seen: list[LogEntry] = []
        cursor = start.cursor
        for _ in range(3):
            batch = await session.read_log(cursor)
            assert len(batch.entries) <= 10
            seen.extend(batch.entries)
            cursor = batch.cursor
        assert len(seen) == 25
        assert len({e.record_id for e in seen}) == 25
    finally:
        await session.close()


async def test_inventory_from_fru(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        inventory = await session.read_inventory()
        assert inventory is await session.read_inventory()  # read once per session
    finally:
        await session.close()
    assert inventory.manufacturer == "Rackd Labs"
    assert inventory.model == "GPU Server G8"
    assert inventory.serial == "SIM0000001"
    assert inventory.firmware == "2.15"
    assert inventory.extra["board_serial"] == "BRD0000001"


async def test_cipher_suite_3_when_the_bmc_has_no_17_and_refusal_when_17_is_required(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim("--cipher-suites", "3")
    session = await driver.open(context, options(sim))
    assert await session.get_power("chassis") is PowerState.ON
    await session.close()
    with pytest.raises(UnsupportedError, match="cipher suite 3"):
        await driver.open(context, options(sim, cipher_suites=[17]))
    status = sim.wait_for(lambda s: s["open_sessions"] == 0)
    assert status["logins_by_suite"] == {"3": 2}


def test_cipher_suite_0_needs_explicit_permission() -> None:
    table = {"host": "127.0.0.1", "username": "admin", "password": "x", "cipher_suites": [0]}
    with pytest.raises(ValidationError, match="allow_cipher_suite_0"):
        IpmiOptions.model_validate(table)
    assert IpmiOptions.model_validate({**table, "allow_cipher_suite_0": True}).cipher_suites == (0,)
    with pytest.raises(ValidationError):
        IpmiOptions.model_validate({**table, "cipher_suites": [17], "bogus": 1})


async def test_cipher_suite_0_only_is_unsupported(driver: IpmiDriver, context: SessionContext) -> None:
    opts = IpmiOptions.model_validate(
        {"host": "127.0.0.1", "port": 9, "username": "a", "password": "x", "cipher_suites": [0],
         "allow_cipher_suite_0": True}
    )
    with pytest.raises(UnsupportedError, match="cipher suite 0"):
        await driver.open(context, opts)


async def test_wrong_password_is_auth_error_and_not_retried_during_holdoff(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    bad = options(sim, password="wrong-password")
    for _ in range(20):
        with pytest.raises(AuthError, match=str(sim.endpoint.port if sim.endpoint else "")):
            await driver.open(context, bad)
    assert sim.status()["login_attempts"] == 1  # one RAKP exchange, then the driver held off
    session = await driver.open(context, options(sim))  # the right password is not held off
    await session.close()


async def test_rejected_user_is_auth_error(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    sim.control("faults", reject_credentials=True)
    with pytest.raises(AuthError, match="Unauthorized name"):
        await driver.open(context, options(sim))
    # pyghmi retries once at operator privilege after 'unauthorized name': still a bounded number
    assert sim.status()["login_attempts"] <= 2


async def test_session_limit_is_reported(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim("--session-limit", "0")
    with pytest.raises(SessionLimitError, match="no free session"):
        await driver.open(context, options(sim))


async def test_sdr_is_cached_and_reloaded_when_its_timestamp_changes(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        await session.read_sensors()
        loaded = sim.status()["sdr_record_reads"]
        assert loaded >= 25
        await session.read_sensors()
        assert sim.status()["sdr_record_reads"] == loaded  # cached
        sim.control("sdr_changed")
        readings = await session.read_sensors()
        assert sim.status()["sdr_record_reads"] > loaded  # new SDR timestamp: reloaded
        assert any(r.sensor == "gpu8_temp" for r in readings)
    finally:
        await session.close()
    assert any((context.state_dir / "sdr-cache").iterdir())  # kept on disk per BMC model for the next start
