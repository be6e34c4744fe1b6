"""ServerTech Sentry4-MIB (PRO1/PRO2) and Sentry3-MIB (CW/CWG/CS)."""

from __future__ import annotations

from rackd.model import PowerAction, PowerState, SensorKind
from rackd_snmp.profile import Command, InventoryOids, Metric, MetricTable, OutletTable, Profile

_S4 = "1.3.6.1.4.1.1718.4.1"
_S3 = "1.3.6.1.4.1.1718.3.2"
_S4_CONTROL = f"{_S4}.8.5.1.2"  # st4OutletControlAction: 1 on, 2 off, 3 reboot, 4-6 queued variants
_S3_CONTROL = f"{_S3}.3.1.11"  # outletControlAction: 1 on, 2 off, 3 reboot

SENTRY4 = Profile(
    name="sentry4",
    description="ServerTech Sentry4 (PRO1/PRO2; Sentry4-MIB)",
    sys_object_ids=("1.3.6.1.4.1.1718.4",),
    probe=f"{_S4}.3",
    tables=(
        # Input cords, index {unit}.{cord}: energy in tenths of kWh, frequency in tenths of Hz.
        MetricTable(
            entry=f"{_S4}.3.3.1",
            unit_part=0,
            metrics=(
                Metric(3, SensorKind.POWER, "inlet{1}_power"),
                Metric(5, SensorKind.APPARENT_POWER, "inlet{1}_apparent_power"),
                Metric(8, SensorKind.POWER_FACTOR, "inlet{1}_power_factor", scale=0.01),
                Metric(10, SensorKind.ENERGY, "inlet{1}_energy", scale=100.0),
                Metric(11, SensorKind.FREQUENCY, "inlet{1}_frequency", scale=0.1),
            ),
        ),
        # Lines, index {unit}.{cord}.{line}: current in hundredths of A.
        MetricTable(
            entry=f"{_S4}.4.3.1",
            unit_part=0,
            metrics=(Metric(3, SensorKind.CURRENT, "inlet{1}_l{2}_current", scale=0.01),),
        ),
        # Phases, index {unit}.{cord}.{phase}.
        MetricTable(
            entry=f"{_S4}.5.3.1",
            unit_part=0,
            metrics=(
                Metric(3, SensorKind.VOLTAGE, "inlet{1}_phase{2}_voltage", scale=0.1),
                Metric(6, SensorKind.CURRENT, "inlet{1}_phase{2}_current", scale=0.01),
                Metric(8, SensorKind.POWER, "inlet{1}_phase{2}_power"),
                Metric(9, SensorKind.APPARENT_POWER, "inlet{1}_phase{2}_apparent_power"),
                Metric(10, SensorKind.POWER_FACTOR, "inlet{1}_phase{2}_power_factor", scale=0.01),
                Metric(13, SensorKind.ENERGY, "inlet{1}_phase{2}_energy", scale=100.0),
            ),
        ),
        # Outlets, index {unit}.{cord}.{outlet}: energy in Wh.
        MetricTable(
            entry=f"{_S4}.8.3.1",
            unit_part=0,
            metrics=(
                Metric(3, SensorKind.CURRENT, "outlet{2}_current", scale=0.01),
                Metric(6, SensorKind.VOLTAGE, "outlet{2}_voltage", scale=0.1),
                Metric(7, SensorKind.POWER, "outlet{2}_power"),
                Metric(9, SensorKind.APPARENT_POWER, "outlet{2}_apparent_power"),
                Metric(10, SensorKind.POWER_FACTOR, "outlet{2}_power_factor", scale=0.01),
                Metric(14, SensorKind.ENERGY, "outlet{2}_energy"),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_S4}.8.3.1.1",
            states={1: PowerState.ON, 2: PowerState.OFF},
            commands={PowerAction.ON: Command(_S4_CONTROL, 1), PowerAction.OFF: Command(_S4_CONTROL, 2)},
            native_cycle=Command(_S4_CONTROL, 3),
            pending_column=f"{_S4}.8.5.1.1",  # st4OutletControlState: 8 pendOn, 9 pendOff
            pending_values=frozenset({8, 9}),
            name_columns=(f"{_S4}.8.2.1.3",),
            power_on_column=f"{_S4}.8.2.1.20",
            power_on_states={0: "on", 1: "off", 2: "last"},
            unit_part=0,
        ),
    ),
    inventory=InventoryOids(
        manufacturer="ServerTech",
        model=(f"{_S4}.2.2.1.5.1",),
        firmware=(f"{_S4}.1.1.3.0",),
    ),
)

SENTRY3 = Profile(
    name="sentry3",
    description="ServerTech Sentry3 (CW/CWG/CS; Sentry3-MIB)",
    sys_object_ids=("1.3.6.1.4.1.1718.3",),
    probe=f"{_S3}.2",
    tables=(
        # Infeeds, index {tower}.{infeed}: voltage is line-to-line in tenths of V.
        MetricTable(
            entry=f"{_S3}.2.1",
            unit_part=0,
            metrics=(
                Metric(7, SensorKind.CURRENT, "inlet{1}_current", scale=0.01),
                Metric(11, SensorKind.VOLTAGE, "inlet{1}_voltage", scale=0.1),
                Metric(12, SensorKind.POWER, "inlet{1}_power"),
                Metric(13, SensorKind.APPARENT_POWER, "inlet{1}_apparent_power"),
                Metric(14, SensorKind.POWER_FACTOR, "inlet{1}_power_factor", scale=0.01),
                Metric(16, SensorKind.ENERGY, "inlet{1}_energy", scale=100.0),
            ),
        ),
        # Outlets, index {tower}.{infeed}.{outlet}.
        MetricTable(
            entry=f"{_S3}.3.1",
            unit_part=0,
            metrics=(
                Metric(7, SensorKind.CURRENT, "outlet{2}_current", scale=0.01),
                Metric(13, SensorKind.VOLTAGE, "outlet{2}_voltage", scale=0.1),
                Metric(14, SensorKind.POWER, "outlet{2}_power"),
                Metric(18, SensorKind.ENERGY, "outlet{2}_energy"),
            ),
        ),
    ),
    outlets=(
        OutletTable(
            state_column=f"{_S3}.3.1.5",
            # 0 off, 1 on, 4/5 off/on with error, 8/9 off/on with a blown fuse; offWait (2) is still on and
            # onWait (3) still off until the pending command acts.
            states={0: PowerState.OFF, 1: PowerState.ON, 2: PowerState.ON, 3: PowerState.OFF, 4: PowerState.OFF,
                    5: PowerState.ON, 8: PowerState.OFF, 9: PowerState.ON},
            commands={PowerAction.ON: Command(_S3_CONTROL, 1), PowerAction.OFF: Command(_S3_CONTROL, 2)},
            native_cycle=Command(_S3_CONTROL, 3),
            pending_states=frozenset({2, 3}),
            name_columns=(f"{_S3}.3.1.3",),
            power_on_column=f"{_S3}.3.1.19",
            power_on_states={1: "last", 2: "off", 3: "on"},
            unit_part=0,
        ),
    ),
    inventory=InventoryOids(
        manufacturer="ServerTech",
        model=(f"{_S3}.1.1.7.1",),
        serial=(f"{_S3}.1.1.6.1",),
        firmware=("1.3.6.1.4.1.1718.3.1.1.0",),
    ),
)

PROFILES = (SENTRY4, SENTRY3)
