"""Vertiv/Geist VERTIV-V5-MIB (MN/MP families): totals capped at 9,999 W, outlet actions with delays."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import Command, InventoryOids, Metric, MetricTable, OutletTable, Profile

_V5 = "1.3.6.1.4.1.21239.5.2"
_PDU = f"{_V5}.3"
_CONTROL = f"{_PDU}.5.1.6"  # 2 on, 4 off, 6 reboot (1 cancel, 3/5/7 after delay, 8 none)

GEIST_V5 = Profile(
    name="vertiv_v5",
    description="Vertiv/Geist rack PDU (VERTIV-V5-MIB)",
    sys_object_ids=("1.3.6.1.4.1.21239",),
    probe=f"{_PDU}",
    tables=(
        # Totals per PDU: Gauge32 0..9999 W — larger loads are not representable.
        MetricTable(
            entry=f"{_PDU}.1.1",
            unit_part=0,
            metrics=(Metric(9, SensorKind.POWER, "total_power"), Metric(12, SensorKind.ENERGY, "total_energy")),
        ),
        MetricTable(
            entry=f"{_PDU}.2.1",
            metrics=(
                Metric(4, SensorKind.VOLTAGE, "phase{0}_voltage", scale=0.1),
                Metric(8, SensorKind.CURRENT, "phase{0}_current", scale=0.01),
                Metric(12, SensorKind.POWER, "phase{0}_power"),
            ),
        ),
        MetricTable(
            entry=f"{_PDU}.3.1",
            metrics=(Metric(4, SensorKind.CURRENT, "breaker{0}_current", scale=0.01),),
        ),
        MetricTable(
            entry=f"{_PDU}.4.1",
            metrics=(Metric(4, SensorKind.CURRENT, "inlet1_l{0}_current", scale=0.01),),
        ),
        MetricTable(
            entry=f"{_PDU}.6.1",
            metrics=(
                Metric(4, SensorKind.VOLTAGE, "outlet{0}_voltage", scale=0.1),
                Metric(8, SensorKind.CURRENT, "outlet{0}_current", scale=0.01),
                Metric(12, SensorKind.POWER, "outlet{0}_power"),
                Metric(15, SensorKind.ENERGY, "outlet{0}_energy"),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_PDU}.5.1.4",
            # 1 on, 2 off, 3 on→off pending, 4 off→on pending, 5 rebootOn, 6 rebootOff, 7 unavailable
            states={1: PowerState.ON, 2: PowerState.OFF, 3: PowerState.ON, 4: PowerState.OFF,
                    5: PowerState.ON, 6: PowerState.OFF},
            commands={PowerAction.ON: Command(_CONTROL, 2), PowerAction.OFF: Command(_CONTROL, 4)},
            native_cycle=Command(_CONTROL, 6),
            pending_states=frozenset({3, 4, 5, 6}),
            name_columns=(f"{_PDU}.5.1.3", f"{_PDU}.5.1.2"),
        ),
    ),
    inventory=InventoryOids(
        manufacturer="Vertiv",
        model=(f"{_V5}.1.8.0",),
        firmware=(f"{_V5}.1.2.0",),
    ),
)

PROFILES = (GEIST_V5,)
