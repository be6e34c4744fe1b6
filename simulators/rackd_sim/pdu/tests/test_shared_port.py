"""Many PDUs behind one port and engine, told apart by community (v3: context), independent of each other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rackd_sim.pdu.agent import PduSpec, V3User
from rackd_sim.pdu.simulator import PduSimulator
from rackd_sim.pdu.tests.netsnmp import netsnmp

pytestmark = pytest.mark.interop
USER = V3User("ops", "authkey-1", "privkey-1")


@pytest.fixture
async def shared() -> AsyncIterator[PduSimulator]:
    specs = [
        PduSpec(name=name, vendor=vendor, outlets=4, read_community=f"public-{name}",
                write_community=f"private-{name}", v3_users=(USER,))
        for name, vendor in (("pdu1", "apc_rpdu2"), ("pdu2", "eaton_epdu"), ("pdu3", "sentry4"))
    ]
    simulator = PduSimulator(specs, shared_port=True)
    simulator.start()
    yield simulator
    simulator.stop()


async def test_communities_select_the_pdu(shared: PduSimulator) -> None:
    ports = {agent.port for agent in shared.agents.values()}
    assert len(ports) == 1
    endpoint = shared["pdu1"].endpoint
    seen = {}
    for name in ("pdu1", "pdu2", "pdu3"):
        got = await netsnmp("snmpget", "-v2c", "-c", f"public-{name}", "-Oqvn", endpoint, "1.3.6.1.2.1.1.2.0")
        seen[name] = got.out.strip()
    assert seen == {"pdu1": ".1.3.6.1.4.1.318.1.3.4.6", "pdu2": ".1.3.6.1.4.1.534.6.6.7",
                    "pdu3": ".1.3.6.1.4.1.1718.4"}
    v3 = await netsnmp("snmpget", "-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA", "-A", "authkey-1", "-x", "AES",
                       "-X", "privkey-1", "-n", "pdu2", "-Oqvn", endpoint, "1.3.6.1.2.1.1.2.0")
    assert v3.out.strip() == ".1.3.6.1.4.1.534.6.6.7"


async def test_pdus_are_independent(shared: PduSimulator) -> None:
    endpoint = shared["pdu1"].endpoint
    done = await netsnmp("snmpset", "-v2c", "-c", "private-pdu2", endpoint, "1.3.6.1.4.1.534.6.6.7.6.6.1.3.0.1",
                         "i", "0")
    assert done.code == 0, done.out
    assert not shared["pdu2"].pdu.outlets[1].on
    assert shared["pdu1"].pdu.outlets[1].on
    denied = await netsnmp("snmpset", "-v2c", "-c", "public-pdu1", endpoint, "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.1",
                           "i", "2")
    assert "noAccess" in denied.out
    shared["pdu3"].pdu.faults.silent = True
    silent = await netsnmp("snmpget", "-v2c", "-c", "public-pdu3", "-t", "0.3", "-r", "0", endpoint,
                           "1.3.6.1.2.1.1.2.0")
    assert "Timeout" in silent.out
    alive = await netsnmp("snmpget", "-v2c", "-c", "public-pdu1", endpoint, "1.3.6.1.2.1.1.2.0")
    assert alive.code == 0, alive.out
