"""Telnet byte-level codec (RFC 854/855): strips IAC sequences from the data, reports commands, escapes IAC."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

IAC = 255
DONT = 254
DO = 253
WONT = 252
WILL = 251
SB = 250
BRK = 243
SE = 240

VERBS = frozenset({DO, DONT, WILL, WONT})


class Option(IntEnum):
    """Telnet options rackd takes part in."""

    BINARY = 0
    ECHO = 1
    SGA = 3
    COM_PORT = 44  # RFC 2217


def escape_iac(data: bytes) -> bytes:
    """Data as sent on a telnet connection: a 0xFF data byte is doubled."""
    return data.replace(b"\xff", b"\xff\xff")


def command(verb: int, option: int) -> bytes:
    """IAC VERB OPTION."""
    return bytes((IAC, verb, option))


def subnegotiation(payload: bytes) -> bytes:
    """IAC SB payload IAC SE, with IAC bytes inside the payload doubled."""
    return bytes((IAC, SB)) + escape_iac(payload) + bytes((IAC, SE))


@dataclass(frozen=True, slots=True)
class Negotiation:
    """A DO/DONT/WILL/WONT received."""

    verb: int
    option: int


@dataclass(frozen=True, slots=True)
class Subnegotiation:
    """The payload of IAC SB … IAC SE (IAC unescaped)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Command:
    """Any other IAC command (BRK, NOP, AYT, …)."""

    code: int


Signal = Negotiation | Subnegotiation | Command

_DATA, _IAC, _VERB, _SB, _SB_IAC = range(5)


@dataclass
class TelnetDecoder:
    """Incremental decoder: `feed(bytes)` → (data with IAC sequences removed, signals); state spans chunks."""

    _state: int = _DATA
    _verb: int = 0
    _sub: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> tuple[bytes, list[Signal]]:
        """Decode one chunk; a sequence split across chunks is completed by the next call."""
        if self._state == _DATA and IAC not in chunk:
            return chunk, []  # the common case: plain console output, no per-byte work
        data = bytearray()
        signals: list[Signal] = []
        for byte in chunk:
            state = self._state
            if state == _DATA:
                if byte == IAC:
                    self._state = _IAC
                else:
                    data.append(byte)
            elif state == _IAC:
                self._state = self._after_iac(byte, data, signals)
            elif state == _VERB:
                signals.append(Negotiation(self._verb, byte))
                self._state = _DATA
            else:
                self._state = self._in_subnegotiation(state, byte, signals)
        return bytes(data), signals

    def _in_subnegotiation(self, state: int, byte: int, signals: list[Signal]) -> int:
        if state == _SB:
            if byte == IAC:
                return _SB_IAC
            self._sub.append(byte)
            return _SB
        if byte == IAC:  # _SB_IAC: a doubled IAC inside a subnegotiation
            self._sub.append(IAC)
            return _SB
        if byte == SE:
            signals.append(Subnegotiation(bytes(self._sub)))
            self._sub.clear()
            return _DATA
        self._sub.append(byte)  # a command inside SB is a protocol error; keep the byte rather than lose it
        return _SB

    def _after_iac(self, byte: int, data: bytearray, signals: list[Signal]) -> int:
        if byte == IAC:
            data.append(IAC)
            return _DATA
        if byte in VERBS:
            self._verb = byte
            return _VERB
        if byte == SB:
            self._sub.clear()
            return _SB
        signals.append(Command(byte))
        return _DATA
