"""The control socket with real peers: root, and an unprivileged user switched to with setpriv."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rackd.control.client import ControlError, call
from rackd.control.peers import Peer, RoleMap
from rackd.control.protocol import ControlRequest, Role
from rackd.control.server import ControlServer, reply
from rackd.testing.users import AS_NOBODY, nobody_env, why_not_as_nobody

pytestmark = pytest.mark.skipif(why_not_as_nobody() is not None, reason=str(why_not_as_nobody()))

NOBODY_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from rackd.control.client import ControlError, call
    async def main():
        try:
            print(json.dumps(await call(sys.argv[1], sys.argv[2])))
        except ControlError as exc:
            print(json.dumps({"error": str(exc), "denied": exc.denied}))
    asyncio.run(main())
    """
)


async def as_nobody(path: Path, op: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        *AS_NOBODY,
        sys.executable,
        "-c",
        NOBODY_CLIENT,
        str(path),
        op,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=nobody_env(),
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result: dict[str, object] = json.loads(out)
    return result


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory another user can traverse (pytest's tmp_path parents are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="rackd-ctl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(socket_dir: Path) -> AsyncIterator[tuple[ControlServer, list[tuple[str, str]]]]:
    denials: list[tuple[str, str]] = []
    srv = ControlServer(
        socket_dir / "control.sock",
        RoleMap(viewers=frozenset({"@nogroup"})),
        on_denied=lambda peer, op, reason: denials.append((peer.user, op)),
    )

    async def power(
        request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reply(writer, ok=True, acted_for=peer.user)

    srv.register("power.cycle", Role.OPERATOR, power)
    await srv.start()
    os.chown(srv.path, 0, 65534)  # the socket's group admits nogroup, as the unit's socket group would
    yield srv, denials
    await srv.close()


async def test_root_is_admin(server: tuple[ControlServer, list[tuple[str, str]]]) -> None:
    srv, _ = server
    assert (await call(srv.path, "ping"))["role"] == "admin"
    assert (await call(srv.path, "power.cycle"))["acted_for"] == "root"


async def test_viewer_may_look_but_is_denied_power_and_the_denial_is_recorded(
    server: tuple[ControlServer, list[tuple[str, str]]],
) -> None:
    srv, denials = server
    ping = await as_nobody(srv.path, "ping")
    assert ping["role"] == "viewer"
    assert ping["user"] == "nobody"
    denied = await as_nobody(srv.path, "power.cycle")
    assert denied["denied"] is True
    assert "power.cycle needs role operator" in str(denied["error"])
    assert denials == [("nobody", "power.cycle")]


async def test_user_without_a_role_is_refused(socket_dir: Path) -> None:
    srv = ControlServer(socket_dir / "control.sock", RoleMap())
    await srv.start()
    os.chown(srv.path, 0, 65534)
    try:
        result = await as_nobody(srv.path, "ping")
        assert result["denied"] is True
        assert "has none" in str(result["error"])
    finally:
        await srv.close()


async def test_socket_mode_and_bad_requests(server: tuple[ControlServer, list[tuple[str, str]]]) -> None:
    srv, _ = server
    assert srv.path.stat().st_mode & 0o777 == 0o660
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    writer.write(b"\xff\xfe not json\n")
    reply_line = json.loads(await reader.readline())
    assert reply_line["ok"] is False
    assert "not JSON" in reply_line["error"]
    writer.close()
    with pytest.raises(ControlError, match="unknown operation 'nope'"):
        await call(srv.path, "nope")
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    writer.write(b"x" * 70_000 + b"\n")
    assert "longer than" in json.loads(await reader.readline())["error"]
    writer.close()
