"""Interop with software nobody here wrote: ser2net (RFC 2217, telnet, raw TCP), pyserial's RFC 2217 client, conman."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import termios
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import serial
from rackd_console.rfc2217 import Rfc2217Stream
from rackd_console.tcp import SocketStream
from rackd_console.urls import open_transport
from rackd_sim.console_server.harness import PtyClient, read_until, wait_for
from rackd_sim.console_server.machine import LoginState
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.errors import UnsupportedError
from rackd.testing.broker import free_port, wait_for_port

pytestmark = pytest.mark.interop


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_ports(count: int) -> list[int]:
    """Distinct free ports: every socket is held open while asking (separate free_port() calls may agree)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class PtyPair:
    """Two linked ptys from socat: ser2net opens `device`; the test plays the serial device on `far`."""

    device: Path
    far: Path
    process: subprocess.Popen[bytes]


def pty_pair(directory: Path, name: str) -> PtyPair:
    device, far = directory / f"{name}-dev", directory / f"{name}-far"
    process = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={device}", f"pty,raw,echo=0,link={far}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return PtyPair(device, far, process)


@dataclass
class Ser2net:
    rfc2217_port: int
    raw_port: int
    telnet_port: int
    rfc2217_pty: PtyPair
    raw_pty: PtyPair
    telnet_pty: PtyPair


@pytest.fixture
def ser2net(tmp_path: Path) -> Iterator[Ser2net]:
    if shutil.which("ser2net") is None or shutil.which("socat") is None:
        pytest.skip("needs ser2net and socat")
    pairs = [pty_pair(tmp_path, "a"), pty_pair(tmp_path, "b"), pty_pair(tmp_path, "c")]
    processes = [pair.process for pair in pairs]
    try:
        for pair in pairs:
            deadline = 100
            while not (pair.device.exists() and pair.far.exists()):  # socat creates the links at start
                deadline -= 1
                assert deadline > 0, "socat did not create its ptys"
                assert pair.process.poll() is None, "socat exited"
                subprocess.run(["sleep", "0.05"], check=True)  # waiting on another process's files, bounded
        rfc_port, raw_port, telnet_port = free_ports(3)
        config = tmp_path / "ser2net.yaml"
        config.write_text(
            textwrap.dedent(
                f"""
                connection: &rfc
                  accepter: telnet(rfc2217),tcp,127.0.0.1,{rfc_port}
                  connector: serialdev,{pairs[0].device},115200n81,local
                  enable: on
                  options:
                    kickolduser: true
                connection: &raw
                  accepter: tcp,127.0.0.1,{raw_port}
                  connector: serialdev,{pairs[1].device},115200n81,local
                  enable: on
                connection: &telnet
                  accepter: telnet,tcp,127.0.0.1,{telnet_port}
                  connector: serialdev,{pairs[2].device},115200n81,local
                  enable: on
                """
            )
        )
        server = subprocess.Popen(
            ["ser2net", "-n", "-d", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(server)
        for port in (rfc_port, raw_port, telnet_port):
            wait_for_port(port)
        yield Ser2net(rfc_port, raw_port, telnet_port, pairs[0], pairs[1], pairs[2])
    finally:
        for process in reversed(processes):
            _stop(process)


class FarEnd:
    """The serial device behind ser2net: the other pty of the socat pair, read without blocking the loop."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.received = bytearray()
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.received += os.read(self.fd, 4096)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


async def pump(stream: SocketStream, into: bytearray) -> None:
    while chunk := await stream.read():
        into += chunk


async def test_rackd_through_ser2net_rfc2217_sets_baud_sends_break_and_moves_bytes(ser2net: Ser2net) -> None:
    far = FarEnd(ser2net.rfc2217_pty.far)
    stream = await open_transport(f"rfc2217://127.0.0.1:{ser2net.rfc2217_port}?baud=115200").open_console()
    assert isinstance(stream, Rfc2217Stream)
    received = bytearray()
    reader = asyncio.create_task(pump(stream, received))
    try:
        await wait_for(lambda: stream.baudrate == 115200, what="ser2net confirmed 115200 baud")
        far.write(b"[    1.0] console on ttyS0\r\n\xff\x00binary\r\n")
        await wait_for(lambda: received.endswith(b"\xff\x00binary\r\n"), what="device output through ser2net")
        assert bytes(received) == b"[    1.0] console on ttyS0\r\n\xff\x00binary\r\n"  # IAC unescaped, nothing leaked
        await stream.write(b"root\r\xff")
        await wait_for(lambda: far.received == b"root\r\xff", what="input reached the device")

        await stream.set_baudrate(9600)
        await wait_for(lambda: stream.baudrate == 9600, what="ser2net confirmed 9600 baud")
        with Path(ser2net.rfc2217_pty.device).open("rb") as tty_file:
            attributes = termios.tcgetattr(tty_file.fileno())
        assert attributes[4] == termios.B9600  # the pty ser2net drives really runs at 9600 now

        await stream.send_break()
        await wait_for(lambda: len(stream.control_answers) == 2, what="ser2net answered break on and off")
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await stream.close()
        far.close()


async def knock(stream: SocketStream, far: FarEnd) -> None:
    """ser2net opens the device only once a client is connected: send CRs until the device side sees one."""
    async with asyncio.timeout(10):
        while not far.received:
            await stream.write(b"\r")
            with contextlib.suppress(TimeoutError):
                await wait_for(lambda: bool(far.received), within=0.2, what="device open")
    far.received.clear()


async def test_rackd_through_ser2net_raw_tcp_moves_bytes_and_refuses_break(ser2net: Ser2net) -> None:
    far = FarEnd(ser2net.raw_pty.far)
    stream = await open_transport(f"tcp://127.0.0.1:{ser2net.raw_port}").open_console()
    assert isinstance(stream, SocketStream)
    try:
        await knock(stream, far)
        far.write(b"login: ")
        async with asyncio.timeout(10):
            assert await read_until(stream, b"login: ") == b"login: "
        await stream.write(b"root\r")
        await wait_for(lambda: far.received == b"root\r", what="input reached the device")
        with pytest.raises(UnsupportedError):
            await stream.send_break()
    finally:
        await stream.close()
        far.close()


async def test_rackd_through_ser2net_telnet_keeps_iac_bytes_intact_both_ways(ser2net: Ser2net) -> None:
    far = FarEnd(ser2net.telnet_pty.far)
    stream = await open_transport(f"telnet://127.0.0.1:{ser2net.telnet_port}").open_console()
    assert isinstance(stream, SocketStream)
    try:
        await knock(stream, far)
        far.write(b"\xff\xfb\x01 data that looks like IAC WILL ECHO\r\n")
        async with asyncio.timeout(10):
            got = await read_until(stream, b"ECHO\r\n")
        assert got == b"\xff\xfb\x01 data that looks like IAC WILL ECHO\r\n"
        await stream.write(b"\xff\xfd\x03typed")
        await wait_for(lambda: far.received == b"\xff\xfd\x03typed", what="IAC bytes reached the device as data")
        await stream.send_break()  # IAC BRK: ser2net turns it into a break on the tty (a pty cannot show it)
        await stream.write(b"after")
        await wait_for(lambda: far.received.endswith(b"after"), what="stream still in sync after BRK")
    finally:
        await stream.close()
        far.close()


@pytest_asyncio.fixture
async def booted() -> AsyncIterator[ConsoleServerSim]:
    sim = ConsoleServerSim(["node1"], baud=0, boot_speed=0)
    await sim.start()
    sim["node1"].console.power_on()
    await wait_for(lambda: sim["node1"].console.state is LoginState.LOGIN, what="booted")
    yield sim
    await sim.close()


def pyserial_session(port: int) -> tuple[bytes, bytes]:
    """pyserial's own (thread-based) RFC 2217 client, as users script consoles today; no ign_set_control needed."""
    port_url = f"rfc2217://127.0.0.1:{port}"
    with serial.serial_for_url(port_url, baudrate=115200, timeout=5) as client:
        client.write(b"\r")
        prompt = client.read_until(b"login: ")
        client.baudrate = 9600
        client.send_break(0.1)
        client.write(b"root\r")
        password = client.read_until(b"Password: ")
    return prompt, password


async def test_pyserial_rfc2217_client_attaches_to_the_simulator(booted: ConsoleServerSim) -> None:
    endpoint = booted["node1"]
    prompt, password = await asyncio.to_thread(pyserial_session, endpoint.ports["rfc2217"])
    assert prompt.endswith(b"node1 login: ")
    assert password.endswith(b"Password: ")
    (record,) = endpoint.records_of("rfc2217")
    assert record.breaks == 1
    assert record.baud_requests[-1] == 9600
    assert record.received.endswith(b"root\r")


async def test_conman_attaches_to_the_simulator_and_logs_its_console(booted: ConsoleServerSim, tmp_path: Path) -> None:
    if shutil.which("conmand") is None:
        pytest.skip("needs conman")
    endpoint = booted["node1"]
    port = free_port()
    config = tmp_path / "conman.conf"
    config.write_text(
        textwrap.dedent(
            f"""
            server keepalive=on
            server loopback=on
            server port={port}
            server logdir="{tmp_path}"
            server pidfile="{tmp_path}/conmand.pid"
            global logopts="nosanitize,notimestamp"
            console name="node1" dev="127.0.0.1:{endpoint.ports["telnet"]}" log="node1.log"
            """
        )
    )
    daemon = subprocess.Popen(
        ["conmand", "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await wait_for(lambda: bool(endpoint.records_of("telnet")), what="conmand connected to the console")
        endpoint.console.println("hello conman")
        endpoint.console.inject_xid(48)
        log = tmp_path / "node1.log"
        await wait_for(
            lambda: log.exists() and b"NVRM: Xid (PCI:0000:3b:00): 48" in log.read_bytes(), what="conman logged"
        )
        assert b"hello conman\r\n" in log.read_bytes()
        # conman's own client (it insists on a terminal) attached read-only through conmand sees the console
        client = PtyClient(["conman", "-d", f"127.0.0.1:{port}", "-m", "node1"])
        try:
            await client.start()
            await client.expect(b"Connection to console [node1] opened")
            endpoint.console.println("seen by the conman client")
            await client.expect(b"seen by the conman client")
        finally:
            await client.cleanup()
    finally:
        _stop(daemon)
