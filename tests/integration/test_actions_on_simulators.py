"""The control plane against the real simulators: an IPMI BMC (its own process) and an SNMP PDU, via the daemon.

The BMC simulator's event log counts the chassis power transitions it went through, so "never acts twice" is
observed on the device, not inferred from the daemon's own records.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from rackd_sim.bmc.process import BmcProcess
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.model import Timing
from rackd_sim.pdu.simulator import PduSimulator

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration
NODE = "rackd/v1/lab/r1/gpu-01"


@dataclass
class Rig:
    bmc: BmcProcess
    pdu: PduSimulator
    daemon: DaemonProcess
    broker: Mosquitto

    def outlet_on(self, number: int) -> bool:
        return bool(self.pdu["pdu1"].pdu.outlets[number].on)


@pytest.fixture
async def rig(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Rig]:
    bmc = BmcProcess(
        "--power-on-delay",
        "0.3",
        "--power-off-delay",
        "0.2",
        "--boot-delay",
        "0.5",
        "--shutdown-delay",
        "0.5",
        log_path=tmp_path / "bmc.log",
    )
    endpoint = bmc.start()
    pdu = PduSimulator([PduSpec(vendor="apc_rpdu2", outlets=4, timing=Timing(switch=0.1))])
    pdu.start()
    (tmp_path / "bmc.pw").write_text(endpoint.password + "\n")
    (tmp_path / "community").write_text("private\n")
    bmc_table = (
        f'{{ driver = "ipmi", host = "{endpoint.host}", port = {endpoint.port}, '
        f'username = "{endpoint.username}", password = {{ file = "{tmp_path}/bmc.pw" }} }}'
    )
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{tmp_path}/state"
        control_socket = "{tmp_path}/control.sock"
        shutdown_grace = 3
        [mqtt]
        url = "{broker.url}"
        [defaults]
        poll_interval = 1
        call_timeout = 2
        power_timeout = 15
        [actions]
        min_interval = 0
        cycle_off_time = 0.5
        verify_interval = 0.1
        [[pdu]]
        id = "pdu1"
        rack = "r1"
        driver = "snmp"
        host = "127.0.0.1"
        port = {pdu["pdu1"].port}
        timeout = 0.5
        retries = 0
        snmp = {{ version = "2c", community = {{ file = "{tmp_path}/community" }} }}
        [[node]]
        id = "gpu-01"
        rack = "r1"
        outlets = ["pdu1:1", "pdu1:2"]
        bmc = {bmc_table}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    the_rig = Rig(bmc, pdu, daemon, broker)
    try:
        async with MqttWatcher(broker.port, "rackd/v1/lab/_daemon/+/status") as watcher:
            await watcher.wait_for(lambda m: m.json()["counts"].get("reachable") == 2, within=60)
        yield the_rig
    finally:
        daemon.cleanup()
        pdu.stop()
        bmc.stop()


def final(command_id: str) -> Callable[[Received], bool]:
    def matches(m: Received) -> bool:
        body = m.json()
        return bool(body["id"] == command_id and body["status"] in {"succeeded", "failed", "rejected"})

    return matches


async def send(port: int, command: dict[str, object]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(f"{NODE}/cmd", json.dumps(command), qos=1)


async def test_a_redelivered_cycle_acts_once_on_the_bmc(rig: Rig) -> None:
    before = rig.bmc.status()["sel_entries"]
    command = {"v": 1, "id": "sim-cycle-1", "action": "power.cycle", "args": {"via": "bmc"}}
    async with MqttWatcher(rig.broker.port, f"{NODE}/cmd/result") as results:
        await send(rig.broker.port, command)
        (done,) = await results.wait_for(final("sim-cycle-1"), within=60)
        assert done.json()["status"] == "succeeded", done.json()
        after_cycle = rig.bmc.status()["sel_entries"]
        assert after_cycle - before >= 2  # the BMC logged the power-off and the power-on
        await send(rig.broker.port, command)  # redelivered: QoS 1, or a client retry
        await results.wait_for(final("sim-cycle-1"), count=2, within=30)
    status = rig.bmc.status()
    assert status["sel_entries"] == after_cycle  # no second cycle reached the BMC
    assert status["power"] == "on"


async def test_escalation_from_a_hung_bmc_through_the_pdu_outlets(rig: Rig) -> None:
    rig.bmc.control("faults", hang=True)
    command = {"v": 1, "id": "sim-escalate-1", "action": "power.cycle", "args": {"escalate": True}}
    async with MqttWatcher(rig.broker.port, f"{NODE}/cmd/result") as results:
        await send(rig.broker.port, command)
        (done,) = await results.wait_for(final("sim-escalate-1"), within=90)
    body = done.json()
    assert body["status"] == "succeeded", body
    messages = [step["message"] for step in body["steps"]]
    assert any("escalating to PDU outlets pdu1/1, pdu1/2" in m for m in messages)
    # Every outlet observed off before either was switched back on.
    first_on = next(i for i, m in enumerate(messages) if m.startswith("sent on to pdu1/"))
    assert {m for m in messages[:first_on] if m.startswith("observed pdu1/")} >= {
        "observed pdu1/1 off",
        "observed pdu1/2 off",
    }
    assert rig.outlet_on(1)
    assert rig.outlet_on(2)
