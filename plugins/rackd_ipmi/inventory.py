"""FRU 0 and Get Device ID → rackd Inventory (model, serial, BMC firmware)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rackd.errors import DeviceError
from rackd.model import Inventory

if TYPE_CHECKING:
    from rackd_ipmi.link import BmcLink

NETFN_APP = 0x06
CMD_GET_DEVICE_ID = 0x01
_EXTRA_KEYS = {
    "Chassis serial number": "chassis_serial",
    "Board serial number": "board_serial",
    "Board product name": "board_product",
    "Asset Number": "asset_tag",
    "Hardware Version": "hardware_version",
    "UUID": "uuid",
    "Manufacturer ID": "manufacturer_id",
    "Product ID": "product_id",
}


def _text(fru: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = fru.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def from_fru(fru: Mapping[str, Any]) -> Inventory:
    """An Inventory from pyghmi's 'System' inventory record (FRU 0 merged with Device ID and GUID)."""
    extra = {name: str(fru[key]) for key, name in _EXTRA_KEYS.items() if fru.get(key) not in (None, "")}
    return Inventory(
        manufacturer=_text(fru, "Manufacturer", "Board manufacturer"),
        model=_text(fru, "Product name", "Model", "Board product name"),
        serial=_text(fru, "Serial Number", "Chassis serial number", "Board serial number"),
        firmware=_text(fru, "firmware_version"),
        extra=extra,
    )


def from_device_id(data: bytes) -> Inventory:
    """What Get Device ID alone says (BMCs without a readable FRU, such as ipmi_sim's 0xC7 on long reads)."""
    firmware = f"{data[2] & 0x7F}.{data[3]:02X}" if len(data) >= 4 else None
    extra: dict[str, str] = {}
    if len(data) >= 11:
        manufacturer_id = struct.unpack("<I", bytes(data[6:9]) + b"\x00")[0]
        extra = {"manufacturer_id": str(manufacturer_id), "product_id": str(struct.unpack_from("<H", data, 9)[0])}
    return Inventory(firmware=firmware, extra=extra)


def inventory_from(link: BmcLink) -> Inventory:
    """Read FRU 0 through pyghmi; fall back to Device ID when the FRU cannot be read."""
    cmd = link.command
    try:
        name, fru = link.call("read FRU", lambda: next(iter(cmd.get_inventory())))
    except DeviceError:
        if link.poisoned:
            raise
        code, data = link.raw(NETFN_APP, CMD_GET_DEVICE_ID)
        if code:
            raise
        return from_device_id(data)
    return from_fru(fru if name == "System" and isinstance(fru, Mapping) else {})
