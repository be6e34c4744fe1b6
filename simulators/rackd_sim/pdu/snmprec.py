"""Reading snmpsim `.snmprec` recordings (OID|type|value per line) into pysnmp values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysnmp.proto import rfc1902

Oid = tuple[int, ...]

_TYPES: dict[str, Callable[[str], Any]] = {
    "2": lambda text: rfc1902.Integer32(int(text)),
    "4": lambda text: rfc1902.OctetString(text.encode("utf-8")),
    "4x": lambda text: rfc1902.OctetString(hexValue=text),
    "5": lambda _text: rfc1902.Null(""),
    "6": rfc1902.ObjectIdentifier,
    "64": rfc1902.IpAddress,
    "64x": lambda text: rfc1902.IpAddress(hexValue=text),
    "65": lambda text: rfc1902.Counter32(int(text)),
    "66": lambda text: rfc1902.Gauge32(int(text)),
    "67": lambda text: rfc1902.TimeTicks(int(text)),
    "68": lambda text: rfc1902.Opaque(text.encode("utf-8")),
    "68x": lambda text: rfc1902.Opaque(hexValue=text),
    "70": lambda text: rfc1902.Counter64(int(text)),
}


def parse_oid(text: str) -> Oid:
    """A dotted OID string as a tuple of ints."""
    return tuple(int(part) for part in text.strip().strip(".").split("."))


def load(path: Path) -> dict[Oid, Any]:
    """Every record of a recording; variation-module tags (`2:writecache`) are ignored, values kept."""
    values: dict[Oid, Any] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            oid_text, type_text, value_text = line.split("|", 2)
        except ValueError:
            raise ValueError(f"{path}:{number}: not OID|type|value") from None
        tag = type_text.split(":", 1)[0]
        convert = _TYPES.get(tag)
        if convert is None:
            raise ValueError(f"{path}:{number}: unknown type {type_text!r}")
        values[parse_oid(oid_text)] = convert(value_text)
    return values
