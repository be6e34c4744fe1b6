"""Eaton EATON-EPDU-MIB (ePDU G2/G3, MA/MI): milli-units, delay-in-seconds outlet commands."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import Command, InventoryOids, Metric, MetricTable, OutletTable, Profile

_EPDU = "1.3.6.1.4.1.534.6.6.7"
_NOW = 0  # control columns take a delay in seconds: 0 = now, n = in n s, -1 = cancel


def _metric(column: int, kind: SensorKind, name: str, scale: float = 1.0) -> Metric:
    # Eaton marks "not available" with any negative value, not only -1.
    return Metric(column, kind, name, scale=scale, negative_is_missing=True)


EPDU = Profile(
    name="eaton_epdu",
    description="Eaton ePDU G2/G3 (EATON-EPDU-MIB)",
    sys_object_ids=(_EPDU,),
    probe=_EPDU,
    tables=(
        # The first index part is strappingIndex (daisy chain, 0 = master).
        MetricTable(
            entry=f"{_EPDU}.3.1.1",
            unit_part=0,
            master_unit=0,
            metrics=(_metric(3, SensorKind.FREQUENCY, "inlet{1}_frequency", 0.1),),
        ),
        MetricTable(
            entry=f"{_EPDU}.3.2.1",
            unit_part=0,
            master_unit=0,
            metrics=(_metric(3, SensorKind.VOLTAGE, "inlet{1}_l{2}_voltage", 0.001),),
        ),
        MetricTable(
            entry=f"{_EPDU}.3.3.1",
            unit_part=0,
            master_unit=0,
            metrics=(_metric(4, SensorKind.CURRENT, "inlet{1}_l{2}_current", 0.001),),
        ),
        MetricTable(
            entry=f"{_EPDU}.3.4.1",
            unit_part=0,
            master_unit=0,
            metrics=(
                _metric(3, SensorKind.APPARENT_POWER, "inlet{1}_l{2}_apparent_power"),
                _metric(4, SensorKind.POWER, "inlet{1}_l{2}_power"),
                Metric(5, SensorKind.ENERGY, "inlet{1}_l{2}_energy", not_available=frozenset()),  # Unsigned32
                Metric(7, SensorKind.POWER_FACTOR, "inlet{1}_l{2}_power_factor", scale=0.001, magnitude=True),
            ),
        ),
        MetricTable(
            entry=f"{_EPDU}.3.5.1",
            unit_part=0,
            master_unit=0,
            metrics=(
                _metric(3, SensorKind.APPARENT_POWER, "inlet{1}_apparent_power"),
                _metric(4, SensorKind.POWER, "inlet{1}_power"),
                Metric(5, SensorKind.ENERGY, "inlet{1}_energy", not_available=frozenset()),
            ),
        ),
        MetricTable(
            entry=f"{_EPDU}.6.3.1",
            unit_part=0,
            master_unit=0,
            metrics=(_metric(2, SensorKind.VOLTAGE, "outlet{1}_voltage", 0.001),),
        ),
        MetricTable(
            entry=f"{_EPDU}.6.4.1",
            unit_part=0,
            master_unit=0,
            metrics=(_metric(3, SensorKind.CURRENT, "outlet{1}_current", 0.001),),
        ),
        MetricTable(
            entry=f"{_EPDU}.6.5.1",
            unit_part=0,
            master_unit=0,
            metrics=(
                _metric(2, SensorKind.APPARENT_POWER, "outlet{1}_apparent_power"),
                _metric(3, SensorKind.POWER, "outlet{1}_power"),
                Metric(4, SensorKind.ENERGY, "outlet{1}_energy", not_available=frozenset()),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_EPDU}.6.6.1.2",  # 0 off, 1 on, 2 pendingOff, 3 pendingOn
            states={0: PowerState.OFF, 1: PowerState.ON, 2: PowerState.ON, 3: PowerState.OFF},
            commands={
                PowerAction.ON: Command(f"{_EPDU}.6.6.1.4", _NOW),
                PowerAction.OFF: Command(f"{_EPDU}.6.6.1.3", _NOW),
            },
            # Eaton's reboot turns an outlet that was off *on* after the off-time.
            native_cycle=Command(f"{_EPDU}.6.6.1.5", _NOW),
            pending_states=frozenset({2, 3}),
            name_columns=(f"{_EPDU}.6.1.1.3", f"{_EPDU}.6.1.1.6"),
            power_on_column=f"{_EPDU}.6.6.1.6",
            power_on_states={0: "off", 1: "on", 2: "last"},
            unit_part=0,
            master_unit=0,
        ),
    ),
    inventory=InventoryOids(
        manufacturer="Eaton",
        model=(f"{_EPDU}.1.2.1.3.0",),
        serial=(f"{_EPDU}.1.2.1.4.0",),
        firmware=(f"{_EPDU}.1.2.1.5.0",),
    ),
)

PROFILES = (EPDU,)
