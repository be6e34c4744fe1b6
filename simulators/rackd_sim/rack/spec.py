"""The virtual rack's spec (TOML): the rack, its PDUs and servers, timings, and what goes into the rackd config."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rackd_sim.pdu.vendors.registry import VENDORS

DEFAULT_SPEC = "default.toml"


class SpecError(ValueError):
    """The spec is not usable; the message names the key."""


@dataclass(frozen=True, slots=True)
class RackTiming:
    """How long things take in the rack (seconds; short in tests)."""

    bmc_power_on_delay: float = 3.0
    bmc_power_off_delay: float = 0.5
    os_boot: float = 20.0
    os_shutdown: float = 5.0
    bmc_boot: float = 2.0
    console_boot_speed: float = 1.0
    pdu_switch_delay: float = 0.5


@dataclass(frozen=True, slots=True)
class PduPlan:
    """One PDU of the rack."""

    id: str
    feed: str
    vendor: str = "apc_rpdu2"
    outlets: int = 24
    voltage: float = 230.0


@dataclass(frozen=True, slots=True)
class ServerPlan:
    """One server (or an outlet-only device such as a switch): power model, BMC, console and PSU outlets."""

    id: str
    outlets: tuple[tuple[str, int], ...]  # (pdu id, outlet number), PSU n on outlets[n-1]
    model: str = "server"
    idle_w: float = 1000.0
    max_w: float = 5000.0
    standby_w: float = 24.0  # BMC and fans on standby power while the host is off
    load_mean: float = 0.5
    load_swing: float = 0.2
    bmc: bool = True
    console: bool = True
    powered: bool = True
    protected: bool = False
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RackSpec:
    """The whole virtual rack."""

    id: str
    site: str
    pdus: tuple[PduPlan, ...]
    servers: tuple[ServerPlan, ...]
    power_budget_w: float | None = None
    tick: float = 0.5
    ambient_c: float = 22.0  # cold-aisle inlet air: every BMC's inlet temperature
    load_period: float = 300.0
    timing: RackTiming = field(default_factory=RackTiming)
    rackd: dict[str, Any] = field(default_factory=dict)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{key}: expected a table")
    return value


def _known(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}")


def _outlet(where: str, text: str, pdus: dict[str, PduPlan]) -> tuple[str, int]:
    pdu, _, number = text.partition(":")
    if pdu not in pdus or not number.isdigit():
        raise SpecError(f"{where}: {text!r} must be PDU:N naming one of {', '.join(pdus)}")
    if not 1 <= int(number) <= pdus[pdu].outlets:
        raise SpecError(f"{where}: {pdu} has outlets 1..{pdus[pdu].outlets}, not {number}")
    return pdu, int(number)


def parse_spec(data: dict[str, Any]) -> RackSpec:
    """Validate a parsed TOML document into a RackSpec."""
    _known("spec", data, {"rack", "timing", "load", "rackd", "pdu", "server"})
    rack = _table(data, "rack")
    _known("rack", rack, {"id", "site", "power_budget_w", "tick", "ambient_c"})
    timing_data = _table(data, "timing")
    _known("timing", timing_data, set(RackTiming.__dataclass_fields__))
    load = _table(data, "load")
    _known("load", load, {"period"})
    pdus: dict[str, PduPlan] = {}
    for index, item in enumerate(data.get("pdu", [])):
        _known(f"pdu[{index}]", item, set(PduPlan.__dataclass_fields__))
        plan = PduPlan(**item)
        if plan.vendor not in VENDORS:
            raise SpecError(f"pdu[{index}].vendor: {plan.vendor!r} is not one of {', '.join(sorted(VENDORS))}")
        pdus[plan.id] = plan
    servers: list[ServerPlan] = []
    used: dict[tuple[str, int], str] = {}
    for index, item in enumerate(data.get("server", [])):
        where = f"server[{index}]"
        _known(where, item, set(ServerPlan.__dataclass_fields__))
        outlets = tuple(_outlet(f"{where}.outlets", str(text), pdus) for text in item.get("outlets", []))
        if not outlets:
            raise SpecError(f"{where}.outlets: a server needs at least one outlet")
        for outlet in outlets:
            if outlet in used:
                raise SpecError(f"{where}.outlets: {outlet[0]}:{outlet[1]} already feeds {used[outlet]}")
            used[outlet] = str(item.get("id"))
        plan_fields = {**item, "outlets": outlets, "tags": tuple(item.get("tags", ()))}
        servers.append(ServerPlan(**plan_fields))
    if not pdus or not servers:
        raise SpecError("spec: at least one [[pdu]] and one [[server]] are needed")
    return RackSpec(
        id=str(rack.get("id", "r01")),
        site=str(rack.get("site", "demo")),
        pdus=tuple(pdus.values()),
        servers=tuple(servers),
        power_budget_w=rack.get("power_budget_w"),
        tick=float(rack.get("tick", 0.5)),
        ambient_c=float(rack.get("ambient_c", 22.0)),
        load_period=float(load.get("period", 300.0)),
        timing=RackTiming(**timing_data),
        rackd=_table(data, "rackd"),
    )


def load_spec(path: Path | None = None) -> RackSpec:
    """The spec in `path`, or the default rack shipped with the package."""
    if path is None:
        text = resources.files("rackd_sim.rack").joinpath(DEFAULT_SPEC).read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return parse_spec(tomllib.loads(text))
    except (TypeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path or DEFAULT_SPEC}: {exc}") from exc
