"""Local serial ports (`serial:///dev/ttyUSB0?baud=115200`) through pyserial-asyncio-fast (no thread per port)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import serial
import serial_asyncio_fast

from rackd.errors import DeviceUnreachableError
from rackd_console.rfc2217 import BREAK_SECONDS

READ_SIZE = 65536


class SerialStream:
    """An open local serial port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        """Wrap the adapter's streams."""
        self._reader = reader
        self._writer = writer
        self.where = where

    @property
    def port(self) -> Any:
        """The pyserial object (baud rate, break condition)."""
        return self._writer.transport.serial  # type: ignore[attr-defined]  # SerialTransport, untyped library

    async def read(self) -> bytes:
        """Output from the device; b"" when the port went away."""
        try:
            return await self._reader.read(READ_SIZE)
        except (OSError, serial.SerialException) as exc:
            raise DeviceUnreachableError(f"{self.where}: read failed ({exc})") from None

    async def write(self, data: bytes) -> None:
        """Send bytes to the device."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, serial.SerialException) as exc:
            raise DeviceUnreachableError(f"{self.where}: write failed ({exc})") from None

    async def send_break(self) -> None:
        """Hold the line in the break condition for 250 ms (non-blocking ioctls, unlike Serial.send_break)."""
        try:
            self.port.break_condition = True
            # The pause is the break itself, not a retry or a schedule.
            await asyncio.sleep(BREAK_SECONDS)
            self.port.break_condition = False
        except (OSError, serial.SerialException) as exc:
            raise DeviceUnreachableError(f"{self.where}: BREAK failed ({exc})") from None

    async def set_baudrate(self, baud: int) -> None:
        """Change the line speed."""
        try:
            self.port.baudrate = baud
        except (OSError, ValueError, serial.SerialException) as exc:
            raise DeviceUnreachableError(f"{self.where}: cannot set {baud} baud ({exc})") from None

    async def close(self) -> None:
        """Close the port; never raises."""
        self._writer.close()
        with contextlib.suppress(OSError, serial.SerialException):
            await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class SerialTransport:
    """`serial:///dev/ttyX?baud=N` (8N1)."""

    path: str
    baud: int = 115200

    async def open_console(self) -> SerialStream:
        """Open the port."""
        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=self.path, baudrate=self.baud, limit=READ_SIZE
            )
        except (OSError, ValueError, serial.SerialException) as exc:
            raise DeviceUnreachableError(f"console serial {self.path}: cannot open ({exc})") from None
        return SerialStream(reader, writer, f"console serial://{self.path}")
