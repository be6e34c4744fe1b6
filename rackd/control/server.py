"""The control-socket server: identifies each peer, checks its role per operation, dispatches to a handler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from rackd.control.peers import Peer, RoleMap, peer_of
from rackd.control.protocol import MAX_LINE, ControlRequest, ProtocolError, Role, read_message, write_message

log = structlog.get_logger(__name__)

# A handler gets the validated request, the peer, and the stream; it writes its own reply (see reply()).
Handler = Callable[[ControlRequest, Peer, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
# Called for every denial, so the audit log records who tried what.
DenialSink = Callable[[Peer, str, str], None]


@dataclass(frozen=True, slots=True)
class Operation:
    """A registered operation: the role it needs and its handler."""

    role: Role
    handler: Handler


async def reply(writer: asyncio.StreamWriter, ok: bool, **fields: Any) -> None:
    """The first response line of an operation."""
    await write_message(writer, {"v": 1, "ok": ok, **fields})


class ControlServer:
    """Serves the unix socket; mode 0660 so access is also gated by the file's group."""

    def __init__(self, path: Path, roles: RoleMap, on_denied: DenialSink | None = None) -> None:
        """Nothing listens until `start()`."""
        self.path = path
        self.roles = roles
        self._ops: dict[str, Operation] = {}
        self._server: asyncio.Server | None = None
        self.on_denied = on_denied
        self._clients: set[asyncio.Task[None]] = set()
        self.register("ping", Role.VIEWER, self._ping)

    def register(self, op: str, role: Role, handler: Handler) -> None:
        """Add an operation; `role` is the least role allowed to call it."""
        self._ops[op] = Operation(role, handler)

    async def start(self) -> None:
        """Listen (replacing a stale socket file left by a crash)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        self.path.chmod(0o660)
        log.info("control_socket_listening", path=str(self.path))

    async def close(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("socket"), self.roles)
        bound = log.bind(peer=peer.describe(), role=peer.role.name.lower())
        try:
            async with asyncio.timeout(10):  # a client that connects and says nothing is dropped
                message = await read_message(reader)
            request = ControlRequest.model_validate(message)
        except (ProtocolError, ValidationError, TimeoutError) as exc:
            error = str(exc) if not isinstance(exc, ValidationError) else _validation_text(exc)
            bound.info("control_bad_request", error=error)
            await reply(writer, ok=False, error=f"bad request: {error}")
            return
        operation = self._ops.get(request.op)
        if operation is None:
            await reply(
                writer, ok=False, error=f"unknown operation {request.op!r} (known: {', '.join(sorted(self._ops))})"
            )
            return
        if peer.role < operation.role:
            reason = (
                f"{request.op} needs role {operation.role.name.lower()}; {peer.describe()} has {peer.role.name.lower()}"
            )
            bound.warning("control_denied", op=request.op, needed=operation.role.name.lower())
            if self.on_denied is not None:
                self.on_denied(peer, request.op, reason)
            await reply(writer, ok=False, error=f"denied: {reason}", denied=True)
            return
        await operation.handler(request, peer, reader, writer)

    async def _ping(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        del request, reader
        await reply(writer, ok=True, user=peer.user, role=peer.role.name.lower())


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
