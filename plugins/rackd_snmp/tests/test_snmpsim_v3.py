"""SNMPv3 authPriv against snmpsim (an independent agent): the context name picks the recording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd.drivers.contract import SessionContext
from rackd.errors import AuthError
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.tests.snmpsim_agent import LOOPBACK, RECORDINGS, SnmpsimAgent

pytestmark = pytest.mark.interop
AUTH, PRIV = "auth-key-123", "priv-key-456"


@pytest.fixture(scope="module")
def snmpsim_v3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimAgent]:
    agent = SnmpsimAgent(tmp_path_factory.mktemp("snmpsim-v3"))
    agent.start(
        [RECORDINGS / "sentry4.snmprec"],
        ("--v3-engine-id=auto", "--v3-user=rackd", f"--v3-auth-key={AUTH}", "--v3-auth-proto=SHA256",
         f"--v3-priv-key={PRIV}", "--v3-priv-proto=AES"),
    )
    try:
        agent.wait_ready("", v3=("-v3", "-l", "authPriv", "-u", "rackd", "-a", "SHA-256", "-A", AUTH, "-x", "AES",
                                 "-X", PRIV, "-n", "sentry4"))
        yield agent
    finally:
        agent.stop()


def options(port: int, auth_key: str = AUTH) -> SnmpOptions:
    return SnmpOptions.model_validate(
        {"host": LOOPBACK, "port": port, "timeout": 1.0, "retries": 0,
         "snmp": {"version": "3", "user": "rackd", "auth_protocol": "SHA-256", "auth_key": auth_key,
                  "priv_protocol": "AES", "priv_key": PRIV, "context": "sentry4"}}
    )


async def test_v3_reads_the_recording(snmpsim_v3: SnmpsimAgent, tmp_path: Path) -> None:
    driver = SnmpDriver()
    try:
        session = await driver.open(SessionContext("pdu1", "pdu", tmp_path), options(snmpsim_v3.port))
        readings = {r.sensor: r.value for r in await session.read_sensors()}
    finally:
        await driver.aclose()
    assert session.profile_name == "sentry4"
    assert readings["unit2_inlet1_l3_current"] == pytest.approx(3.46)
    assert readings["inlet1_phase3_power"] == pytest.approx(848.0)


async def test_v3_wrong_auth_key(snmpsim_v3: SnmpsimAgent, tmp_path: Path) -> None:
    driver = SnmpDriver()
    try:
        with pytest.raises(AuthError):
            await driver.open(SessionContext("pdu1", "pdu", tmp_path), options(snmpsim_v3.port, "wrong-key-1"))
    finally:
        await driver.aclose()
