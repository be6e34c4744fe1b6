"""Simulated vendor families by name and by sysObjectID."""

from __future__ import annotations

from rackd_sim.pdu.vendors import VendorSim
from rackd_sim.pdu.vendors.apc import ApcRpdu2
from rackd_sim.pdu.vendors.eaton import EatonEpdu
from rackd_sim.pdu.vendors.raritan import RaritanPdu2
from rackd_sim.pdu.vendors.sentry4 import Sentry4

VENDORS: dict[str, type[VendorSim]] = {
    vendor.name: vendor for vendor in (ApcRpdu2, RaritanPdu2, Sentry4, EatonEpdu)
}


def vendor_for_sys_object_id(sys_object_id: str) -> type[VendorSim] | None:
    """The simulated family whose sysObjectID is a prefix of (or equal to) the recording's."""
    for vendor in VENDORS.values():
        if sys_object_id == vendor.sys_object_id or sys_object_id.startswith(vendor.sys_object_id + "."):
            return vendor
    if sys_object_id.startswith("1.3.6.1.4.1.318.1.3.4."):
        return ApcRpdu2
    return None
