"""APC rPDU2 (PowerNet-MIB): immediate, delayed and reboot commands; state 1 off / 2 on; pending flag."""

from __future__ import annotations

from rackd_sim.pdu.mib import MibStore
from rackd_sim.pdu.model import Op, PowerOn, SimulatedPdu
from rackd_sim.pdu.vendors import Apply, Control, VendorSim, integer, oid, text

_P = "1.3.6.1.4.1.318.1.1.26"
_CONFIG = f"{_P}.9.2.1.1"  # .3 name, .5 power-on delay (-1 never), .6 power-off delay, .7 reboot duration
_STATUS = f"{_P}.9.2.3.1"  # .2 module, .3 name, .4 number, .5 state, .6 command pending
_CONTROL = f"{_P}.9.2.4.1"  # .2 module, .3 name, .4 number, .5 command
_METERED = f"{_P}.9.4.3.1"  # .6 current (0.1 A), .7 power (W), .11 energy (0.1 kWh)


class ApcRpdu2(VendorSim):
    """AP8xxx rPDU2, one module."""

    name = "apc_rpdu2"
    sys_object_id = "1.3.6.1.4.1.318.1.3.4.6"
    sys_descr = "APC Web/SNMP Management Card (MB:v4.1.0 PF:v6.4.0 MN:AP8959EU3 simulated)"
    outlet_tables = (f"{_P}.9.2", f"{_P}.9.4")
    recorded_name_columns = (f"{_STATUS}.3", "1.3.6.1.4.1.318.1.1.4.4.2.1.4")
    metered_columns = (f"{_METERED}.6", f"{_METERED}.7", f"{_METERED}.11", f"{_P}.4.3.1.5", f"{_P}.6.3.1.5")

    def outlet_index(self, number: int) -> tuple[int, ...]:
        """Rows are numbered like the outlets on a single module."""
        return (number,)

    def install(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """Names, numbers, power-on delays; the command column."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            for table in (_CONFIG, _STATUS, _CONTROL):
                store.put(oid(f"{table}.1") + row, integer(number))
                store.put(oid(f"{table}.2") + row, integer(1))
                store.put(oid(f"{table}.3") + row, text(outlet.name))
                store.put(oid(f"{table}.4") + row, integer(number))
            store.put(oid(f"{_CONFIG}.6") + row, integer(round(pdu.timing.delayed)))
            store.put(oid(f"{_CONFIG}.7") + row, integer(max(5, round(pdu.timing.reboot_off))))
            store.put(oid(f"{_METERED}.1") + row, integer(number))
        self.add_control(f"{_CONTROL}.5", pdu.outlets, self._command)

    @staticmethod
    def _command(number: int) -> Control:
        def handle(pdu: SimulatedPdu, value: int) -> Apply | None:
            delayed = pdu.timing.delayed
            actions: dict[int, Apply] = {
                1: lambda: pdu.command(number, Op.ON),
                2: lambda: pdu.command(number, Op.OFF),
                3: lambda: pdu.command(number, Op.REBOOT),
                5: lambda: pdu.command(number, Op.ON, delayed),
                6: lambda: pdu.command(number, Op.OFF, delayed),
                7: lambda: pdu.command(number, Op.REBOOT, delayed),
                8: lambda: pdu.cancel(number),
            }
            return actions.get(value)  # 4 (outletUnknown) is read-only: wrongValue

        return handle

    def refresh(self, pdu: SimulatedPdu, store: MibStore) -> None:
        """States, pending flags, meters, device and phase totals."""
        for number, outlet in pdu.outlets.items():
            row = self.outlet_index(number)
            store.put(oid(f"{_CONFIG}.5") + row, integer(-1 if outlet.power_on is PowerOn.OFF else 0))
            store.put(oid(f"{_STATUS}.5") + row, integer(2 if outlet.on else 1))
            store.put(oid(f"{_STATUS}.6") + row, integer(1 if outlet.pending else 2))
            store.put(oid(f"{_CONTROL}.5") + row, integer(1 if outlet.on else 2))  # reads back the state
            store.put(oid(f"{_METERED}.6") + row, integer(round(pdu.current_a(outlet) * 10)))
            store.put(oid(f"{_METERED}.7") + row, integer(round(outlet.power_w)))
            store.put(oid(f"{_METERED}.11") + row, integer(int(outlet.energy_wh / 100)))
        total_a = sum(pdu.current_a(outlet) for outlet in pdu.outlets.values())
        store.put(oid(f"{_P}.4.3.1.5.1"), integer(round(pdu.total_w / 10)))  # hundredths of kW
        store.put(oid(f"{_P}.4.3.1.9.1"), integer(int(pdu.total_wh / 100)))  # tenths of kWh
        store.put(oid(f"{_P}.6.3.1.5.1"), integer(round(total_a * 10)))
        store.put(oid(f"{_P}.6.3.1.6.1"), integer(round(pdu.voltage)))
