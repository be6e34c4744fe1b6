"""APC PowerNet-MIB: rPDU2 (AP8xxx), legacy rPDU (AP78xx/79xx) and MasterSwitch sPDU."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import Command, InventoryOids, Metric, MetricTable, OutletTable, Profile

_APC = "1.3.6.1.4.1.318"
_SYS_IDS = (f"{_APC}.1.3.4",)  # every APC PDU agent; the probe tells the MIB generations apart
_RPDU2 = f"{_APC}.1.1.26"
_RPDU = f"{_APC}.1.1.12"
_SPDU = f"{_APC}.1.1.4"

_INVENTORY = InventoryOids(
    manufacturer="APC",
    model=(f"{_RPDU2}.2.1.8.1", f"{_RPDU}.1.5.0", f"{_SPDU}.1.4.0"),
    serial=(f"{_RPDU2}.2.1.9.1", f"{_RPDU}.1.6.0", f"{_SPDU}.1.5.0"),
    firmware=(f"{_RPDU2}.2.1.6.1", f"{_APC}.1.4.2.4.1.4.1"),
)

_RPDU2_CONTROL = f"{_RPDU2}.9.2.4.1.5"
RPDU2_OUTLETS = OutletTable(
    state_column=f"{_RPDU2}.9.2.3.1.5",
    states={1: PowerState.OFF, 2: PowerState.ON},
    commands={
        PowerAction.ON: Command(_RPDU2_CONTROL, 1),  # immediateOn
        PowerAction.OFF: Command(_RPDU2_CONTROL, 2),  # immediateOff
    },
    native_cycle=Command(_RPDU2_CONTROL, 3),  # immediateReboot (may leave an off outlet off)
    pending_column=f"{_RPDU2}.9.2.3.1.6",
    pending_values=frozenset({1}),
    name_columns=(f"{_RPDU2}.9.2.3.1.3",),
    power_on_column=f"{_RPDU2}.9.2.1.1.5",  # power-on delay in s; -1 = never on after PDU power-up
    power_on_states={-1: "off"},
    power_on_default="on",
)

_SPDU_CONTROL = f"{_SPDU}.4.2.1.3"  # sPDUOutletCtl reads back the state: 1 on, 2 off, 4 unknown
SPDU_OUTLETS = OutletTable(
    state_column=_SPDU_CONTROL,
    states={1: PowerState.ON, 2: PowerState.OFF},
    commands={PowerAction.ON: Command(_SPDU_CONTROL, 1), PowerAction.OFF: Command(_SPDU_CONTROL, 2)},
    native_cycle=Command(_SPDU_CONTROL, 3),
    pending_column=f"{_SPDU}.4.2.1.2",
    pending_values=frozenset({1}),
    name_columns=(f"{_SPDU}.4.2.1.4",),
)

RPDU2 = Profile(
    name="apc_rpdu2",
    description="APC rPDU2 (AP8xxx, APDU9xxx; PowerNet-MIB rPDU2)",
    sys_object_ids=_SYS_IDS,
    probe=f"{_RPDU2}.4.3.1",
    tables=(
        # rPDU2DeviceStatus: power and VA in hundredths of kW/kVA, energy in tenths of kWh.
        MetricTable(
            entry=f"{_RPDU2}.4.3.1",
            unit_part=0,
            metrics=(
                Metric(5, SensorKind.POWER, "total_power", scale=10.0),
                Metric(9, SensorKind.ENERGY, "total_energy", scale=100.0),
                Metric(16, SensorKind.APPARENT_POWER, "total_apparent_power", scale=10.0),
                Metric(17, SensorKind.POWER_FACTOR, "total_power_factor", scale=0.01),
            ),
        ),
        # rPDU2PhaseStatus, indexed by row (one module): current in tenths of A, voltage in V.
        MetricTable(
            entry=f"{_RPDU2}.6.3.1",
            metrics=(
                Metric(5, SensorKind.CURRENT, "phase{0}_current", scale=0.1),
                Metric(6, SensorKind.VOLTAGE, "phase{0}_voltage"),
                Metric(7, SensorKind.POWER, "phase{0}_power", scale=10.0),
                Metric(8, SensorKind.APPARENT_POWER, "phase{0}_apparent_power", scale=10.0),
                Metric(9, SensorKind.POWER_FACTOR, "phase{0}_power_factor", scale=0.01),
            ),
        ),
        MetricTable(
            entry=f"{_RPDU2}.8.3.1",
            metrics=(Metric(5, SensorKind.CURRENT, "bank{0}_current", scale=0.1),),
        ),
        # rPDU2OutletMeteredStatus: the MIB gives no unit for power; W matches the device's totals.
        MetricTable(
            entry=f"{_RPDU2}.9.4.3.1",
            metrics=(
                Metric(6, SensorKind.CURRENT, "outlet{0}_current", scale=0.1),
                Metric(7, SensorKind.POWER, "outlet{0}_power"),
                Metric(11, SensorKind.ENERGY, "outlet{0}_energy", scale=100.0),
            ),
        ),
    ),
    outlets=(RPDU2_OUTLETS, SPDU_OUTLETS),
    inventory=_INVENTORY,
)

_RPDU_CONTROL = f"{_RPDU}.3.3.1.1.4"
RPDU = Profile(
    name="apc_rpdu",
    description="APC rPDU (AP78xx/79xx; PowerNet-MIB rPDU)",
    sys_object_ids=_SYS_IDS,
    probe=f"{_RPDU}.1",
    tables=(
        MetricTable(entry=f"{_RPDU}.1", metrics=(Metric(16, SensorKind.POWER, "total_power"),)),
        MetricTable(
            entry=f"{_RPDU}.2.3.1.1",
            metrics=(Metric(2, SensorKind.CURRENT, "phase{0}_current", scale=0.1),),
        ),
        MetricTable(
            entry=f"{_RPDU}.3.5.1.1",
            metrics=(Metric(7, SensorKind.CURRENT, "outlet{0}_current", scale=0.1),),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_RPDU}.3.5.1.1.4",
            states={1: PowerState.ON, 2: PowerState.OFF},  # reversed against rPDU2
            commands={PowerAction.ON: Command(_RPDU_CONTROL, 1), PowerAction.OFF: Command(_RPDU_CONTROL, 2)},
            native_cycle=Command(_RPDU_CONTROL, 3),
            pending_column=f"{_RPDU}.3.5.1.1.5",
            pending_values=frozenset({1}),
            name_columns=(f"{_RPDU}.3.5.1.1.2",),
        ),
        SPDU_OUTLETS,
    ),
    inventory=_INVENTORY,
)

SPDU = Profile(
    name="apc_spdu",
    description="APC MasterSwitch (PowerNet-MIB sPDU)",
    sys_object_ids=_SYS_IDS,
    probe=f"{_SPDU}.4.2.1",
    outlets=(SPDU_OUTLETS,),
    inventory=_INVENTORY,
)

PROFILES = (RPDU2, RPDU, SPDU)
