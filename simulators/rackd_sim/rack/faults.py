"""Faults the running rack can be given: on a server's BMC, OS or PSUs, on its console, or on a PDU."""

from __future__ import annotations

from typing import Any

from rackd_sim.console_server.machine import SimulatedConsole
from rackd_sim.rack.bmc_link import BmcLink
from rackd_sim.rack.rack import VirtualRack
from rackd_sim.rack.server import BMC_PSUS, RackServer

PDU_SLOW_DEFAULT = 5.0  # s: longer than any sane SNMP timeout, so each request times out

SERVER_FAULTS = {
    "hang": "the BMC stops answering IPMI (as if its firmware hung)",
    "packet-loss": "the BMC drops this share of IPMI packets (VALUE 0..1, default 0.3)",
    "slow": "the BMC answers VALUE seconds late (default 2)",
    "cold-reset": "the BMC reboots (silent for the spec's bmc_boot seconds)",
    "panic": "kernel panic on the console; the OS is down, so it ignores soft-off until the next power cycle",
    "ignore-soft-off": "same as panic: a hung OS never acts on ACPI soft-off",
    "oops": "a kernel oops on the console (the OS keeps running)",
    "xid": "an NVIDIA Xid error on the console (VALUE: the Xid code, default 79)",
    "psu-fail": "PSU VALUE (1 or 2, default 1) fails: the other PSU and feed carry the whole load",
    "clear": "remove every fault injected on this server (a failed PSU is replaced)",
}
PDU_FAULTS = {
    "timeout": "the PDU's management card stops answering SNMP (every request times out)",
    "packet-loss": "the PDU drops this share of SNMP requests (VALUE 0..1, default 0.3)",
    "slow": f"the PDU answers VALUE seconds late (default {PDU_SLOW_DEFAULT:g})",
    "clear": "remove every fault injected on this PDU",
}


class FaultError(ValueError):
    """The fault cannot be applied; the message says why."""


def _number(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FaultError(f"VALUE must be a number, not {value!r}") from None


def _bmc(server: RackServer) -> BmcLink:
    if server.bmc is None:
        raise FaultError(f"{server.plan.id} has no BMC")
    return server.bmc


def _console(server: RackServer) -> SimulatedConsole:
    if server.console is None:
        raise FaultError(f"{server.plan.id} has no console")
    return server.console


async def _server_fault(server: RackServer, kind: str, value: Any) -> str:  # noqa: PLR0911, PLR0912 - one branch per kind
    if kind not in SERVER_FAULTS:
        raise FaultError(f"unknown fault {kind!r} for a server; known: {', '.join(SERVER_FAULTS)}")
    if (not server.mains or server.bmc_ready_at is not None) and kind != "clear":
        raise FaultError(f"{server.plan.id} has no mains power, or its BMC is still booting")
    if kind == "hang":
        await _bmc(server).control("faults", hang=True)
        server.bmc_faults["hang"] = True
        return "BMC hung"
    if kind == "packet-loss":
        rate = max(0.0, min(1.0, _number(value, 0.3)))
        await _bmc(server).control("faults", drop_rate=rate)
        server.bmc_faults["drop_rate"] = rate
        return f"BMC drops {rate:.0%} of packets"
    if kind == "slow":
        delay = max(0.0, _number(value, 2.0))
        await _bmc(server).control("faults", delay=delay)
        server.bmc_faults["delay"] = delay
        return f"BMC answers {delay:g} s late"
    if kind == "cold-reset":
        await _bmc(server).control("cold_reset")
        return "BMC cold reset"
    if kind in {"panic", "ignore-soft-off"}:
        bmc, console = _bmc(server), _console(server)
        if not server.power_on:
            raise FaultError(f"{server.plan.id} is off")
        console.inject_panic()
        # An NMI is the BMC simulator's only way to take the OS down: soft-off is then ignored.
        await bmc.control("power", action="diag")
        return "kernel panic; OS down, soft-off will be ignored"
    if kind == "oops":
        _console(server).inject_oops()
        return "kernel oops"
    if kind == "xid":
        code = int(_number(value, 79))
        _console(server).inject_xid(code)
        return f"GPU Xid {code}"
    if kind == "psu-fail":
        psu = int(_number(value, 1))
        psus = min(BMC_PSUS, len(server.feeds))
        if not 1 <= psu <= psus:
            raise FaultError(f"{server.plan.id} has PSUs 1..{psus}")
        server.failed_psus.add(psu)
        return f"PSU{psu} failed"
    # clear
    server.failed_psus.clear()
    if server.bmc is not None and server.mains and server.bmc_ready_at is None:
        await server.bmc.control("faults", hang=False, drop_rate=0.0, delay=0.0)
    server.bmc_faults.clear()
    return "faults cleared"


def _pdu_fault(rack: VirtualRack, target: str, kind: str, value: Any) -> str:
    pdu = rack.pdus[target].pdu
    if kind == "timeout":
        pdu.faults.silent = True
        return "PDU silent"
    if kind == "packet-loss":
        pdu.faults.drop_rate = max(0.0, min(1.0, _number(value, 0.3)))
        return f"PDU drops {pdu.faults.drop_rate:.0%} of requests"
    if kind == "slow":
        pdu.faults.reply_delay = max(0.0, _number(value, PDU_SLOW_DEFAULT))
        return f"PDU answers {pdu.faults.reply_delay:g} s late"
    if kind == "clear":
        pdu.faults.silent = False
        pdu.faults.drop_rate = 0.0
        pdu.faults.reply_delay = 0.0
        return "faults cleared"
    raise FaultError(f"unknown fault {kind!r} for a PDU; known: {', '.join(PDU_FAULTS)}")


async def inject(rack: VirtualRack, target: str, kind: str, value: Any = None) -> str:
    """Apply one fault; returns what was done, raises FaultError naming the problem."""
    if target in rack.servers:
        return await _server_fault(rack.servers[target], kind, value)
    if target in rack.pdus.agents:
        return _pdu_fault(rack, target, kind, value)
    known = [*rack.servers, *rack.pdus.agents]
    raise FaultError(f"no target {target!r}; known: {', '.join(known)}")

