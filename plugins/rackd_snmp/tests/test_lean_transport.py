"""The lean v1/v2c path over real UDP: a simulated PDU behind a relay that breaks, repeats, delays or drops replies."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.simulator import PduSimulator

from rackd.errors import DeviceProtocolError, DeviceTimeoutError, DeviceUnreachableError
from rackd_snmp.client import SnmpClient
from rackd_snmp.driver import SnmpDriver
from rackd_snmp.options import SnmpOptions
from rackd_snmp.tests.udp_relay import ReplyRelay
from rackd_snmp.v2c import Message, PduType, Version, decode_message, encode_message

Simulated = Callable[..., PduSimulator]
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
APC_RPDU2 = "1.3.6.1.4.1.318.1.3.4.6"
OUTLET_STATE = "1.3.6.1.4.1.318.1.1.26.9.2.3.1.5"


def options(host: str, port: int, *, timeout: float = 0.3, retries: int = 0, lean: bool = True,
            version: str = "2c") -> SnmpOptions:  # fmt: skip
    return SnmpOptions.model_validate(
        {"host": host, "port": port, "timeout": timeout, "retries": retries, "lean_codec": lean,
         "snmp": {"version": version, "community": "public"}}
    )  # fmt: skip


@pytest.fixture
async def relay(simulated: Simulated) -> AsyncIterator[ReplyRelay]:
    sim = simulated(PduSpec(vendor="apc_rpdu2", outlets=4))
    host, port = sim["pdu1"].endpoint.rsplit(":", 1)
    front = ReplyRelay((host, int(port)))
    await front.start()
    yield front
    front.close()


def client_for(driver: SnmpDriver, relay: ReplyRelay, **extra: object) -> SnmpClient:
    assert relay.front is not None
    host, port = relay.front.get_extra_info("sockname")[:2]
    return SnmpClient(driver.pool, options(host, port, **extra))  # type: ignore[arg-type]


def rewrite(change: Callable[[Message], Message]) -> Callable[[bytes], list[tuple[float, bytes, bool]]]:
    """A relay alteration that decodes the agent's reply, changes it and encodes it again."""
    return lambda data: [(0.0, encode_message(change(decode_message(data))), False)]


def raw(change: Callable[[bytes], bytes]) -> Callable[[bytes], list[tuple[float, bytes, bool]]]:
    return lambda data: [(0.0, change(data), False)]


async def test_reads_go_through_the_lean_codec(driver: SnmpDriver, relay: ReplyRelay) -> None:
    client = client_for(driver, relay)
    assert client.lean
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}
    walked = await client.walk([OUTLET_STATE], 32)
    assert walked[OUTLET_STATE] == {(1,): 2, (2,): 2, (3,): 2, (4,): 2}
    assert decode_message(relay.requests[-1]).pdu_type is PduType.GET_BULK
    assert driver.pool.v2c.receive_buffer() is not None
    assert driver.pool._engine is None  # no pysnmp engine for v2c reads: its ~0.1 s of CPU is never spent


@pytest.mark.parametrize(
    ("alter", "problem"),
    [
        (raw(lambda data: data[:-4]), r"malformed reply: (truncated|length overflow)"),
        (raw(lambda data: b"\x30"), r"malformed reply: truncated: the message at byte 0"),
        (raw(lambda data: b"\x31" + data[1:]), r"malformed reply: wrong tag: the message at byte 0 has tag 0x31"),
        (raw(lambda data: data[:1] + bytes((data[1] + 1,)) + data[2:]), r"malformed reply: length overflow"),
        (raw(lambda data: b"SSH-2.0-OpenSSH_9.6\r\n"), r"malformed reply: wrong tag"),
        (rewrite(lambda m: replace(m, request_id=(m.request_id + 2**30) % 2**31)), r"request-id \d+, which is none"),
        (rewrite(lambda m: replace(m, community=b"privat")), "the reply carries another community than the request"),
        (rewrite(lambda m: replace(m, version=Version.V1)), "the reply is SNMP v1, the request v2c"),
        (rewrite(lambda m: replace(m, pdu_type=PduType.GET)), "the reply is a GET PDU, not a Response"),
    ],
)
async def test_a_bad_reply_is_a_protocol_error_naming_the_device(
    driver: SnmpDriver, relay: ReplyRelay, alter: Callable[[bytes], list[tuple[float, bytes, bool]]], problem: str
) -> None:
    relay.alter = alter
    client = client_for(driver, relay, timeout=5.0)  # refused at once, not after the timeout
    started = time.monotonic()
    with pytest.raises(DeviceProtocolError, match=rf"^{client.endpoint}: GET {SYS_OBJECT_ID}: .*{problem}"):
        await client.get([SYS_OBJECT_ID])
    assert time.monotonic() - started < 2.0
    assert "public" not in str(problem)  # the community is a secret


async def test_duplicate_replies_are_ignored(driver: SnmpDriver, relay: ReplyRelay) -> None:
    relay.alter = lambda data: [(0.0, data, False), (0.0, data, False)]
    client = client_for(driver, relay)
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}
    assert driver.pool.v2c.counters.late == 2
    assert driver.pool.v2c.waiting == 0


async def test_a_late_reply_is_ignored_and_the_resend_answers(driver: SnmpDriver, relay: ReplyRelay) -> None:
    replies = 0

    def late_first(data: bytes) -> list[tuple[float, bytes, bool]]:
        nonlocal replies
        replies += 1
        return [(0.45 if replies == 1 else 0.0, data, False)]

    relay.alter = late_first
    client = client_for(driver, relay, timeout=0.3, retries=1)
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}  # answered by the resend
    first, second = (decode_message(request) for request in relay.requests[:2])
    assert first.request_id == second.request_id  # a resend is the same request
    await relay.delayed_sent.wait()  # the first try's reply is now on its way …
    walked = await client.walk([OUTLET_STATE], 32)  # … and is read before this reply, and dropped
    assert walked[OUTLET_STATE][(1,)] == 2
    assert driver.pool.v2c.counters.late == 1


@pytest.mark.parametrize(("retries", "lean"), [(0, True), (2, True), (2, False)])
async def test_timeout_and_retries_as_configured(
    driver: SnmpDriver, relay: ReplyRelay, retries: int, lean: bool
) -> None:
    relay.answer = False
    client = client_for(driver, relay, timeout=0.2, retries=retries, lean=lean)
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match=rf"no response to GET {SYS_OBJECT_ID} within 0.2 s x {retries + 1} "
                       r"tries \(the PDU is down, or the community"):  # fmt: skip
        await client.get([SYS_OBJECT_ID])
    assert time.monotonic() - started >= 0.2 * (retries + 1) - 0.02
    assert len(relay.requests) == retries + 1
    if lean:
        assert len({decode_message(request).request_id for request in relay.requests}) == 1
        assert driver.pool.v2c.waiting == 0


async def test_a_reply_from_another_address_is_not_taken(driver: SnmpDriver, relay: ReplyRelay) -> None:
    relay.alter = lambda data: [(0.0, data, True)]
    client = client_for(driver, relay, timeout=0.2)
    with pytest.raises(DeviceTimeoutError):
        await client.get([SYS_OBJECT_ID])
    assert driver.pool.v2c.counters.foreign == 1


async def test_a_cancelled_request_leaves_nothing_behind(driver: SnmpDriver, relay: ReplyRelay) -> None:
    relay.answer = False
    client = client_for(driver, relay, timeout=5.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # the runtime's call deadline
            await client.get([SYS_OBJECT_ID])
    assert driver.pool.v2c.waiting == 0
    relay.answer = True
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}


async def test_a_refused_send_is_unreachable(driver: SnmpDriver) -> None:
    # The kernel refuses a datagram to the broadcast address from a socket without SO_BROADCAST.
    client = SnmpClient(driver.pool, options("255.255.255.255", 161))
    with pytest.raises(DeviceUnreachableError, match=rf"^255.255.255.255:161: GET {SYS_OBJECT_ID}: "):
        await client.get([SYS_OBJECT_ID])
    assert driver.pool.v2c.waiting == 0


async def test_closing_the_driver_ends_waiting_requests(driver: SnmpDriver, relay: ReplyRelay) -> None:
    relay.answer = False
    client = client_for(driver, relay, timeout=5.0)
    waiting = asyncio.create_task(client.get([SYS_OBJECT_ID]))
    await relay.arrived.wait()  # the request is on the wire
    await driver.aclose()
    with pytest.raises(DeviceUnreachableError, match="closed its SNMP socket"):
        await waiting


# --- the same answers as pysnmp to the same odd replies -------------------------------------------------------

@pytest.mark.parametrize("lean", [True, False])
async def test_error_statuses_read_as_through_pysnmp(driver: SnmpDriver, relay: ReplyRelay, lean: bool) -> None:
    client = client_for(driver, relay, lean=lean, timeout=1.0)
    relay.alter = rewrite(lambda m: replace(m, error_status=1, error_index=1))  # tooBig: not retried smaller
    with pytest.raises(DeviceProtocolError, match=rf"^{client.endpoint}: GET {SYS_OBJECT_ID}: tooBig$"):
        await client.get([SYS_OBJECT_ID])
    with pytest.raises(DeviceProtocolError, match=rf"GETBULK {OUTLET_STATE}: tooBig$"):
        await client.walk([OUTLET_STATE], 32)
    relay.alter = rewrite(lambda m: replace(m, error_status=2, error_index=1))  # noSuchName, as SNMPv1 says it
    assert await client.get([SYS_OBJECT_ID, OUTLET_STATE + ".1"]) == dict.fromkeys([SYS_OBJECT_ID, OUTLET_STATE + ".1"])
    assert await client.walk([OUTLET_STATE], 32) == {OUTLET_STATE: {}}
    relay.alter = rewrite(lambda m: replace(m, error_status=42))
    with pytest.raises(DeviceProtocolError, match=r": 42$"):
        await client.get([SYS_OBJECT_ID])
    relay.alter = rewrite(lambda m: replace(m, varbinds=()))
    with pytest.raises(DeviceProtocolError, match=r"GETBULK .*: Empty SNMP response message$"):
        await client.walk([OUTLET_STATE], 32)
    with pytest.raises(DeviceProtocolError, match=r"the reply has 0 varbinds for 1 OIDs asked$"):
        await client.get([SYS_OBJECT_ID])


async def test_fuzzed_replies_end_in_a_value_or_a_clean_error(driver: SnmpDriver, relay: ReplyRelay) -> None:
    chance = random.Random(20261122)

    def mutate(data: bytes) -> list[tuple[float, bytes, bool]]:
        if chance.random() < 0.3:
            return [(0.0, data, False)]
        mutated = bytearray(data)
        at = chance.randrange(len(mutated))
        kind = chance.choice(["flip", "truncate", "insert", "delete", "byte"])
        if kind == "flip":
            mutated[at] ^= 1 << chance.randrange(8)
        elif kind == "truncate":
            del mutated[at:]
        elif kind == "insert":
            mutated.insert(at, chance.randrange(256))
        elif kind == "delete":
            del mutated[at]
        else:
            mutated[at] = chance.randrange(256)
        return [(0.0, bytes(mutated), False)]

    relay.alter = mutate
    client = client_for(driver, relay, timeout=0.1)
    outcomes: dict[str, int] = {}
    for round_number in range(150):
        try:
            if round_number % 2:
                await client.walk([OUTLET_STATE, OUTLET_STATE.replace(".5", ".3")], 32)
            else:
                await client.get([SYS_OBJECT_ID, OUTLET_STATE + ".1"])
            outcome = "value"
        except (DeviceProtocolError, DeviceTimeoutError) as exc:
            outcome, message = type(exc).__name__, str(exc)
        else:
            message = client.endpoint
        assert message.startswith(client.endpoint)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("DeviceProtocolError", 0) > 30, outcomes
    assert outcomes.get("value", 0) > 30, outcomes
    assert driver.pool.v2c.waiting == 0
    relay.alter = None
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}


async def test_lean_codec_false_reads_through_pysnmp(driver: SnmpDriver, relay: ReplyRelay) -> None:
    client = client_for(driver, relay, lean=False)
    assert not client.lean
    assert await client.get([SYS_OBJECT_ID]) == {SYS_OBJECT_ID: APC_RPDU2}
    assert driver.pool.v2c.receive_buffer() is None  # the lean socket was never opened
