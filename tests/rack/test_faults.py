"""Faults reach the part they name: the BMC process, the PDU, the console; bad requests are answered, not raised."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rackd_sim.rack.control import RackControl
from rackd_sim.rack.rack import VirtualRack
from rackd_sim.rack.spec import load_spec

from .conftest import SMALL_RACK

pytestmark = pytest.mark.integration


@pytest.fixture
async def rack(tmp_path: Path) -> AsyncIterator[VirtualRack]:
    virtual = VirtualRack(load_spec(SMALL_RACK), log_dir=tmp_path)  # each BMC's stderr, should one fail to start
    await virtual.start()
    try:
        yield virtual
    finally:
        await virtual.stop()


async def bmc_faults(rack: VirtualRack, server: str) -> dict[str, object]:
    link = rack.servers[server].bmc
    assert link is not None
    status = await link.control("status")
    faults: dict[str, object] = status["faults"]
    return faults


async def test_bmc_faults_are_set_in_the_bmc_process_and_cleared(rack: VirtualRack) -> None:
    control = RackControl(rack)
    assert (await control.handle({"op": "fault", "target": "gpu-01", "kind": "packet-loss", "value": "0.5"}))["ok"]
    assert (await control.handle({"op": "fault", "target": "gpu-01", "kind": "slow", "value": "1.5"}))["ok"]
    assert (await control.handle({"op": "fault", "target": "gpu-01", "kind": "hang"}))["ok"]
    faults = await bmc_faults(rack, "gpu-01")
    assert faults["drop_rate"] == 0.5
    assert faults["delay"] == 1.5
    assert faults["hang"] is True
    assert await bmc_faults(rack, "gpu-02") == {**faults, "drop_rate": 0.0, "delay": 0.0, "hang": False}
    assert (await control.handle({"op": "fault", "target": "gpu-01", "kind": "clear"}))["ok"]
    faults = await bmc_faults(rack, "gpu-01")
    assert (faults["drop_rate"], faults["delay"], faults["hang"]) == (0.0, 0.0, False)
    reply = await control.handle({"op": "fault", "target": "gpu-02", "kind": "cold-reset"})
    assert reply == {"ok": True, "result": "BMC cold reset"}


async def test_pdu_faults_and_console_faults(rack: VirtualRack) -> None:
    control = RackControl(rack)
    pdu = rack.pdus["pdu-a"].pdu
    assert (await control.handle({"op": "fault", "target": "pdu-a", "kind": "timeout"}))["ok"]
    assert pdu.faults.silent
    assert (await control.handle({"op": "fault", "target": "pdu-a", "kind": "slow"}))["ok"]
    assert pdu.faults.reply_delay == 5.0
    assert (await control.handle({"op": "fault", "target": "pdu-a", "kind": "clear"}))["ok"]
    assert (pdu.faults.silent, pdu.faults.reply_delay, pdu.faults.drop_rate) == (False, 0.0, 0.0)
    console = rack.servers["gpu-01"].console
    assert console is not None
    reply = await control.handle({"op": "fault", "target": "gpu-01", "kind": "xid", "value": "48"})
    assert reply == {"ok": True, "result": "GPU Xid 48"}
    assert b"NVRM: Xid" in bytes(console._pending) + bytes(console.emitted)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"op": "fault", "target": "gpu-09", "kind": "hang"}, "no target 'gpu-09'; known: gpu-01, gpu-02, leaf-01"),
        ({"op": "fault", "target": "gpu-01", "kind": "melt"}, "unknown fault 'melt' for a server"),
        ({"op": "fault", "target": "pdu-a", "kind": "hang"}, "unknown fault 'hang' for a PDU"),
        ({"op": "fault", "target": "leaf-01", "kind": "hang"}, "leaf-01 has no BMC"),
        ({"op": "fault", "target": "leaf-01", "kind": "xid"}, "leaf-01 has no console"),
        ({"op": "fault", "target": "gpu-01", "kind": "psu-fail", "value": "3"}, "gpu-01 has PSUs 1..2"),
        ({"op": "fault", "target": "gpu-01", "kind": "slow", "value": "soon"}, "VALUE must be a number"),
        ({"op": "reboot"}, "unknown op 'reboot'"),
    ],
)
async def test_bad_requests_get_an_answer_that_says_why(
    rack: VirtualRack, request_: dict[str, object], error: str
) -> None:
    reply = await RackControl(rack).handle(request_)
    assert reply["ok"] is False
    assert error in reply["error"]
