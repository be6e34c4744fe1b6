"""Control-socket framing: one JSON line each way to open an operation; streaming ops then use their own bytes."""

from __future__ import annotations

import asyncio
import json
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_LINE = 64 * 1024  # a request line longer than this is refused, never buffered without bound


class Role(IntEnum):
    """What a peer may do; each role includes the ones below it."""

    NONE = 0
    VIEWER = 1  # status, sensors, events, console watch
    OPERATOR = 2  # power, outlets, console write
    ADMIN = 3  # protected targets, bulk actions over the threshold


class ControlRequest(BaseModel):
    """The first line a client sends: the operation and its arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)

    v: int = Field(1, ge=1, le=1)
    op: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)*$")


class ProtocolError(Exception):
    """The peer sent something that is not a valid control message."""


def encode(message: dict[str, Any]) -> bytes:
    """One JSON line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    """Read one JSON-object line; ProtocolError says what was wrong with it."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ProtocolError("connection closed before a message") from None
        raise ProtocolError("message not terminated by a newline") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"message longer than {MAX_LINE} bytes") from None
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


async def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Send one JSON line and drain."""
    writer.write(encode(message))
    await writer.drain()
