"""Server side of telnet and RFC 2217 for the simulator: negotiation, IAC unescaping, BREAK and baud requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

IAC, DONT, DO, WONT, WILL, SB, BRK, SE = 255, 254, 253, 252, 251, 250, 243, 240
BINARY, ECHO, SGA, COM_PORT = 0, 1, 3, 44
SET_BAUDRATE, SET_CONTROL = 1, 5
BREAK_ON, BREAK_OFF = 5, 6


def escape(data: bytes) -> bytes:
    """Output bytes as sent on a telnet connection (IAC doubled)."""
    return data.replace(b"\xff", b"\xff\xff")


@dataclass
class TelnetServerProtocol:
    """Parses what a client sends; calls back with data, BREAKs and baud requests; answers negotiations."""

    rfc2217: bool
    on_data: Callable[[bytes], None]
    on_break: Callable[[], None]
    on_baud: Callable[[int], None]
    reply: Callable[[bytes], None]
    _mode: str = "data"
    _verb: int = 0
    _sub: bytearray = field(default_factory=bytearray)
    _enabled: dict[tuple[str, int], bool] = field(default_factory=dict)

    def opening(self) -> bytes:
        """What a console server says on connect: it echoes and suppresses go-ahead (like ser2net)."""
        out = bytes((IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA, IAC, WILL, BINARY, IAC, DO, BINARY))
        self._enabled.update({("us", ECHO): True, ("us", SGA): True, ("them", SGA): True})
        self._enabled.update({("us", BINARY): True, ("them", BINARY): True})
        if self.rfc2217:
            out += bytes((IAC, WILL, COM_PORT))
            self._enabled["us", COM_PORT] = True
        return out

    def feed(self, chunk: bytes) -> None:
        """Process bytes from the client."""
        data = bytearray()
        for byte in chunk:
            if self._mode == "data":
                if byte == IAC:
                    self._mode = "iac"
                else:
                    data.append(byte)
            elif self._mode == "iac":
                self._mode = self._command(byte, data)
            elif self._mode == "verb":
                self._negotiate(self._verb, byte)
                self._mode = "data"
            elif self._mode == "sb":
                if byte == IAC:
                    self._mode = "sb_iac"
                else:
                    self._sub.append(byte)
            elif byte == SE:  # sb_iac
                self._subnegotiation(bytes(self._sub))
                self._sub.clear()
                self._mode = "data"
            else:
                self._sub.append(byte)
                self._mode = "sb"
        if data:
            self.on_data(bytes(data))

    def _command(self, byte: int, data: bytearray) -> str:
        if byte == IAC:
            data.append(IAC)
            return "data"
        if byte in (DO, DONT, WILL, WONT):
            self._verb = byte
            return "verb"
        if byte == SB:
            self._sub.clear()
            return "sb"
        if byte == BRK:
            self.on_break()
        return "data"

    def _negotiate(self, verb: int, option: int) -> None:
        supported_us = {ECHO, SGA, BINARY} | ({COM_PORT} if self.rfc2217 else set())
        supported_them = {SGA, BINARY} | ({COM_PORT} if self.rfc2217 else set())
        if verb in (DO, DONT):
            side, ok, yes, no = "us", option in supported_us, WILL, WONT
        else:
            side, ok, yes, no = "them", option in supported_them, DO, DONT
        wanted = verb in (DO, WILL)
        if wanted and not ok:
            self.reply(bytes((IAC, no, option)))
            return
        if self._enabled.get((side, option), False) != wanted:
            self._enabled[side, option] = wanted
            self.reply(bytes((IAC, yes if wanted else no, option)))

    def _subnegotiation(self, payload: bytes) -> None:
        if not self.rfc2217 or len(payload) < 2 or payload[0] != COM_PORT:
            return
        code, value = payload[1], payload[2:]
        if code == SET_BAUDRATE and len(value) == 4:
            baud = int.from_bytes(value, "big")
            if baud:
                self.on_baud(baud)
        elif code == SET_CONTROL and value[:1] == bytes((BREAK_ON,)):
            self.on_break()
        # Every COM-PORT-OPTION request is answered with code + 100 and the value now in effect (RFC 2217).
        self.reply(bytes((IAC, SB, COM_PORT, code + 100)) + escape(value) + bytes((IAC, SE)))
