"""Transports against the simulator: bytes unchanged, telnet commands never leak, BREAK carried or refused."""

from __future__ import annotations

import pytest
from rackd_console.rfc2217 import Rfc2217Stream
from rackd_console.telnet_codec import Subnegotiation, TelnetDecoder
from rackd_console.urls import check_url, open_transport
from rackd_sim.console_server.harness import read_until, wait_for
from rackd_sim.console_server.server import ConsoleEndpoint, ConsoleServerSim

from rackd.errors import DeviceUnreachableError, UnsupportedError


@pytest.mark.parametrize("scheme", ["tcp", "telnet", "rfc2217"])
async def test_output_arrives_unchanged_and_input_reaches_the_console(sim: ConsoleServerSim, scheme: str) -> None:
    endpoint = sim["node1"]
    port = endpoint.ports["raw" if scheme == "tcp" else scheme]
    stream = await open_transport(f"{scheme}://127.0.0.1:{port}").open_console()
    try:
        endpoint.console.power_on()
        got = await read_until(stream, b"node1 login: ")
        endpoint.console.inject_garbage(4096)  # every byte value, 0xFF (IAC) included
        await endpoint.console.drained()
        (record,) = endpoint.records_of("raw" if scheme == "tcp" else scheme)
        while len(got) < len(record.sent):
            got += await stream.read()
        assert got == bytes(record.sent)  # nothing of the telnet protocol leaked in, nothing lost
        await stream.write(b"root\r")
        await read_until(stream, b"Password: ")
        assert record.received.endswith(b"root\r")
    finally:
        await stream.close()


async def break_is_recorded(endpoint: ConsoleEndpoint, scheme: str) -> None:
    stream = await open_transport(f"{scheme}://127.0.0.1:{endpoint.ports[scheme]}").open_console()
    try:
        await stream.send_break()
        record = endpoint.records_of(scheme)[-1]
        await wait_for(lambda: record.breaks == 1, what=f"{scheme} break")
    finally:
        await stream.close()


async def test_break_over_telnet_and_rfc2217_and_refused_on_raw(sim: ConsoleServerSim) -> None:
    endpoint = sim["node1"]
    await break_is_recorded(endpoint, "telnet")
    await break_is_recorded(endpoint, "rfc2217")
    raw = await open_transport(f"tcp://127.0.0.1:{endpoint.ports['raw']}").open_console()
    with pytest.raises(UnsupportedError, match="cannot carry a BREAK"):
        await raw.send_break()
    await raw.close()


async def test_rfc2217_sets_baud_at_connect_and_on_request(sim: ConsoleServerSim) -> None:
    endpoint = sim["node1"]
    stream = await open_transport(f"rfc2217://127.0.0.1:{endpoint.ports['rfc2217']}?baud=9600").open_console()
    assert isinstance(stream, Rfc2217Stream)
    try:
        endpoint.console.power_on()
        await read_until(stream, b"login: ")  # reading processes the server's answers
        assert stream.baudrate == 9600
        await stream.set_baudrate(115200)
        endpoint.console.println("more")
        await read_until(stream, b"more")
        await wait_for(lambda: stream.baudrate == 115200, what="baud confirmed")
        assert endpoint.records_of("rfc2217")[-1].baud_requests == [9600, 115200]
    finally:
        await stream.close()


async def test_unreachable_console_names_where() -> None:
    with pytest.raises(DeviceUnreachableError, match=r"127\.0\.0\.1:1: connection refused"):
        await open_transport("tcp://127.0.0.1:1").open_console()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://x:1", "scheme"),
        ("tcp://host", "host and port"),
        ("ssh://host:22", "needs a user"),
        ("serial://dev/ttyS0", "device path"),
        ("rfc2217://h:1?baud=fast", "baud must be a number"),
        ("ssh://u:pw@h:22", "password"),
    ],
)
def test_bad_urls_are_explained(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_url(url)


def test_telnet_decoder_handles_sequences_split_across_chunks() -> None:
    decoder = TelnetDecoder()
    stream = b"a\xff\xffb\xff\xfb\x01c\xff\xfa\x2c\x65\xff\xff\x00\xff\xf0d\xff\xf3e"
    data = bytearray()
    signals = []
    for byte in stream:  # worst case: one byte per chunk
        out, sig = decoder.feed(bytes((byte,)))
        data += out
        signals += sig
    assert bytes(data) == b"a\xffbcde"
    assert [type(s).__name__ for s in signals] == ["Negotiation", "Subnegotiation", "Command"]
    subneg = signals[1]
    assert isinstance(subneg, Subnegotiation)
    assert subneg.payload == b"\x2c\x65\xff\x00"
