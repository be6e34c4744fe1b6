"""Helpers for console tests: wait on in-process conditions, read a stream up to a marker, run clients under ptys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
from collections.abc import Callable, Sequence

from rackd.drivers.contract import ConsoleStream


async def wait_for(condition: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Until `condition()` holds; TimeoutError names `what`. Each turn yields to the tasks that make it true."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - the condition is plain state, no event to wait on
                await asyncio.sleep(0.005)  # a poll interval under a deadline, not a synchronising sleep
    except TimeoutError:
        raise TimeoutError(f"{what}: not reached within {within} s") from None


async def read_until(stream: ConsoleStream, needle: bytes, limit: int = 1 << 22) -> bytes:
    """Everything read from `stream` up to and including the first chunk that completes `needle`."""
    got = bytearray()
    while needle not in got:
        chunk = await stream.read()
        if not chunk:
            raise EOFError(f"end of stream before {needle!r}; last bytes {bytes(got[-200:])!r}")
        got += chunk
        if len(got) > limit:
            raise ValueError(f"{needle!r} not seen in {limit} bytes")
    return bytes(got)


class PtyClient:
    """A terminal program (`rackd console`, `conman`) run with a fresh pty as its terminal; the test types and reads."""

    def __init__(self, argv: Sequence[str]) -> None:
        """Nothing runs until `start()`."""
        self.argv = list(argv)
        self.output = bytearray()
        self.process: asyncio.subprocess.Process | None = None
        self._master = -1
        self._grew = asyncio.Event()

    async def start(self) -> None:
        """Start the program in its own session with the pty's slave side as stdin, stdout and stderr."""
        master, slave = pty.openpty()
        self._master = master
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        os.close(slave)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every slave fd is closed (the program exited)
            data = b""
        if data:
            self.output += data
        else:
            asyncio.get_running_loop().remove_reader(self._master)
        self._grew.set()

    async def expect(self, needle: bytes, count: int = 1, within: float = 15.0) -> None:
        """Until the program has printed `needle` at least `count` times."""
        try:
            async with asyncio.timeout(within):
                while self.output.count(needle) < count:
                    self._grew.clear()
                    await self._grew.wait()
        except TimeoutError:
            tail = bytes(self.output[-600:])
            raise TimeoutError(f"{needle!r} x{count} not printed within {within} s; output ends {tail!r}") from None

    def type(self, data: bytes) -> None:
        """Keystrokes, as from the keyboard."""
        os.write(self._master, data)

    async def exit_code(self, within: float = 15.0) -> int:
        """The program's exit status, once it exits."""
        assert self.process is not None
        async with asyncio.timeout(within):
            return await self.process.wait()

    async def cleanup(self) -> None:
        """Kill the program if it still runs (by its PID) and close the pty."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._master >= 0:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = -1
