"""Framing of an attached console on the control socket: one type byte, a 4-byte big-endian length, the payload."""

from __future__ import annotations

import asyncio
import struct
from enum import Enum

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">cI")


class Kind(bytes, Enum):
    """Frame types; the first group flows daemon → client, the second client → daemon."""

    OUTPUT = b"o"  # console output
    NOTICE = b"n"  # a message for the operator (taken over, who is attached, errors)
    END = b"e"  # the daemon ends the attachment (payload: why)
    INPUT = b"i"  # keystrokes for the console
    BREAK = b"b"  # send a serial BREAK
    REPLAY = b"r"  # replay recent output (payload: number of lines, ASCII)
    WHO = b"w"  # who is attached
    TAKE = b"t"  # take over writing
    DETACH = b"d"  # the client leaves


class FrameError(Exception):
    """The peer sent a frame that cannot be understood."""


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    """One frame."""
    return _HEADER.pack(kind.value, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[Kind, bytes]:
    """The next frame; IncompleteReadError at end of stream."""
    header = await reader.readexactly(_HEADER.size)
    raw_kind, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes is larger than {MAX_FRAME}")
    try:
        kind = Kind(raw_kind)
    except ValueError:
        raise FrameError(f"unknown frame type {raw_kind!r}") from None
    return kind, await reader.readexactly(length)
