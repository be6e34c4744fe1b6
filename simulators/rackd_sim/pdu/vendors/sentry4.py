"""ServerTech Sentry4: control actions 1 on / 2 off / 3 reboot (4-6 queued); control state shows pending."""

from __future__ import annotations

from rackd_sim.pdu.mib import MibStore
from rackd_sim.pdu.model import Op, PowerOn, SimulatedPdu
from rackd_sim.pdu.vendors import Apply, Control, VendorSim, integer, oid, text

_P = "1.3.6.1.4.1.1718.4.1"
_OUTLET_CONFIG = f"{_P}.8.2.1"  # .3 name, .20 wakeup state (0 on, 1 off, 2 last)
_OUTLET_MONITOR = f"{_P}.8.3.1"  # .1 state (1 on, 2 off), .3 current (0.01 A), .7 power, .14 energy (Wh)
_OUTLET_CONTROL = f"{_P}.8.5.1"  # .1 control state, .2 action
_WAKEUP = {PowerOn.ON: 0, PowerOn.OFF: 1, PowerOn.LAST: 2}
_PEND_ON, _PEND_OFF, _OFF, _ON, _REBOOT = 8, 9, 10, 11, 12


class Sentry4(VendorSim):
    """A PRO2 unit with one input cord."""

    name = "sentry4"
    sys_object_id = "1.3.6.1.4.1.1718.4"
    sys_descr = "Sentry Smart PDU (simulated)"
    outlet_tables = (_OUTLET_CONFIG, _OUTLET_MONITOR, _OUTLET_CONTROL)
    recorded_name_columns = (f"{_OUTLET_CONFIG}.3",)
    metered_columns = (f"{_OUTLET_MONITOR}.3", f"{_OUTLET_MONITOR}.7", f"{_OUTLET_MONITOR}.14", f"{_P}.3.3.1.3")

    def outlet_index(self, number: int) -> tuple[int, ...]:
        """{unit}.{cord}.{outlet}."""
        return (1, 1, number)

    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Names and wakeup states; the action column."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            store.put(oid(f"{_OUTLET_CONFIG}.3") + row, text(outlet.name))
        self.add_control(f"{_OUTLET_CONTROL}.2", pdu.outlets, self._action)

    @staticmethod
    def _action(number: int) -> Control:
        def handle(pdu: SimulatedPdu, value: int) -> Apply | None:
            queued = pdu.timing.delayed  # queued actions wait for the unit's sequencing interval
            actions: dict[int, Apply] = {
                0: lambda: None,
                1: lambda: pdu.command(number, Op.ON),
                2: lambda: pdu.command(number, Op.OFF),
                3: lambda: pdu.command(number, Op.REBOOT),
                4: lambda: pdu.command(number, Op.ON, queued),
                5: lambda: pdu.command(number, Op.OFF, queued),
                6: lambda: pdu.command(number, Op.REBOOT, queued),
            }
            return actions.get(value)

        return handle

    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """States, control states, meters, cord power."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            if outlet.pending is Op.REBOOT:
                control_state = _REBOOT
            elif outlet.pending is not None:
                control_state = _PEND_ON if outlet.pending is Op.ON else _PEND_OFF
            else:
                control_state = _ON if outlet.on else _OFF
            store.put(oid(f"{_OUTLET_CONFIG}.20") + row, integer(_WAKEUP[outlet.power_on]))
            store.put(oid(f"{_OUTLET_MONITOR}.1") + row, integer(1 if outlet.on else 2))
            store.put(oid(f"{_OUTLET_MONITOR}.3") + row, integer(round(pdu.current_a(outlet) * 100)))
            store.put(oid(f"{_OUTLET_MONITOR}.7") + row, integer(round(outlet.power_w)))
            store.put(oid(f"{_OUTLET_MONITOR}.14") + row, integer(int(outlet.energy_wh)))
            store.put(oid(f"{_OUTLET_CONTROL}.1") + row, integer(control_state))
            store.put(oid(f"{_OUTLET_CONTROL}.2") + row, integer(0))
        total_a = sum(pdu.current_a(outlet) for outlet in pdu.outlets.values())
        store.put(oid(f"{_P}.3.3.1.3.1.1"), integer(round(pdu.total_w)))  # cord active power
        store.put(oid(f"{_P}.3.3.1.10.1.1"), integer(int(pdu.total_wh / 100)))  # cord energy, 0.1 kWh
        store.put(oid(f"{_P}.4.3.1.3.1.1.1"), integer(round(total_a * 100)))  # line L1 current, 0.01 A
        store.put(oid(f"{_P}.5.3.1.3.1.1.1"), integer(round(pdu.voltage * 10)))  # phase voltage, 0.1 V
