"""Telnet console-server ports (`telnet://host:port`): option negotiation answered, IAC never leaks into output."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from rackd.errors import DeviceUnreachableError
from rackd_console.tcp import SocketStream, connect
from rackd_console.telnet_codec import (
    BRK,
    DO,
    DONT,
    IAC,
    WILL,
    WONT,
    Command,
    Negotiation,
    Option,
    Signal,
    Subnegotiation,
    TelnetDecoder,
    command,
    escape_iac,
)

log = structlog.get_logger(__name__)


class Negotiator:
    """Client side of option negotiation with loop protection: answers only changes of state (RFC 854)."""

    def __init__(self, local: frozenset[int], remote: frozenset[int]) -> None:
        """`local`: options we perform (WILL); `remote`: options we want the server to perform (DO)."""
        self._local_ok = local
        self._remote_ok = remote
        self.local: dict[int, bool] = {}
        self.remote: dict[int, bool] = {}
        self._asked: set[tuple[str, int]] = set()

    def opening(self) -> bytes:
        """What the client says first: WILL for its own options, DO for the server's."""
        out = bytearray()
        for option in sorted(self._local_ok):
            self._asked.add(("local", option))
            out += command(WILL, option)
        for option in sorted(self._remote_ok):
            self._asked.add(("remote", option))
            out += command(DO, option)
        return bytes(out)

    def answer(self, negotiation: Negotiation) -> bytes:
        """The reply to one received negotiation (possibly nothing)."""
        verb, option = negotiation.verb, negotiation.option
        if verb in (DO, DONT):
            return self._settle("local", self.local, option, verb == DO, option in self._local_ok, WILL, WONT)
        return self._settle("remote", self.remote, option, verb == WILL, option in self._remote_ok, DO, DONT)

    def _settle(
        self, side: str, state: dict[int, bool], option: int, wanted: bool, allowed: bool, yes: int, no: int
    ) -> bytes:
        asked = (side, option) in self._asked
        self._asked.discard((side, option))
        if wanted and not allowed:
            return command(no, option)  # a request for an option we do not support is always refused
        previous = state.get(option, False)
        state[option] = wanted
        if previous == wanted:
            return b""  # no change of state: answering would start a negotiation loop
        if asked:
            return b""  # the server's answer to our own request
        return command(yes if wanted else no, option)


class TelnetStream(SocketStream):
    """A telnet connection: data unescaped, negotiation answered in-band while reading."""

    LOCAL_OPTIONS = frozenset({Option.BINARY, Option.SGA})
    REMOTE_OPTIONS = frozenset({Option.BINARY, Option.SGA, Option.ECHO})

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        """Wrap an open connection (`start()` sends our side of the negotiation)."""
        super().__init__(reader, writer, where)
        self._decoder = TelnetDecoder()
        self.negotiator = Negotiator(self.LOCAL_OPTIONS, self.REMOTE_OPTIONS)

    async def start(self) -> None:
        """Send our side of the option negotiation."""
        await self.write_raw(self.negotiator.opening())

    async def read(self) -> bytes:
        """Console output with every telnet command removed; b"" at EOF."""
        while True:
            raw = await self.read_raw()
            if not raw:
                return b""
            data, signals = self._decoder.feed(raw)
            if signals:
                await self._handle(signals)
            if data:
                return data

    async def _handle(self, signals: list[Signal]) -> None:
        replies = bytearray()
        for signal in signals:
            if isinstance(signal, Negotiation):
                replies += self.negotiator.answer(signal)
            elif isinstance(signal, Subnegotiation):
                replies += self.on_subnegotiation(signal)
            elif isinstance(signal, Command):
                log.debug("telnet_command_ignored", where=self.where, code=signal.code)
        if replies:
            await self.write_raw(bytes(replies))

    def on_subnegotiation(self, signal: Subnegotiation) -> bytes:
        """A subnegotiation from the server; plain telnet consoles use none."""
        del signal
        return b""

    async def write(self, data: bytes) -> None:
        """Send console input, IAC doubled."""
        await self.write_raw(escape_iac(data))

    async def send_break(self) -> None:
        """Telnet carries BREAK as IAC BRK."""
        await self.write_raw(bytes((IAC, BRK)))


@dataclass(frozen=True, slots=True)
class TelnetTransport:
    """`telnet://host:port`."""

    host: str
    port: int

    async def open_console(self) -> TelnetStream:
        """Connect and negotiate."""
        reader, writer = await connect(self.host, self.port, "console telnet")
        stream = TelnetStream(reader, writer, f"console telnet://{self.host}:{self.port}")
        try:
            await stream.start()
        except DeviceUnreachableError:
            await stream.close()
            raise
        return stream
