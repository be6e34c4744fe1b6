"""Vendor families whose outlets are one state column plus one control column, described as data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rackd_sim.pdu.mib import MibStore, Oid
from rackd_sim.pdu.model import Op, Outlet, SimulatedPdu
from rackd_sim.pdu.vendors import Apply, Control, VendorSim, integer, oid, text

# What a control code does: (operation or None for cancel, delayed?) — None entries are no-ops ("none").
Action = tuple[Op | None, bool] | None
CANCEL: Action = (None, False)


@dataclass(frozen=True)
class Meter:
    """A metered outlet column: value = what(pdu, outlet) x factor (e.g. A x 100 for hundredths)."""

    column: str
    what: Callable[[SimulatedPdu, Outlet], float]
    factor: float = 1.0


def amps(pdu: SimulatedPdu, outlet: Outlet) -> float:
    """The outlet's current."""
    return pdu.current_a(outlet)


def watts(_pdu: SimulatedPdu, outlet: Outlet) -> float:
    """The outlet's power."""
    return outlet.power_w


def watt_hours(_pdu: SimulatedPdu, outlet: Outlet) -> float:
    """The outlet's energy."""
    return outlet.energy_wh


@dataclass(frozen=True)
class Layout:
    """The MIB facts of one family."""

    name: str
    sys_object_id: str
    sys_descr: str
    index: Callable[[int], Oid]
    state_column: str
    on: int
    off: int
    control_column: str
    actions: Mapping[int, Action]
    control_reads: Callable[[Outlet], int]  # what a GET on the control column returns
    pending_column: str | None = None
    pending: tuple[int, int] = (1, 2)  # (pending, none)
    pending_states: Mapping[tuple[Op, bool], int] = field(default_factory=dict)  # (op, on now) → state code
    name_column: str | None = None
    meters: tuple[Meter, ...] = ()
    totals: Mapping[str, Callable[[SimulatedPdu], float]] = field(default_factory=dict)  # instance → value
    reboot_when_off_turns_on: bool = False


class TabledVendor(VendorSim):
    """A VendorSim driven by a Layout."""

    layout: Layout

    def outlet_index(self, number: int) -> Oid:
        """As the layout says."""
        return self.layout.index(number)

    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Names and the control column."""
        for number, outlet in pdu.outlets.items():
            if self.layout.name_column:
                store.put(oid(self.layout.name_column) + self.outlet_index(number), text(outlet.name))
        self.add_control(self.layout.control_column, pdu.outlets, self._control)

    def _control(self, number: int) -> Control:
        def handle(pdu: SimulatedPdu, value: int) -> Apply | None:
            if value not in self.layout.actions:
                return None
            action = self.layout.actions[value]
            if action is None:
                return lambda: None
            op, delayed = action
            if op is None:
                return lambda: pdu.cancel(number)
            return lambda: pdu.command(number, op, pdu.timing.delayed if delayed else 0.0)

        return handle

    def _state(self, outlet: Outlet) -> int:
        if outlet.pending is not None and (outlet.pending, outlet.on) in self.layout.pending_states:
            return self.layout.pending_states[(outlet.pending, outlet.on)]
        return self.layout.on if outlet.on else self.layout.off

    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """States, pending flags, control read-backs, meters, totals."""
        layout = self.layout
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            # Control first: where one column is both (sPDU, PX1) the state, with its pending codes, wins.
            store.put(oid(layout.control_column) + row, integer(layout.control_reads(outlet)))
            store.put(oid(layout.state_column) + row, integer(self._state(outlet)))
            if layout.pending_column:
                flag = layout.pending[0] if outlet.pending else layout.pending[1]
                store.put(oid(layout.pending_column) + row, integer(flag))
            for meter in layout.meters:
                store.put(oid(meter.column) + row, integer(round(meter.what(pdu, outlet) * meter.factor)))
        for instance, total in layout.totals.items():
            store.put(oid(instance), integer(round(total(pdu))))


def tabled(layout: Layout, *, outlet_tables: tuple[str, ...], metered: tuple[str, ...] = ()) -> type[VendorSim]:
    """A VendorSim class for one layout."""
    attributes: dict[str, Any] = {
        "layout": layout,
        "name": layout.name,
        "sys_object_id": layout.sys_object_id,
        "sys_descr": layout.sys_descr,
        "reboot_when_off_turns_on": layout.reboot_when_off_turns_on,
        "outlet_tables": outlet_tables,
        "recorded_name_columns": (layout.name_column,) if layout.name_column else (),
        "metered_columns": metered or tuple(meter.column for meter in layout.meters),
    }
    return type(f"Tabled_{layout.name}", (TabledVendor,), attributes)
