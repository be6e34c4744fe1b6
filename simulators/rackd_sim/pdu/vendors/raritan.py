"""Raritan PX2/PX3 (PDU2-MIB): switchingOperation 0 off / 1 on / 2 cycle; state 7 on / 8 off; decimals."""

from __future__ import annotations

from rackd_sim.pdu.mib import MibStore
from rackd_sim.pdu.model import Op, PowerOn, SimulatedPdu
from rackd_sim.pdu.vendors import Apply, Control, VendorSim, gauge, integer, oid, text

_P = "1.3.6.1.4.1.13742.6"
_OUTLET_CONFIG = f"{_P}.3.5.3.1"  # .2 label, .3 name, .12 cycle off-time, .13 state on startup
_OUTLET_DECIMALS = f"{_P}.3.5.4.1.7"
_INLET_DECIMALS = f"{_P}.3.3.4.1.7"
_CONTROL = f"{_P}.4.1.2.1"  # .2 switchingOperation, .3 switchingState
_OUTLET_READING = f"{_P}.5.4.3.1.4"
_INLET_READING = f"{_P}.5.2.3.1.4"
_CURRENT, _VOLTAGE, _POWER, _ENERGY = 1, 4, 5, 8
_DECIMALS = {_CURRENT: 3, _VOLTAGE: 0, _POWER: 0, _ENERGY: 0}
_STARTUP = {PowerOn.OFF: 0, PowerOn.ON: 1, PowerOn.LAST: 2}


class RaritanPdu2(VendorSim):
    """A PX2 with one inlet."""

    name = "raritan_pdu2"
    sys_object_id = "1.3.6.1.4.1.13742.6"
    sys_descr = "PX2 simulated"
    reboot_when_off_turns_on = True  # cycle switches the outlet on after the off-time either way
    outlet_tables = (_OUTLET_CONFIG, _OUTLET_DECIMALS, _CONTROL, _OUTLET_READING)
    recorded_name_columns = (f"{_OUTLET_CONFIG}.3",)
    metered_columns = (_OUTLET_READING, _INLET_READING)

    def outlet_index(self, number: int) -> tuple[int, ...]:
        """{pdu}.{outlet}."""
        return (1, number)

    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Labels, names, startup states, decimal digits; the switching column."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            store.put(oid(f"{_OUTLET_CONFIG}.2") + row, text(str(number)))
            store.put(oid(f"{_OUTLET_CONFIG}.3") + row, text(outlet.name))
            store.put(oid(f"{_OUTLET_CONFIG}.12") + row, gauge(max(1, round(pdu.timing.reboot_off))))
            for sensor, digits in _DECIMALS.items():
                store.put(oid(_OUTLET_DECIMALS) + row + (sensor,), gauge(digits))
        for sensor, digits in _DECIMALS.items():
            store.put((*oid(_INLET_DECIMALS), 1, 1, sensor), gauge(digits))
        self.add_control(f"{_CONTROL}.2", pdu.outlets, self._switch)

    @staticmethod
    def _switch(number: int) -> Control:
        def handle(pdu: SimulatedPdu, value: int) -> Apply | None:
            actions: dict[int, Apply] = {
                0: lambda: pdu.command(number, Op.OFF),
                1: lambda: pdu.command(number, Op.ON),
                2: lambda: pdu.command(number, Op.REBOOT),
            }
            return actions.get(value)

        return handle

    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Switching states and the outlet and inlet sensors (raw values scaled by the decimals above)."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            store.put(oid(f"{_OUTLET_CONFIG}.13") + row, integer(_STARTUP[outlet.power_on]))
            store.put(oid(f"{_CONTROL}.2") + row, integer(1 if outlet.on else 0))
            store.put(oid(f"{_CONTROL}.3") + row, integer(7 if outlet.on else 8))
            store.put(oid(_OUTLET_READING) + row + (_CURRENT,), gauge(pdu.current_a(outlet) * 1000))
            store.put(oid(_OUTLET_READING) + row + (_VOLTAGE,), gauge(pdu.voltage))
            store.put(oid(_OUTLET_READING) + row + (_POWER,), gauge(outlet.power_w))
            store.put(oid(_OUTLET_READING) + row + (_ENERGY,), gauge(outlet.energy_wh))
        total_a = sum(pdu.current_a(outlet) for outlet in pdu.outlets.values())
        store.put((*oid(_INLET_READING), 1, 1, _CURRENT), gauge(total_a * 1000))
        store.put((*oid(_INLET_READING), 1, 1, _VOLTAGE), gauge(pdu.voltage))
        store.put((*oid(_INLET_READING), 1, 1, _POWER), gauge(pdu.total_w))
        store.put((*oid(_INLET_READING), 1, 1, _ENERGY), gauge(pdu.total_wh))
