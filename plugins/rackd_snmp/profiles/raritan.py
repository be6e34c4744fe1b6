"""Raritan PDU2-MIB (PX2/PX3/PX4, per-sensor decimal digits) and the legacy PDU-MIB (PX1)."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import (
    Command,
    InventoryOids,
    Metric,
    MetricTable,
    OutletTable,
    Profile,
    SensorType,
    TypedSensorTable,
)

_PDU2 = "1.3.6.1.4.1.13742.6"
_PX1 = "1.3.6.1.4.1.13742.4"

# PDU2-MIB SensorTypeEnumeration: only the electrical ones rackd publishes (5 active, 6 apparent — not reversed).
_TYPES = {
    1: SensorType(SensorKind.CURRENT, "current"),
    4: SensorType(SensorKind.VOLTAGE, "voltage"),
    5: SensorType(SensorKind.POWER, "power"),
    6: SensorType(SensorKind.APPARENT_POWER, "apparent_power"),
    7: SensorType(SensorKind.POWER_FACTOR, "power_factor"),
    8: SensorType(SensorKind.ENERGY, "energy"),
    23: SensorType(SensorKind.FREQUENCY, "frequency"),
}

_SWITCHING = f"{_PDU2}.4.1.2.1.2"  # switchingOperation: 0 off, 1 on, 2 cycle

PDU2 = Profile(
    name="raritan_pdu2",
    description="Raritan PX2/PX3/PX4 (PDU2-MIB)",
    sys_object_ids=(_PDU2,),
    probe=f"{_PDU2}.3",
    typed_tables=(
        TypedSensorTable(
            value_column=f"{_PDU2}.5.2.3.1.4",
            decimals_column=f"{_PDU2}.3.3.4.1.7",
            available_column=f"{_PDU2}.5.2.3.1.2",
            name="inlet{1}_{sensor}",
            types=_TYPES,
        ),
        TypedSensorTable(
            value_column=f"{_PDU2}.5.2.4.1.4",
            decimals_column=f"{_PDU2}.3.3.6.1.7",
            available_column=f"{_PDU2}.5.2.4.1.2",
            name="inlet{1}_l{2}_{sensor}",
            types=_TYPES,
        ),
        TypedSensorTable(
            value_column=f"{_PDU2}.5.4.3.1.4",
            decimals_column=f"{_PDU2}.3.5.4.1.7",
            available_column=f"{_PDU2}.5.4.3.1.2",
            name="outlet{1}_{sensor}",
            types=_TYPES,
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_PDU2}.4.1.2.1.3",  # outletSwitchingState: 7 on, 8 off, -1 unavailable
            states={7: PowerState.ON, 8: PowerState.OFF},
            commands={PowerAction.ON: Command(_SWITCHING, 1), PowerAction.OFF: Command(_SWITCHING, 0)},
            native_cycle=Command(_SWITCHING, 2),
            name_columns=(f"{_PDU2}.3.5.3.1.3", f"{_PDU2}.3.5.3.1.2"),
            power_on_column=f"{_PDU2}.3.5.3.1.13",
            power_on_states={0: "off", 1: "on", 2: "last", 3: "pdu_default"},
            unit_part=0,
        ),
    ),
    inventory=InventoryOids(
        manufacturer="Raritan",
        model=(f"{_PDU2}.3.2.1.1.3.1",),
        serial=(f"{_PDU2}.3.2.1.1.4.1",),
    ),
)

_PX1_STATE = f"{_PX1}.1.2.2.1.3"  # outletOperationalState: 0 off, 1 on, -1 error, 2 cycling; writable 0/1

PX1 = Profile(
    name="raritan_px1",
    description="Raritan PX1 (legacy PDU-MIB)",
    sys_object_ids=(_PX1,),
    probe=f"{_PX1}.1",
    tables=(
        MetricTable(
            entry=f"{_PX1}.1.2.2.1",
            metrics=(
                Metric(4, SensorKind.CURRENT, "outlet{0}_current", scale=0.001),
                Metric(8, SensorKind.POWER, "outlet{0}_power"),
            ),
        ),
        MetricTable(
            entry=f"{_PX1}.1.21.2.1",
            metrics=(
                Metric(3, SensorKind.CURRENT, "inlet{0}_l{1}_current", scale=0.001),
                Metric(4, SensorKind.VOLTAGE, "inlet{0}_l{1}_voltage", scale=0.001),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=_PX1_STATE,
            states={0: PowerState.OFF, 1: PowerState.ON},
            commands={PowerAction.ON: Command(_PX1_STATE, 1), PowerAction.OFF: Command(_PX1_STATE, 0)},
            pending_states=frozenset({2}),
            name_columns=(f"{_PX1}.1.2.2.1.2",),
        ),
    ),
    inventory=InventoryOids(manufacturer="Raritan"),
)

PROFILES = (PDU2, PX1)
