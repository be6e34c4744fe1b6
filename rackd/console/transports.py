"""Opens a node's console: URL transports from the rackd_console plugin, `ipmi-sol` from the node's BMC driver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from rackd.config import DeviceSpec
from rackd.console.config import ConsoleConfig
from rackd.drivers.contract import ConsoleStream, ConsoleTransport, DeviceSession, SessionContext
from rackd.drivers.registry import DriverRegistry
from rackd.errors import DriverNotFoundError, UnsupportedError


class SessionStream:
    """A console stream that owns the driver session it came from: closing it logs the session out."""

    def __init__(self, stream: ConsoleStream, session: DeviceSession) -> None:
        """Wrap."""
        self._stream = stream
        self._session = session

    async def read(self) -> bytes:
        """Console output."""
        return await self._stream.read()

    async def write(self, data: bytes) -> None:
        """Console input."""
        await self._stream.write(data)

    async def send_break(self) -> None:
        """BREAK, as the driver carries it."""
        await self._stream.send_break()

    async def close(self) -> None:
        """Close the stream, then the session."""
        try:
            await self._stream.close()
        finally:
            await self._session.close()


def is_unencrypted(console: ConsoleConfig) -> bool:
    """Whether console bytes (and typed passwords) cross the network in clear text."""
    return console.scheme in {"tcp", "telnet", "rfc2217"}


# Lends the node's open BMC session (the poller's), so the console does not log in to the BMC once more;
# None: no session to lend, the console opens its own.
SessionLender = Callable[[str], Awaitable[DeviceSession | None]]


async def open_stream(
    spec: DeviceSpec,
    console: ConsoleConfig,
    registry: DriverRegistry,
    state_dir: Path,
    lend_session: SessionLender | None = None,
) -> ConsoleStream:
    """Open the console of node `spec`; raises rackd.errors (UnsupportedError when it cannot exist)."""
    if console.scheme == "ipmi-sol":
        borrowed = await lend_session(spec.id) if lend_session is not None and spec.driver is not None else None
        if borrowed is not None:
            return await _open_sol_on(borrowed, spec)
        return await _open_sol(spec, registry, state_dir)
    try:
        from rackd_console.urls import open_transport  # noqa: PLC0415 - a plugin, optional at import time
    except ImportError:
        raise UnsupportedError(f"console {console.url}: the rackd_console transports are not installed") from None
    transport = open_transport(
        console.url, password=console.password, client_key=console.client_key, known_hosts=console.known_hosts
    )
    return await transport.open_console()


async def _open_sol_on(session: DeviceSession, spec: DeviceSpec) -> ConsoleStream:
    """SOL from a borrowed session: the stream's close leaves the session to its owner."""
    if not isinstance(session, ConsoleTransport):
        raise UnsupportedError(
            f"console ipmi-sol of {spec.id}: driver {spec.driver!r} does not offer a serial-over-LAN console"
        )
    return await session.open_console()


async def _open_sol(spec: DeviceSpec, registry: DriverRegistry, state_dir: Path) -> ConsoleStream:
    if spec.driver is None or spec.options is None:
        raise UnsupportedError(f"console ipmi-sol of {spec.id}: the node has no BMC configured")
    try:
        driver = registry.get(spec.driver)
    except DriverNotFoundError as exc:
        raise UnsupportedError(f"console ipmi-sol of {spec.id}: {exc}") from None
    session = await driver.open(SessionContext(spec.id, "console", state_dir), spec.options)
    if not isinstance(session, ConsoleTransport):
        await session.close()
        raise UnsupportedError(
            f"console ipmi-sol of {spec.id}: driver {spec.driver!r} does not offer a serial-over-LAN console"
        )
    try:
        stream = await session.open_console()
    except BaseException:
        await session.close()
        raise
    return SessionStream(stream, session)
