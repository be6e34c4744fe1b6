"""The sensors of the simulated 8-GPU server: numbers, names, scaling and thresholds."""

from __future__ import annotations

from rackd_sim.bmc.sdr import SensorSpec, SensorType, Thresholds, Unit

ENTITY_PROCESSOR = 0x03
ENTITY_SYSTEM_BOARD = 0x07
ENTITY_POWER_SUPPLY = 0x0A
ENTITY_ADD_IN_CARD = 0x0B  # GPUs are add-in cards to IPMI
ENTITY_FAN = 0x1D
ENTITY_AIR_INLET = 0x37

GPU_COUNT = 8
FAN_COUNT = 6
PSU_COUNT = 2

# Power Supply sensor-specific offsets (table 42-3, sensor type 08h).
PSU_PRESENT = 1 << 0
PSU_FAILED = 1 << 1
PSU_INPUT_LOST = 1 << 3


def _temp(number: int, name: str, entity: int, instance: int, t: Thresholds) -> SensorSpec:
    return SensorSpec(number, name, SensorType.TEMPERATURE, entity, instance, Unit.CELSIUS, thresholds=t)


def build_catalog() -> list[SensorSpec]:
    """Every sensor, in SDR order."""
    specs = [
        _temp(1, "Inlet Temp", ENTITY_AIR_INLET, 1, Thresholds(unc=35, uc=40, unr=45)),
        _temp(2, "Exhaust Temp", ENTITY_SYSTEM_BOARD, 1, Thresholds(unc=65, uc=75, unr=85)),
        _temp(3, "CPU1 Temp", ENTITY_PROCESSOR, 1, Thresholds(unc=85, uc=95, unr=100)),
        _temp(4, "CPU2 Temp", ENTITY_PROCESSOR, 2, Thresholds(unc=85, uc=95, unr=100)),
    ]
    number = 5
    for gpu in range(1, GPU_COUNT + 1):
        specs.append(_temp(number, f"GPU{gpu} Temp", ENTITY_ADD_IN_CARD, gpu, Thresholds(unc=83, uc=90, unr=95)))
        number += 1
    for fan in range(1, FAN_COUNT + 1):
        specs.append(
            SensorSpec(number, f"Fan{fan}", SensorType.FAN, ENTITY_FAN, fan, Unit.RPM, m=60,
                       thresholds=Thresholds(lc=600, lnc=1200))
        )
        number += 1
    specs.append(
        SensorSpec(number, "P12V", SensorType.VOLTAGE, ENTITY_SYSTEM_BOARD, 1, Unit.VOLTS, m=6, r_exp=-2,
                   thresholds=Thresholds(lc=11.4, lnc=11.52, unc=12.48, uc=12.6))
    )
    number += 1
    for psu in range(1, PSU_COUNT + 1):
        specs.append(
            SensorSpec(number, f"PSU{psu} Input Power", SensorType.OTHER_UNITS, ENTITY_POWER_SUPPLY, psu,
                       Unit.WATTS, m=14, thresholds=Thresholds(unc=2800, uc=3150))
        )
        specs.append(
            SensorSpec(number + 1, f"PSU{psu} Current", SensorType.CURRENT, ENTITY_POWER_SUPPLY, psu,
                       Unit.AMPS, m=10, r_exp=-2, thresholds=Thresholds(unc=14.0, uc=16.0))
        )
        number += 2
    for psu in range(1, PSU_COUNT + 1):
        specs.append(
            SensorSpec(number, f"PSU{psu} Status", SensorType.POWER_SUPPLY, ENTITY_POWER_SUPPLY, psu,
                       discrete=True, discrete_mask=PSU_PRESENT | PSU_FAILED | PSU_INPUT_LOST)
        )
        number += 1
    return specs
