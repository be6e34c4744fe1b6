"""CyberPower CPS-MIB: ePDU and ePDU2 switched/metered PDUs."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import Command, InventoryOids, Metric, MetricTable, OutletTable, Profile

_EPDU = "1.3.6.1.4.1.3808.1.1.3"
_EPDU2 = "1.3.6.1.4.1.3808.1.1.6"
_ON_OFF = {1: PowerState.ON, 2: PowerState.OFF}

EPDU = Profile(
    name="cyberpower_epdu",
    description="CyberPower ePDU (CPS-MIB ePDU)",
    sys_object_ids=(_EPDU, "1.3.6.1.4.1.3808.1.1"),
    probe=f"{_EPDU}.3",
    tables=(
        MetricTable(
            entry=f"{_EPDU}.2.3.1.1",
            metrics=(
                Metric(2, SensorKind.CURRENT, "phase{0}_current", scale=0.1),
                Metric(6, SensorKind.VOLTAGE, "phase{0}_voltage", scale=0.1),
                Metric(7, SensorKind.POWER, "phase{0}_power"),
            ),
        ),
        MetricTable(
            entry=f"{_EPDU}.3.5.1.1",
            metrics=(
                Metric(7, SensorKind.CURRENT, "outlet{0}_current", scale=0.1),
                Metric(8, SensorKind.POWER, "outlet{0}_power"),
                Metric(13, SensorKind.ENERGY, "outlet{0}_energy", scale=100.0),
            ),
        ),
        MetricTable(entry=f"{_EPDU}.5", metrics=(Metric(7, SensorKind.VOLTAGE, "inlet1_voltage", scale=0.1),)),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_EPDU}.3.5.1.1.4",
            states=_ON_OFF,
            commands={
                PowerAction.ON: Command(f"{_EPDU}.3.3.1.1.4", 1),
                PowerAction.OFF: Command(f"{_EPDU}.3.3.1.1.4", 2),
            },
            native_cycle=Command(f"{_EPDU}.3.3.1.1.4", 3),
            name_columns=(f"{_EPDU}.3.5.1.1.2",),
        ),
    ),
    inventory=InventoryOids(manufacturer="CyberPower"),
)

EPDU2 = Profile(
    name="cyberpower_epdu2",
    description="CyberPower ePDU2 (CPS-MIB ePDU2)",
    sys_object_ids=(_EPDU2, "1.3.6.1.4.1.3808.1.1"),
    probe=f"{_EPDU2}.6",
    tables=(
        MetricTable(entry=f"{_EPDU2}.3.4.1", metrics=(Metric(9, SensorKind.ENERGY, "total_energy", scale=100.0),)),
        MetricTable(
            entry=f"{_EPDU2}.4.4.1",
            metrics=(
                Metric(5, SensorKind.CURRENT, "phase{0}_current", scale=0.1),
                Metric(6, SensorKind.VOLTAGE, "phase{0}_voltage", scale=0.1),
                Metric(7, SensorKind.POWER, "phase{0}_power"),
            ),
        ),
        MetricTable(
            entry=f"{_EPDU2}.6.2.4.1",
            metrics=(
                Metric(6, SensorKind.CURRENT, "outlet{0}_current", scale=0.1),
                Metric(7, SensorKind.POWER, "outlet{0}_power"),
                Metric(11, SensorKind.ENERGY, "outlet{0}_energy", scale=100.0),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_EPDU2}.6.1.4.1.5",
            states=_ON_OFF,
            commands={
                PowerAction.ON: Command(f"{_EPDU2}.6.1.5.1.5", 1),
                PowerAction.OFF: Command(f"{_EPDU2}.6.1.5.1.5", 2),
            },
            native_cycle=Command(f"{_EPDU2}.6.1.5.1.5", 3),
        ),
    ),
    inventory=InventoryOids(manufacturer="CyberPower"),
)

# ePDU2 first: newer firmware answers both trees and ePDU2 carries the richer tables.
PROFILES = (EPDU2, EPDU)
