"""Simulated vendor families by name and by sysObjectID."""

from __future__ import annotations

from rackd_sim.pdu.vendors import VendorSim
from rackd_sim.pdu.vendors.apc import ApcRpdu2
from rackd_sim.pdu.vendors.eaton import EatonEpdu
from rackd_sim.pdu.vendors.legacy import LEGACY
from rackd_sim.pdu.vendors.raritan import RaritanPdu2
from rackd_sim.pdu.vendors.sentry4 import Sentry4

_ALL: tuple[type[VendorSim], ...] = (ApcRpdu2, RaritanPdu2, Sentry4, EatonEpdu, *LEGACY)
VENDORS: dict[str, type[VendorSim]] = {vendor.name: vendor for vendor in _ALL}


def vendor_for_sys_object_id(sys_object_id: str) -> type[VendorSim] | None:
    """The simulated family whose sysObjectID is a prefix of (or equal to) the recording's."""
    for vendor in VENDORS.values():
        if sys_object_id == vendor.sys_object_id or sys_object_id.startswith(vendor.sys_object_id + "."):
            return vendor
    return None
