"""Attach through the control socket with `rackd console` under real ptys: watchers, one writer, --force, escapes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from rackd_sim.console_server.harness import PtyClient, wait_for
from rackd_sim.console_server.machine import LoginState
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.config import load_config
from rackd.console.logformat import log_files, markers
from rackd.console.service import ConsoleService
from rackd.control.peers import RoleMap
from rackd.control.server import ControlServer
from rackd.drivers.registry import DriverRegistry
from rackd.runtime.clock import SystemClock
from rackd.testing.recording_bus import RecordingPublisher
from rackd.testing.users import AS_NOBODY, nobody_env, why_not_as_nobody


@dataclass
class Daemonish:
    """The console service and a control socket, in this process, as the daemon wires them."""

    service: ConsoleService
    control: ControlServer
    sim: ConsoleServerSim
    log_dir: Path

    def client(self, *extra: str) -> PtyClient:
        return PtyClient(
            [sys.executable, "-m", "rackd", "console", "gpu-01", "--socket", str(self.control.path), *extra]
        )


@pytest_asyncio.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemonish]:
    socket_dir = Path(tempfile.mkdtemp(prefix="rackd-console-"))
    socket_dir.chmod(0o755)  # another user must reach the socket (pytest's tmp_path is private to root)
    sim = ConsoleServerSim(["node1"], baud=0, boot_speed=0)
    await sim.start()
    config_path = tmp_path / "rackd.toml"
    config_path.write_text(
        textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            state_dir = "{tmp_path}/state"
            console_log_dir = "{tmp_path}/console"
            [[node]]
            id = "gpu-01"
            rack = "r1"
            console = {{ url = "telnet://127.0.0.1:{sim["node1"].ports["telnet"]}" }}
            """
        )
    )
    config = load_config(config_path, DriverRegistry())
    service = ConsoleService(config, DriverRegistry(), RecordingPublisher(), SystemClock())
    control = ControlServer(socket_dir / "control.sock", RoleMap(viewers=frozenset({"@nogroup"})))
    service.register_operations(control)
    await control.start()
    os.chown(control.path, 0, 65534)  # the socket's group admits nogroup, as the unit's socket group would
    task = asyncio.create_task(service.run())
    session = service.sessions["gpu-01"]
    await wait_for(lambda: session.state == "connected", what="console connected")
    sim["node1"].console.power_on()
    await wait_for(lambda: sim["node1"].console.state is LoginState.LOGIN, what="booted")
    yield Daemonish(service, control, sim, tmp_path / "console")
    await control.close()
    await service.aclose()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sim.close()
    shutil.rmtree(socket_dir, ignore_errors=True)


async def test_two_watchers_and_a_writer_share_output_force_hands_over_and_escape_detaches(daemon: Daemonish) -> None:
    writer_a, watcher_b, watcher_c = daemon.client(), daemon.client("--watch"), daemon.client("--watch")
    clients = [writer_a, watcher_b, watcher_c]
    writer_d = daemon.client("--force")
    try:
        for client in clients:
            await client.start()
        await writer_a.expect(b"attached to gpu-01 (write)")
        await watcher_b.expect(b"attached to gpu-01 (watch)")
        await watcher_c.expect(b"attached to gpu-01 (watch)")
        for client in clients:
            await client.expect(b"node1 login: ")  # replayed from the ring buffer on attach

        writer_a.type(b"root\r")
        await writer_a.expect(b"Password: ")
        writer_a.type(b"rackd\r")  # not echoed by the console, never logged by rackd
        for client in clients:
            await client.expect(b"root@node1:~# ")
        writer_a.type(b"echo hello-from-a\r")
        for client in clients:
            await client.expect(b"echo hello-from-a\r\nhello-from-a\r\n")

        watcher_b.type(b"echo from-b\r")
        await watcher_b.expect(b"read-only (writing: root")
        assert b"from-b" not in daemon.sim["node1"].records_of("telnet")[0].received

        await writer_d.start()
        await writer_d.expect(b"attached to gpu-01 (write)")
        await writer_a.expect(b"write access taken over by root")
        writer_a.type(b"echo still-a\r")
        await writer_a.expect(b"read-only")
        writer_d.type(b"echo from-d\r")
        for client in (*clients, writer_d):
            await client.expect(b"from-d\r\n")

        watcher_c.type(b"&W")
        await watcher_c.expect(b"attached:")
        await watcher_c.expect(b"writing since", within=5)

        for client in (writer_a, watcher_b, watcher_c, writer_d):
            client.type(b"&.")
            assert await client.exit_code() == 0
            await client.expect(b"detached")
    finally:
        for client in (*clients, writer_d):
            await client.cleanup()

    session = daemon.service.sessions["gpu-01"]
    await wait_for(lambda: not session.attachments, what="all detached")
    log_bytes = [p.read_bytes() for p in log_files(daemon.log_dir / "gpu-01.log")]
    notes = markers(log_bytes)
    assert sum(n.startswith("attach: root") for n in notes) == 4
    assert sum(n.startswith("detach: root") for n in notes) == 4
    assert any(n.startswith("write access: root") and "took over" in n for n in notes)
    assert b"rackd\r" not in b"".join(log_bytes)  # the password typed by the operator is nowhere in the log


async def test_scripts_tail_send_and_break(daemon: Daemonish) -> None:
    path = str(daemon.control.path)
    env = {**os.environ}

    async def rackd(*args: str) -> tuple[int, bytes, bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rackd",
            "console",
            "gpu-01",
            "--socket",
            path,
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out, err

    code, out, _ = await rackd("--tail", "1")
    assert (code, out) == (0, b"node1 login: ")
    code, _, err = await rackd("--send", "root")
    assert code == 0, err
    session = daemon.service.sessions["gpu-01"]
    await wait_for(lambda: b"Password: " in session.ring.contents(), what="password prompt")
    code, out, _ = await rackd("--since", "1h")
    assert out.endswith(b"node1 login: root\r\nPassword: ")
    code, _, err = await rackd("--break")
    assert code == 0, err
    await wait_for(lambda: daemon.sim["node1"].records_of("telnet")[0].breaks == 1, what="BREAK received")
    code, _, err = await rackd("--send", "h", "--no-enter")  # BREAK then a key: the kernel's Magic SysRq
    assert code == 0, err
    await wait_for(lambda: b"sysrq: HELP" in session.ring.contents(), what="SysRq help after the BREAK")
    notes = markers([p.read_bytes() for p in log_files(daemon.log_dir / "gpu-01.log")])
    assert any(n.startswith("input from root") and "5 bytes" in n for n in notes)  # how much, never what
    assert "BREAK sent" in notes


@pytest.mark.skipif(why_not_as_nobody() is not None, reason=str(why_not_as_nobody()))
async def test_a_viewer_may_watch_and_tail_but_not_write(daemon: Daemonish) -> None:
    env = nobody_env()
    socket = str(daemon.control.path)
    base = [*AS_NOBODY, sys.executable, "-m", "rackd", "console", "gpu-01", "--socket", socket]

    async def run(*args: str) -> tuple[int, bytes, bytes]:
        process = await asyncio.create_subprocess_exec(
            *base, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out, err

    assert await run("--tail", "1") == (0, b"node1 login: ", b"")
    code, _, err = await run("--send", "root")
    assert code == 1
    assert b"console.send needs role operator" in err
    viewer = PtyClient(base)
    try:
        await viewer.start()
        await viewer.expect(b"attached to gpu-01 (watch)")
        await viewer.expect(b"read-only: writing needs role operator")
        viewer.type(b"root\r&F")
        await viewer.expect(b"read-only (writing: nobody)")
        await viewer.expect(b"writing needs role operator; you have viewer")
        viewer.type(b"&.")
        assert await viewer.exit_code() == 0
    finally:
        await viewer.cleanup()
    assert daemon.sim["node1"].console.state is LoginState.LOGIN  # nothing the viewer typed reached the console
