"""The declarative shape of a PDU vendor profile: OID tables, index shapes, scales, state and control encodings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rackd.model import PowerAction, PowerState, SensorKind

Index = tuple[int, ...]

# Most PDU MIBs use -1 for "not measured on this model"; some add their own sentinels per column.
MINUS_ONE = frozenset({-1})


@dataclass(frozen=True, slots=True)
class Metric:
    """One numeric column of a table, converted to a canonical unit.

    `name` is a slug template formatted with the row's index parts (`{0}`, `{1}` …), e.g. "phase{0}_voltage".
    """

    column: int
    kind: SensorKind
    name: str
    scale: float = 1.0  # raw x scale = canonical unit (tenths of A: 0.1; hundredths of kW: 10.0)
    not_available: frozenset[int] = MINUS_ONE
    negative_is_missing: bool = False  # Eaton: any negative value means "not available"
    magnitude: bool = False  # Eaton signs the power factor (leading/lagging); rackd publishes its magnitude


@dataclass(frozen=True, slots=True)
class MetricTable:
    """A conceptual table (entry OID plus columns) whose rows each yield one reading per metric."""

    entry: str
    metrics: tuple[Metric, ...]
    unit_part: int | None = None  # index part naming the daisy-chained unit; only non-master units get a prefix
    master_unit: int = 1


@dataclass(frozen=True, slots=True)
class SensorType:
    """What a Raritan-style sensor type number measures and the slug suffix it gets."""

    kind: SensorKind
    suffix: str


@dataclass(frozen=True, slots=True)
class TypedSensorTable:
    """Raritan PDU2: one value column whose last index part is the sensor type; the scale is 10^-decimals.

    The decimals live in a configuration table with the same index; they are read once per session.
    """

    value_column: str
    decimals_column: str
    name: str  # slug template over the index parts before the type, with "{sensor}" for the type's suffix
    types: Mapping[int, SensorType]
    available_column: str | None = None  # TruthValue: 2 = the sensor is not available now
    unit_part: int | None = 0
    master_unit: int = 1


@dataclass(frozen=True, slots=True)
class Command:
    """One SET that asks the PDU to act: write `value` (Integer) to `column`.{outlet index}."""

    column: str
    value: int


@dataclass(frozen=True, slots=True)
class OutletTable:
    """The switched outlets: state encoding, pending-command flags, control commands, names, power-up setting."""

    state_column: str
    states: Mapping[int, PowerState]
    commands: Mapping[PowerAction, Command]  # ON and OFF; the native reboot is `native_cycle`
    native_cycle: Command | None = None
    pending_states: frozenset[int] = frozenset()  # state values that mean a command is still under way
    pending_column: str | None = None  # a separate column flagging a pending command …
    pending_values: frozenset[int] = frozenset()  # … when it holds one of these values
    name_columns: tuple[str, ...] = ()  # first non-empty one names the outlet
    power_on_column: str | None = None  # what the outlet does after the PDU itself powers up
    power_on_states: Mapping[int, str] = field(default_factory=dict)
    power_on_default: str | None = None  # for encodings where any other value means one thing (APC delays)
    unit_part: int | None = None
    master_unit: int = 1


@dataclass(frozen=True, slots=True)
class InventoryOids:
    """Where model, serial and firmware live; the first answered OID of each list wins."""

    manufacturer: str
    model: tuple[str, ...] = ()
    serial: tuple[str, ...] = ()
    firmware: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything rackd knows about one PDU family, as data."""

    name: str
    description: str
    sys_object_ids: tuple[str, ...]  # sysObjectID prefixes that point at this family
    probe: str  # a subtree that must answer for the family to be confirmed
    tables: tuple[MetricTable, ...] = ()
    typed_tables: tuple[TypedSensorTable, ...] = ()
    # Switched-outlet tables in order of preference; the first whose state column answers is used (rPDU2
    # firmware without rPDU2 outlet tables still answers the older sPDU ones).
    outlets: tuple[OutletTable, ...] = ()
    inventory: InventoryOids | None = None
