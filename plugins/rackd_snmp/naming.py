"""Stable sensor and outlet ids from a table row's index: slug templates plus a prefix for daisy-chained units."""

from __future__ import annotations

from rackd_snmp.profile import Index


def unit_prefix(index: Index, unit_part: int | None, master_unit: int) -> str:
    """"unit2_" for a row of a linked (non-master) unit, "" for the master or a table without units."""
    if unit_part is None or unit_part >= len(index) or index[unit_part] == master_unit:
        return ""
    return f"unit{index[unit_part]}_"


def slug(template: str, index: Index, unit_part: int | None, master_unit: int, **extra: str) -> str | None:
    """The sensor id for one row, or None when the row's index is too short for the template."""
    try:
        return unit_prefix(index, unit_part, master_unit) + template.format(*index, **extra)
    except (IndexError, KeyError):
        return None


def outlet_id(index: Index, unit_part: int | None, master_unit: int) -> str:
    """The power target id: the outlet number, prefixed "U." for an outlet of linked unit U."""
    number = str(index[-1])
    if unit_part is None or unit_part >= len(index) - 1 or index[unit_part] == master_unit:
        return number
    return f"{index[unit_part]}.{number}"
