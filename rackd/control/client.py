"""Client side of the control socket, used by the operator commands of the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rackd.control.protocol import MAX_LINE, ProtocolError, read_message, write_message
from rackd.errors import RackdError


class ControlError(RackdError):
    """The daemon refused or failed an operation (the message is the daemon's)."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        """Keep whether this was an authorization denial."""
        super().__init__(message)
        self.denied = denied


async def open_operation(
    path: Path, op: str, **arguments: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """Connect, send the request, read the first reply; ControlError when it is not ok."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except FileNotFoundError:
        raise ControlError(f"no control socket at {path}: is rackd running?") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: ask for membership of the socket's group") from None
    except ConnectionRefusedError:
        raise ControlError(f"{path}: connection refused (stale socket? is rackd running?)") from None
    await write_message(writer, {"v": 1, "op": op, **arguments})
    try:
        response = await read_message(reader)
    except ProtocolError as exc:
        writer.close()
        raise ControlError(f"bad reply from rackd: {exc}") from None
    if not response.get("ok"):
        writer.close()
        raise ControlError(str(response.get("error", "operation failed")), denied=bool(response.get("denied")))
    return reader, writer, response


async def call(path: Path, op: str, **arguments: Any) -> dict[str, Any]:
    """A one-shot operation: its reply line."""
    _, writer, response = await open_operation(path, op, **arguments)
    writer.close()
    return response
