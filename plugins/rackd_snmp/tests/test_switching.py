"""Outlet control through the driver against the simulator: observed on/off, no needless SET, refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.model import Op, Timing
from rackd_sim.pdu.simulator import PduSimulator

from rackd.drivers.contract import SessionContext
from rackd.errors import AuthError, DeviceRefusedError, UnsupportedError
from rackd.model import PowerAction, PowerState
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.session import SnmpSession

Simulated = Callable[..., PduSimulator]
# Every simulated family; the profile the driver must detect (sysObjectID + probe) is the same name.
VENDORS = ["apc_rpdu2", "apc_rpdu", "apc_spdu", "raritan_pdu2", "raritan_px1", "sentry4", "sentry3", "eaton_epdu",
           "cyberpower_epdu2", "vertiv_v5"]
UNNAMED = {"cyberpower_epdu2"}  # the table rackd reads has no name column
UNMETERED = {"apc_rpdu", "apc_spdu"}  # no per-outlet power in these MIBs


def options(endpoint: str, community: str = "private", **extra: object) -> SnmpOptions:
    host, port = endpoint.rsplit(":", 1)
    return SnmpOptions.model_validate(
        {"host": host, "port": int(port), "timeout": 1.0, "retries": 0,
         "snmp": {"version": "2c", "community": community}, **extra}
    )


async def observed(session: SnmpSession, target: str, state: PowerState, deadline: float = 5.0) -> None:
    """Poll the outlet's state until it is observed (what the runtime does after an action)."""
    until = time.monotonic() + deadline
    while await session.get_power(target) is not state:
        assert time.monotonic() < until, f"outlet {target} never observed {state}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_outlet_off_and_on_are_observed(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext, vendor: str
) -> None:
    sim = simulated(PduSpec(vendor=vendor, outlets=6, timing=Timing(switch=0.05)))
    session = await driver.open(context, options(sim["pdu1"].endpoint))
    assert session.profile_name == vendor
    targets = await session.power_targets()
    assert [t.id for t in targets] == ["1", "2", "3", "4", "5", "6"]
    assert targets[2].label == (None if vendor in UNNAMED else "Outlet 3")

    await session.set_power("3", PowerAction.OFF)
    await observed(session, "3", PowerState.OFF)
    assert not sim["pdu1"].pdu.outlets[3].on
    await session.set_power("3", PowerAction.ON)
    await observed(session, "3", PowerState.ON)

    sets = len(sim["pdu1"].pdu.set_log)
    await session.set_power("3", PowerAction.ON)  # already on: no SET at all
    assert len(sim["pdu1"].pdu.set_log) == sets

    readings = {r.sensor: r for r in await session.read_sensors()}
    assert readings["outlet3_state"].states == ("on",)
    if vendor not in UNMETERED:
        assert readings["outlet3_power"].value == pytest.approx(120.0)
    await session.close()


@pytest.mark.parametrize(
    "vendor", ["apc_rpdu2", "apc_rpdu", "apc_spdu", "sentry4", "sentry3", "eaton_epdu", "vertiv_v5"]
)
async def test_pending_command_is_refused_not_stacked(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext, vendor: str
) -> None:
    sim = simulated(PduSpec(vendor=vendor, outlets=2))
    sim["pdu1"].pdu.command(2, Op.OFF, delay=60.0)  # someone scheduled a delayed off on the PDU itself
    session = await driver.open(context, options(sim["pdu1"].endpoint))
    with pytest.raises(DeviceRefusedError, match="pending"):
        await session.set_power("2", PowerAction.ON)
    readings = {r.sensor: r for r in await session.read_sensors()}
    assert readings["outlet2_state"].states == ("on", "pending")
    assert sim["pdu1"].pdu.set_log == []


async def test_cycle_is_the_runtimes_job_unless_native_is_configured(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="sentry4", outlets=2, timing=Timing(reboot_off=0.1)))
    endpoint = sim["pdu1"].endpoint
    plain = await driver.open(context, options(endpoint))
    with pytest.raises(UnsupportedError, match="native_cycle"):
        await plain.set_power("1", PowerAction.CYCLE)
    with pytest.raises(UnsupportedError):
        await plain.set_power("1", PowerAction.SOFT_OFF)

    native = await driver.open(context, options(endpoint, native_cycle=True))
    await native.set_power("1", PowerAction.CYCLE)
    assert sim["pdu1"].pdu.set_log[-1].oid == "1.3.6.1.4.1.1718.4.1.8.5.1.2.1.1.1"
    assert sim["pdu1"].pdu.set_log[-1].value == 3  # reboot
    await observed(native, "1", PowerState.OFF)
    await observed(native, "1", PowerState.ON)

    await native.set_power("2", PowerAction.OFF)
    await observed(native, "2", PowerState.OFF)
    with pytest.raises(DeviceRefusedError, match="not on"):  # vendors disagree on rebooting an off outlet
        await native.set_power("2", PowerAction.CYCLE)


async def test_read_only_community_cannot_switch(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="raritan_pdu2", outlets=2))
    session = await driver.open(context, options(sim["pdu1"].endpoint, community="public"))
    with pytest.raises(AuthError, match="noAccess"):
        await session.set_power("1", PowerAction.OFF)
    with pytest.raises(UnsupportedError, match="no outlet '9'"):
        await session.get_power("9")
    assert sim["pdu1"].pdu.outlets[1].on


async def test_energy_reset_is_flagged_and_power_up_state_reported(
    simulated: Simulated, driver: SnmpDriver, context: SessionContext
) -> None:
    sim = simulated(PduSpec(vendor="eaton_epdu", outlets=2))
    pdu = sim["pdu1"].pdu
    pdu.set_energy(1, 5000.0)
    session = await driver.open(context, options(sim["pdu1"].endpoint))
    first = {r.sensor: r for r in await session.read_sensors()}
    assert first["outlet1_energy"].value == pytest.approx(5000.0, abs=1)
    assert first["outlet1_power_on_state"].states == ("last",)
    pdu.set_energy(1, 10.0)  # somebody reset the outlet's meter
    second = {r.sensor: r for r in await session.read_sensors()}
    assert second["outlet1_energy"].flags == ("counter_reset",)
    assert second["outlet1_energy"].value == pytest.approx(10.0, abs=1)
    assert second["outlet2_energy"].flags == ()
