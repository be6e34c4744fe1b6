"""ssh:// against an asyncssh server (Secret password, host key checked, RFC 4335 BREAK); serial:// on a pty."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
import pytest_asyncio
from rackd_console.serial_port import SerialStream
from rackd_console.urls import open_transport
from rackd_sim.console_server.harness import read_until, wait_for

from rackd.errors import AuthError
from rackd.secrets import Secret, SecretRef

PASSWORD = "s3cret-console"


@dataclass
class SshConsoleServer:
    port: int
    known_hosts: Path
    breaks: list[int] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)


class _PasswordServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "console" and password == PASSWORD


@pytest_asyncio.fixture
async def ssh_server(tmp_path: Path) -> AsyncIterator[SshConsoleServer]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    state = SshConsoleServer(0, tmp_path / "known_hosts")

    async def console(process: asyncssh.SSHServerProcess[bytes]) -> None:
        process.stdout.write(b"Opengear port 7: gpu-01\r\n")
        try:
            while True:
                try:
                    data = await process.stdin.read(1024)
                except asyncssh.BreakReceived as exc:
                    state.breaks.append(exc.msec)
                    continue
                if not data:
                    break
                state.received += data
                process.stdout.write(data)  # the console echoes
        finally:
            process.exit(0)

    server = await asyncssh.create_server(
        _PasswordServer, "127.0.0.1", 0, server_host_keys=[key], process_factory=console, encoding=None
    )
    state.port = server.sockets[0].getsockname()[1]
    public = key.export_public_key().decode().strip()
    state.known_hosts.write_text(f"[127.0.0.1]:{state.port} {public}\n")
    yield state
    server.close()
    await server.wait_closed()


async def test_ssh_console_logs_in_with_a_secret_moves_bytes_and_sends_break(
    ssh_server: SshConsoleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_PW", PASSWORD)
    transport = open_transport(
        f"ssh://console@127.0.0.1:{ssh_server.port}",
        password=Secret(ref=SecretRef(env="CONSOLE_PW")),
        known_hosts=ssh_server.known_hosts,
    )
    stream = await transport.open_console()
    try:
        await read_until(stream, b"gpu-01\r\n")
        await stream.write(b"\xff\x00root\r")
        await read_until(stream, b"root\r")
        await stream.send_break()
        await wait_for(lambda: ssh_server.breaks == [250], what="break received by the SSH server")
        assert bytes(ssh_server.received) == b"\xff\x00root\r"
    finally:
        await stream.close()


async def test_ssh_console_refuses_a_bad_password_and_an_unknown_host_key(
    ssh_server: SshConsoleServer, tmp_path: Path
) -> None:
    url = f"ssh://console@127.0.0.1:{ssh_server.port}"
    with pytest.raises(AuthError, match="login refused"):
        await open_transport(url, password=Secret(inline="wrong"), known_hosts=ssh_server.known_hosts).open_console()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    stranger = tmp_path / "other_known_hosts"
    stranger.write_text(f"[127.0.0.1]:{ssh_server.port} {other}\n")
    with pytest.raises(AuthError, match="host key not trusted"):
        await open_transport(url, password=Secret(inline=PASSWORD), known_hosts=stranger).open_console()


@pytest_asyncio.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    if shutil.which("socat") is None:
        pytest.skip("needs socat")
    device, far = tmp_path / "ttyS0", tmp_path / "far"
    process = await asyncio.create_subprocess_exec(
        "socat", f"pty,raw,echo=0,link={device}", f"pty,raw,echo=0,link={far}",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await wait_for(lambda: device.exists() and far.exists(), what="socat ptys")
        yield device, far
    finally:
        process.terminate()
        await process.wait()


async def test_serial_port_reads_writes_changes_baud_and_sends_break(pty_pair: tuple[Path, Path]) -> None:
    device, far = pty_pair
    stream = await open_transport(f"serial://{device}?baud=115200").open_console()
    assert isinstance(stream, SerialStream)
    far_fd = os.open(far, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(far_fd, b"U-Boot 2024.01\r\n\xff")
        assert await read_until(stream, b"\xff") == b"U-Boot 2024.01\r\n\xff"
        await stream.write(b"boot\r")
        assert await asyncio.to_thread(os.read, far_fd, 64) == b"boot\r"
        await stream.set_baudrate(9600)
        with device.open("rb") as tty_file:
            assert termios.tcgetattr(tty_file.fileno())[4] == termios.B9600
        await stream.send_break()  # a pty cannot show a break; a real UART gets 250 ms of it
    finally:
        os.close(far_fd)
        await stream.close()
