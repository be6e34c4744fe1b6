"""Families simulated from layouts: APC rPDU and sPDU, Sentry3, Vertiv/Geist V5, CyberPower ePDU2, Raritan PX1."""

from __future__ import annotations

from collections.abc import Callable

from rackd_sim.pdu.model import Op, Outlet
from rackd_sim.pdu.vendors import VendorSim
from rackd_sim.pdu.vendors.tabled import CANCEL, Layout, Meter, amps, tabled, watt_hours, watts


def _reads(on: int, off: int) -> Callable[[Outlet], int]:
    def read(outlet: Outlet) -> int:
        return on if outlet.on else off

    return read


_RPDU = "1.3.6.1.4.1.318.1.1.12"
APC_RPDU = tabled(
    Layout(
        name="apc_rpdu",
        sys_object_id="1.3.6.1.4.1.318.1.3.4.5",
        sys_descr="APC Switched Rack PDU (rPDU, simulated)",
        index=lambda number: (number,),
        state_column=f"{_RPDU}.3.5.1.1.4",
        on=1,
        off=2,  # rPDU: 1 on, 2 off (reversed against rPDU2)
        control_column=f"{_RPDU}.3.3.1.1.4",
        actions={1: (Op.ON, False), 2: (Op.OFF, False), 3: (Op.REBOOT, False), 4: (Op.ON, True),
                 5: (Op.OFF, True), 6: (Op.REBOOT, True), 7: CANCEL},
        control_reads=_reads(1, 2),
        pending_column=f"{_RPDU}.3.5.1.1.5",
        name_column=f"{_RPDU}.3.5.1.1.2",
        meters=(Meter(f"{_RPDU}.3.5.1.1.7", amps, 10),),
        totals={f"{_RPDU}.1.16.0": lambda pdu: pdu.total_w},
    ),
    outlet_tables=(f"{_RPDU}.3",),
)

_SPDU = "1.3.6.1.4.1.318.1.1.4"
APC_SPDU = tabled(
    Layout(
        name="apc_spdu",
        sys_object_id="1.3.6.1.4.1.318.1.3.4.4",
        sys_descr="APC MasterSwitch (sPDU, simulated)",
        index=lambda number: (number,),
        state_column=f"{_SPDU}.4.2.1.3",  # sPDUOutletCtl is read (state) and written (command) alike
        on=1,
        off=2,
        control_column=f"{_SPDU}.4.2.1.3",
        actions={1: (Op.ON, False), 2: (Op.OFF, False), 3: (Op.REBOOT, False), 5: (Op.ON, True),
                 6: (Op.OFF, True), 7: (Op.REBOOT, True)},
        control_reads=_reads(1, 2),
        pending_column=f"{_SPDU}.4.2.1.2",
        name_column=f"{_SPDU}.4.2.1.4",
    ),
    outlet_tables=(f"{_SPDU}.4.2",),
)

_S3 = "1.3.6.1.4.1.1718.3.2"
SENTRY3 = tabled(
    Layout(
        name="sentry3",
        sys_object_id="1.3.6.1.4.1.1718.3",
        sys_descr="Sentry Switched CDU (simulated)",
        index=lambda number: (1, 1, number),
        state_column=f"{_S3}.3.1.5",
        on=1,
        off=0,
        control_column=f"{_S3}.3.1.11",
        actions={0: None, 1: (Op.ON, False), 2: (Op.OFF, False), 3: (Op.REBOOT, False)},
        control_reads=lambda _outlet: 0,
        pending_states={(Op.OFF, True): 2, (Op.ON, False): 3, (Op.REBOOT, True): 2, (Op.REBOOT, False): 3},
        name_column=f"{_S3}.3.1.3",
        meters=(Meter(f"{_S3}.3.1.7", amps, 100), Meter(f"{_S3}.3.1.14", watts)),
        totals={f"{_S3}.2.1.12.1.1": lambda pdu: pdu.total_w, f"{_S3}.2.1.11.1.1": lambda pdu: pdu.voltage * 10},
    ),
    outlet_tables=(f"{_S3}.3",),
)

_V5 = "1.3.6.1.4.1.21239.5.2.3"
GEIST_V5 = tabled(
    Layout(
        name="vertiv_v5",
        sys_object_id="1.3.6.1.4.1.21239.42.1.53",
        sys_descr="Vertiv MN03EDR1 (simulated)",
        index=lambda number: (number,),
        state_column=f"{_V5}.5.1.4",
        on=1,
        off=2,
        control_column=f"{_V5}.5.1.6",
        actions={1: CANCEL, 2: (Op.ON, False), 3: (Op.ON, True), 4: (Op.OFF, False), 5: (Op.OFF, True),
                 6: (Op.REBOOT, False), 7: (Op.REBOOT, True), 8: None},
        control_reads=lambda _outlet: 8,  # none
        pending_states={(Op.OFF, True): 3, (Op.ON, False): 4, (Op.REBOOT, True): 5, (Op.REBOOT, False): 6},
        name_column=f"{_V5}.5.1.3",
        meters=(Meter(f"{_V5}.6.1.8", amps, 100), Meter(f"{_V5}.6.1.12", watts), Meter(f"{_V5}.6.1.15", watt_hours)),
        totals={f"{_V5}.1.1.9.1": lambda pdu: min(pdu.total_w, 9999), f"{_V5}.1.1.12.1": lambda pdu: pdu.total_wh},
    ),
    outlet_tables=(f"{_V5}.5", f"{_V5}.6"),
)

_CP2 = "1.3.6.1.4.1.3808.1.1.6"
CYBERPOWER_EPDU2 = tabled(
    Layout(
        name="cyberpower_epdu2",
        sys_object_id="1.3.6.1.4.1.3808.1.1.6",
        sys_descr="CyberPower ePDU2 (simulated)",
        index=lambda number: (number,),
        state_column=f"{_CP2}.6.1.4.1.5",
        on=1,
        off=2,
        control_column=f"{_CP2}.6.1.5.1.5",
        actions={1: (Op.ON, False), 2: (Op.OFF, False), 3: (Op.REBOOT, False), 4: (Op.ON, True),
                 5: (Op.OFF, True), 6: (Op.REBOOT, True), 7: CANCEL, 8: None},
        control_reads=_reads(1, 2),
        meters=(Meter(f"{_CP2}.6.2.4.1.6", amps, 10), Meter(f"{_CP2}.6.2.4.1.7", watts),
                Meter(f"{_CP2}.6.2.4.1.11", watt_hours, 0.01)),
    ),
    outlet_tables=(f"{_CP2}.6",),
)

_PX1 = "1.3.6.1.4.1.13742.4"
RARITAN_PX1 = tabled(
    Layout(
        name="raritan_px1",
        sys_object_id="1.3.6.1.4.1.13742.4",
        sys_descr="Raritan PX1 (simulated)",
        index=lambda number: (number,),
        state_column=f"{_PX1}.1.2.2.1.3",  # outletOperationalState: read 0/1 (2 cycling), write 0/1
        on=1,
        off=0,
        control_column=f"{_PX1}.1.2.2.1.3",
        actions={0: (Op.OFF, False), 1: (Op.ON, False)},
        control_reads=_reads(1, 0),
        pending_states={(Op.REBOOT, True): 2, (Op.REBOOT, False): 2},
        name_column=f"{_PX1}.1.2.2.1.2",
        meters=(Meter(f"{_PX1}.1.2.2.1.4", amps, 1000), Meter(f"{_PX1}.1.2.2.1.8", watts)),
    ),
    outlet_tables=(f"{_PX1}.1.2",),
)

LEGACY: tuple[type[VendorSim], ...] = (APC_RPDU, APC_SPDU, SENTRY3, GEIST_V5, CYBERPOWER_EPDU2, RARITAN_PX1)
