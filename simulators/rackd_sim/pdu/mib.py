"""The simulated PDU's MIB: a sorted OID store and the pysnmp instrumentation controller that serves it."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error
from pysnmp.smi import instrum

from rackd_sim.pdu.model import SimulatedPdu

if TYPE_CHECKING:
    from rackd_sim.pdu.vendors import VendorSim

Oid = tuple[int, ...]
_REFRESH_EVERY = 0.05  # s: meters move slowly; a GETBULK calls the controller once per repetition


class MibStore:
    """OID → value with ordered traversal for GETNEXT/GETBULK."""

    def __init__(self, values: dict[Oid, Any] | None = None) -> None:
        """Start from a recording's values, or empty."""
        self.values: dict[Oid, Any] = dict(values or {})
        self._order: list[Oid] = sorted(self.values)

    def put(self, oid: Oid, value: Any) -> None:
        """Set a value, creating the instance if needed."""
        if oid not in self.values:
            bisect.insort(self._order, oid)
        self.values[oid] = value

    def drop_subtree(self, prefix: Oid) -> None:
        """Remove a recorded table before the simulator writes its own version of it."""
        doomed = [oid for oid in self._order if oid[: len(prefix)] == prefix]
        for oid in doomed:
            del self.values[oid]
        self._order = sorted(self.values)

    def next_after(self, oid: Oid) -> Oid | None:
        """The first OID strictly after `oid`, or None at the end of the MIB."""
        position = bisect.bisect_right(self._order, oid)
        return self._order[position] if position < len(self._order) else None

    def under(self, prefix: Oid) -> list[Oid]:
        """Every OID in a subtree, in order."""
        start = bisect.bisect_left(self._order, prefix)
        out = []
        for oid in self._order[start:]:
            if oid[: len(prefix)] != prefix:
                break
            out.append(oid)
        return out


class PduMibController(instrum.AbstractMibInstrumController):  # type: ignore[misc]  # pysnmp is untyped
    """Serves one simulated PDU: GET/GETNEXT from the store, SET through the vendor's control handlers."""

    def __init__(self, pdu: SimulatedPdu, vendor: VendorSim, store: MibStore) -> None:
        """Bind the PDU, its vendor behaviour and its store."""
        self._pdu = pdu
        self._vendor = vendor
        self.store = store
        self._refreshed_at = 0.0
        self._dirty = True
        self.drop_when_silent = False  # on a shared port the transport cannot tell PDUs apart: drop here
        pdu.changed = self._mark_dirty
        self.refresh()  # every dynamic instance exists from the start (a SET may come before any read)

    def _mark_dirty(self) -> None:
        self._dirty = True

    def _answer_or_drop(self) -> None:
        # A non-SMI PySnmpError makes pysnmp's command responder drop the request without any reply.
        if self.drop_when_silent and not self._pdu.answers():
            raise PySnmpError(f"{self._pdu.name}: silent (simulated fault)")

    def refresh(self) -> None:
        """Bring dynamic values (states, meters) up to date; cheap to call often."""
        now = time.monotonic()
        if self._dirty or now - self._refreshed_at > _REFRESH_EVERY:
            self._pdu.meter()
            self._vendor.refresh(self._pdu, self.store)
            self._refreshed_at = now
            self._dirty = False

    def _value(self, oid: Oid) -> Any:
        if self._pdu.faults.wrong_values and self._vendor.is_metered(oid):
            return rfc1902.OctetString(b"ERR")
        return self.store.values[oid]

    def read_variables(self, *var_binds: Any, **_context: Any) -> list[tuple[Any, Any]]:
        """GET: the stored value or noSuchInstance."""
        self._answer_or_drop()
        self.refresh()
        out = []
        for name, _ in var_binds:
            oid = tuple(name)
            value = self._value(oid) if oid in self.store.values else rfc1905.noSuchInstance
            out.append((rfc1902.ObjectName(oid), value))
        return out

    def read_next_variables(self, *var_binds: Any, **_context: Any) -> list[tuple[Any, Any]]:
        """GETNEXT (and each GETBULK repetition): the next stored OID or endOfMibView."""
        self._answer_or_drop()
        self.refresh()
        out = []
        for name, _ in var_binds:
            following = self.store.next_after(tuple(name))
            if following is None:
                out.append((name, rfc1905.endOfMibView))
            else:
                out.append((rfc1902.ObjectName(following), self._value(following)))
        return out

    def write_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        """SET: every varbind is checked (access, writability, type, value) before any is applied."""
        self._answer_or_drop()
        self.refresh()
        access: Callable[..., Any] | None = context.get("acFun")
        appliers = []
        for position, (name, value) in enumerate(var_binds):
            oid = tuple(name)
            if access is not None and access("write", (name, value), **{**context, "idx": position}):
                raise smi_error.NoAccessError(name=name, idx=position)  # notInView: a read-only community
            handler = self._vendor.control_for(oid)
            if handler is None:
                if oid in self.store.values:
                    raise smi_error.NotWritableError(name=name, idx=position)
                raise smi_error.NoCreationError(name=name, idx=position)
            if value.tagSet != rfc1902.Integer32.tagSet:  # Gauge32, OctetString …: the MIB says INTEGER
                raise smi_error.WrongTypeError(name=name, idx=position)
            apply = handler(self._pdu, int(value))
            if apply is None:
                raise smi_error.WrongValueError(name=name, idx=position)
            appliers.append((".".join(map(str, oid)), int(value), apply))
        for oid_text, number, apply in appliers:
            apply()
            self._pdu.record_set(oid_text, number)
        self._dirty = True
        self.refresh()
        return [(name, value) for name, value in var_binds]
