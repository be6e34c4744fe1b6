"""Eaton ePDU (EATON-EPDU-MIB): Off/On/Reboot columns take a delay in seconds (0 now, -1 cancel)."""

from __future__ import annotations

from rackd_sim.pdu.mib import MibStore
from rackd_sim.pdu.model import Op, PowerOn, SimulatedPdu
from rackd_sim.pdu.vendors import Apply, Control, VendorSim, gauge, integer, oid, text

_P = "1.3.6.1.4.1.534.6.6.7"
_OUTLET_CONFIG = f"{_P}.6.1.1"  # .2 id, .3 name, .6 designator
_CURRENT = f"{_P}.6.4.1.3"  # mA
_POWER = f"{_P}.6.5.1"  # .3 W, .4 Wh
_CONTROL = f"{_P}.6.6.1"  # .2 status, .3 off, .4 on, .5 reboot, .6 power-on state, .8 reboot off-time
_STATUS_OFF, _STATUS_ON, _PENDING_OFF, _PENDING_ON = 0, 1, 2, 3
_POWER_ON = {PowerOn.OFF: 0, PowerOn.ON: 1, PowerOn.LAST: 2}
_MAX_DELAY = 99999


class EatonEpdu(VendorSim):
    """An ePDU G3 master (strapping index 0), one input."""

    name = "eaton_epdu"
    sys_object_id = "1.3.6.1.4.1.534.6.6.7"
    sys_descr = "ePDU MA simulated"
    reboot_when_off_turns_on = True  # per MIB: an outlet that was off turns on after the off-time
    outlet_tables = (_OUTLET_CONFIG, _CURRENT, _POWER, _CONTROL)
    recorded_name_columns = (f"{_OUTLET_CONFIG}.3",)
    metered_columns = (_CURRENT, f"{_POWER}.3", f"{_POWER}.4", f"{_P}.3.4.1.4")

    def outlet_index(self, number: int) -> tuple[int, ...]:
        """{strapping}.{outlet}."""
        return (0, number)

    def recorded_voltage(self, store: MibStore) -> float | None:
        """The recorded inputVoltage (mV) of the master's first input."""
        value = store.values.get(oid(f"{_P}.3.2.1.3.0.1.1"))
        return int(value) / 1000 if value is not None and int(value) > 0 else None

    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Names and power-on states; the three command columns."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            store.put(oid(f"{_OUTLET_CONFIG}.2") + row, text(str(number)))
            store.put(oid(f"{_OUTLET_CONFIG}.3") + row, text(outlet.name))
            store.put(oid(f"{_OUTLET_CONFIG}.6") + row, text(f"A{number}"))
            store.put(oid(f"{_CONTROL}.8") + row, integer(max(1, round(pdu.timing.reboot_off))))
        store.put(oid(f"{_P}.1.2.1.3.0"), text("EMA-SIM"))  # model, serial, firmware of the master
        store.put(oid(f"{_P}.1.2.1.4.0"), text(f"SIM{pdu.name.upper()}"))
        store.put(oid(f"{_P}.1.2.1.5.0"), text("05.01.0002"))
        self.add_control(f"{_CONTROL}.3", pdu.outlets, lambda number: self._delayed(number, Op.OFF))
        self.add_control(f"{_CONTROL}.4", pdu.outlets, lambda number: self._delayed(number, Op.ON))
        self.add_control(f"{_CONTROL}.5", pdu.outlets, lambda number: self._delayed(number, Op.REBOOT))

    @staticmethod
    def _delayed(number: int, op: Op) -> Control:
        def handle(pdu: SimulatedPdu, value: int) -> Apply | None:
            if value == -1:
                return lambda: pdu.cancel(number)
            if 0 <= value <= _MAX_DELAY:
                return lambda: pdu.command(number, op, float(value))
            return None

        return handle

    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Statuses (with pending states), command read-backs, meters, input power."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            if outlet.pending is Op.OFF or (outlet.pending is Op.REBOOT and outlet.on):
                status = _PENDING_OFF
            elif outlet.pending is not None:
                status = _PENDING_ON
            else:
                status = _STATUS_ON if outlet.on else _STATUS_OFF
            store.put(oid(f"{_CONTROL}.2") + row, integer(status))
            store.put(oid(f"{_CONTROL}.6") + row, integer(_POWER_ON[outlet.power_on]))
            for column in (3, 4, 5):
                store.put(oid(f"{_CONTROL}.{column}") + row, integer(-1))  # no countdown running
            store.put(oid(_CURRENT) + row, integer(round(pdu.current_a(outlet) * 1000)))
            store.put(oid(f"{_POWER}.3") + row, integer(round(outlet.power_w)))
            store.put(oid(f"{_POWER}.4") + row, gauge(outlet.energy_wh))
        total_a = sum(pdu.current_a(outlet) for outlet in pdu.outlets.values())
        store.put(oid(f"{_P}.3.2.1.3.0.1.1"), integer(round(pdu.voltage * 1000)))  # mV
        store.put(oid(f"{_P}.3.3.1.4.0.1.1"), integer(round(total_a * 1000)))  # mA
        store.put(oid(f"{_P}.3.4.1.4.0.1.1"), integer(round(pdu.total_w)))
        store.put(oid(f"{_P}.3.5.1.4.0.1"), integer(round(pdu.total_w)))
        store.put(oid(f"{_P}.3.5.1.5.0.1"), gauge(pdu.total_wh))
