"""FRU inventory image of the simulated server (Platform Management FRU Information Storage Definition v1.0)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CHASSIS_TYPE_RACK_MOUNT = 0x17
END_OF_FIELDS = 0xC1
FRU_EPOCH = dt.datetime(1996, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class FruInfo:
    """What the FRU says about the server."""

    manufacturer: str = "Rackd Labs"
    product: str = "GPU Server G8"
    model: str = "RL-G8-H100"
    version: str = "A1"
    serial: str = "SIM0000001"
    asset_tag: str = "rack-sim"
    board_manufacturer: str = "Rackd Labs"
    board_product: str = "G8 Mainboard"
    board_serial: str = "BRD0000001"
    board_part: str = "MB-G8-01"
    chassis_part: str = "CH-2U-G8"
    chassis_serial: str = "CHS0000001"
    manufactured: dt.datetime = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def _field(text: str) -> bytes:
    encoded = text.encode("ascii")[:63]
    return bytes([0xC0 | len(encoded)]) + encoded


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def _area(body: bytes) -> bytes:
    """Wrap an area body: version byte, length in 8-byte units, padding, zero checksum."""
    content = bytes([0x01, 0x00]) + body + bytes([END_OF_FIELDS])
    padded_len = (len(content) + 1 + 7) // 8 * 8
    content += bytes(padded_len - len(content) - 1)
    content = content[:1] + bytes([padded_len // 8]) + content[2:]
    return content + bytes([_checksum(content)])


def fru_image(info: FruInfo) -> bytes:
    """FRU 0: common header, chassis, board and product info areas."""
    chassis = _area(bytes([CHASSIS_TYPE_RACK_MOUNT]) + _field(info.chassis_part) + _field(info.chassis_serial))
    minutes = int((info.manufactured - FRU_EPOCH).total_seconds() // 60)
    board = _area(
        bytes([0x00])  # language: English
        + minutes.to_bytes(3, "little")
        + _field(info.board_manufacturer)
        + _field(info.board_product)
        + _field(info.board_serial)
        + _field(info.board_part)
        + _field("")  # FRU file id
    )
    product = _area(
        bytes([0x00])
        + _field(info.manufacturer)
        + _field(info.product)
        + _field(info.model)
        + _field(info.version)
        + _field(info.serial)
        + _field(info.asset_tag)
        + _field("")
    )
    chassis_offset = 1
    board_offset = chassis_offset + len(chassis) // 8
    product_offset = board_offset + len(board) // 8
    header = bytes([0x01, 0x00, chassis_offset, board_offset, product_offset, 0x00, 0x00])
    header += bytes([_checksum(header)])
    return header + chassis + board + product
