"""Vendor behaviours of the simulated PDU: which tables exist, how outlets read, what a SET on control does."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from pysnmp.proto import rfc1902

from rackd_sim.pdu.mib import MibStore, Oid
from rackd_sim.pdu.model import SimulatedPdu
from rackd_sim.pdu.snmprec import parse_oid

# Validates a written value for one outlet and returns the action to apply, or None for wrongValue.
Apply = Callable[[], None]
Control = Callable[[SimulatedPdu, int], Apply | None]


def oid(text: str) -> Oid:
    """A dotted OID as a tuple (vendor modules keep their constants as text, like the MIBs)."""
    return parse_oid(text)


def integer(value: int) -> rfc1902.Integer32:
    """An INTEGER / Integer32 value."""
    return rfc1902.Integer32(value)


def gauge(value: float) -> rfc1902.Gauge32:
    """A Gauge32/Unsigned32 value (clamped at 0)."""
    return rfc1902.Gauge32(max(0, round(value)))


def text(value: str) -> rfc1902.OctetString:
    """A DisplayString value."""
    return rfc1902.OctetString(value.encode("utf-8"))


class VendorSim(ABC):
    """One vendor family's MIB behaviour."""

    name: str
    sys_object_id: str
    sys_descr: str
    reboot_when_off_turns_on: bool = False
    outlet_tables: tuple[str, ...] = ()  # recorded subtrees the simulator replaces with its own outlet tables
    recorded_name_columns: tuple[str, ...] = ()  # where a recording names its outlets (count and names)
    metered_columns: tuple[str, ...] = ()  # columns that answer garbage under the wrong-values fault

    def __init__(self) -> None:
        """Index the controls once."""
        self._controls: dict[Oid, Control] = {}
        self._metered = tuple(oid(column) for column in self.metered_columns)

    @abstractmethod
    def outlet_index(self, number: int) -> Oid:
        """The table index of outlet `number`."""

    @abstractmethod
    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Write static tables (names, indexes, settings) and register control columns."""

    @abstractmethod
    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Write dynamic values: outlet states, pending flags, control read-backs, meters."""

    def add_control(self, column: str, numbers: Iterable[int], make: Callable[[int], Control]) -> None:
        """Make `column`.{index of each outlet} writable through a handler per outlet."""
        base = oid(column)
        for number in numbers:
            self._controls[base + self.outlet_index(number)] = make(number)

    def control_for(self, instance: Oid) -> Control | None:
        """The SET handler of one instance, or None when it is not writable."""
        return self._controls.get(instance)

    def is_metered(self, instance: Oid) -> bool:
        """Whether the instance is a meter reading (for the wrong-values fault)."""
        return any(instance[: len(prefix)] == prefix for prefix in self._metered)

    def recorded_voltage(self, store: MibStore) -> float | None:
        """The supply voltage a recording shows, so a seeded PDU keeps its grid (118 V stays 118 V)."""
        del store
        return None

    def drop_recorded_outlets(self, store: MibStore) -> None:
        """Remove the recording's outlet tables: the simulator owns them from now on."""
        for table in self.outlet_tables:
            store.drop_subtree(oid(table))
