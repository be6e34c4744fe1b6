"""SOL console: a ConsoleStream over pyghmi's Console; the driver's LoopPump turns pyghmi's loop for it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Executor
from typing import Any

import structlog
from pyghmi.ipmi import console as ipmi_console

from rackd.errors import DeviceProtocolError, DeviceTimeoutError
from rackd_ipmi.budget import SESSIONS
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.pump import LoopPump

log = structlog.get_logger(__name__)

class SolStream:
    """Console output arrives through pyghmi's iohandler (in pyghmi threads) and is queued for `read()`."""

    def __init__(self, options: IpmiOptions, executor: Executor, pump: LoopPump) -> None:
        """Not connected until `start()`."""
        self.where = options.where
        self._bmc = (options.host, options.port)
        self._settled = False  # the console's session counts in the BMC's session budget
        self._options = options
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._active = asyncio.Event()
        self._failed: str | None = None
        self._closed = threading.Event()
        self._eof = False
        self._console: Any = None
        self._pump = pump
        self._active_seen = False

    def _deliver(self, data: Any) -> None:
        # Called from pyghmi threads: bytes, or {'error': …} / {'info': …}.
        if isinstance(data, bytes | bytearray):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, bytes(data))
            self._loop.call_soon_threadsafe(self._active.set)
        elif isinstance(data, dict) and "error" in data:
            self._failed = str(data["error"])
            self._loop.call_soon_threadsafe(self._queue.put_nowait, b"")
            self._loop.call_soon_threadsafe(self._active.set)

    def _safe_deliver(self, data: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop closed under a late callback
            self._deliver(data)

    def _open_blocking(self, password: str, kg: str | None) -> None:
        self._console = ipmi_console.Console(
            bmc=self._options.host, userid=self._options.username, password=password,
            iohandler=self._safe_deliver, port=self._options.port, force=True, kg=kg,
        )

    def poll_activation(self) -> None:
        """Called by the pump after each turn of pyghmi's loop: signal `start()` once the payload is active."""
        console = self._console
        if console is not None and console.activated and not self._active_seen:
            self._active_seen = True
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._active.set)

    async def start(self, password: str, kg: str | None, activation_timeout: float) -> None:
        """Log in and activate the SOL payload (taking over a stale one); bounded by `timeout`."""
        await asyncio.wrap_future(self._executor.submit(self._open_blocking, password, kg))
        self._pump.add(self, self.poll_activation)
        try:
            async with asyncio.timeout(activation_timeout):
                await self._active.wait()
        except TimeoutError:
            await self.close()
            raise DeviceTimeoutError(f"{self.where}: SOL payload not activated within {activation_timeout} s") from None
        if self._failed is not None:
            await self.close()
            raise DeviceProtocolError(f"{self.where}: SOL activation failed ({self._failed})")
        session = getattr(self._console, "ipmi_session", None)
        if session is not None and session.__dict__.pop("rackd_claimed", False):
            SESSIONS.settle(self._bmc, int(session.sessionid))  # the console's session counts until closed
            self._settled = True

    async def read(self) -> bytes:
        """The next chunk of console output; b"" once the console ended."""
        if self._eof:
            return b""
        chunk = await self._queue.get()
        if not chunk:
            self._eof = True
        return chunk

    async def write(self, data: bytes) -> None:
        """Send bytes; pyghmi's send_data blocks until the BMC acknowledges, so it runs in a worker."""
        console = self._console
        if console is None or self._eof:
            raise DeviceProtocolError(f"{self.where}: SOL console is closed")
        await asyncio.wrap_future(self._executor.submit(console.send_data, bytes(data)))

    async def send_break(self) -> None:
        """A serial BREAK over SOL."""
        console = self._console
        if console is None or self._eof:
            raise DeviceProtocolError(f"{self.where}: SOL console is closed")
        await asyncio.wrap_future(self._executor.submit(console.send_break))

    async def close(self) -> None:
        """Deactivate the payload and stop the pump; never raises."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._pump.remove(self)
        if self._settled:
            self._settled = False
            SESSIONS.release(self._bmc, confirmed=False)  # pyghmi's console logout never reports an answer
        console, self._console = self._console, None
        if console is not None:
            try:
                await asyncio.wrap_future(self._executor.submit(console.close))
            except Exception as exc:  # noqa: BLE001 - closing must not fail
                log.debug("ipmi_sol_close_failed", bmc=self.where, error=repr(exc))
        if not self._eof:
            self._queue.put_nowait(b"")
