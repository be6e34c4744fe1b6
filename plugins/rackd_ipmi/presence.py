"""A session-less IPMI ping from the event loop: is the BMC answering at all, before a login spends a thread on it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# RMCP (version 6, no ACK, class IPMI) + IPMI 1.5 session header (no auth, session 0) + Get Channel
# Authentication Capabilities (netfn App, cmd 0x38) for the current channel with IPMI 2.0 data, privilege admin:
# the first packet of every RMCP+ login (pyghmi's and ipmitool's), so every IPMI 2.0 BMC answers it.
RMCP_HEADER = bytes([0x06, 0x00, 0xFF, 0x07])
_SESSION_HEADER = bytes([0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09])
_MESSAGE = bytes([0x20, 0x18, 0xC8, 0x81, 0x00, 0x38, 0x8E, 0x04])
GET_CHANNEL_AUTH_CAPS = RMCP_HEADER + _SESSION_HEADER + _MESSAGE + bytes([-sum(_MESSAGE[3:]) & 0xFF])
MIN_REPLY = 20  # RMCP + session header + the shortest IPMI response


class _Listener(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answered = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, _addr: Any) -> None:
        if data[:4] == RMCP_HEADER and len(data) >= MIN_REPLY and not self.answered.done():
            self.answered.set_result(True)  # any IPMI answer, even an error code, means someone is home

    def error_received(self, _exc: Exception) -> None:
        pass  # ICMP port unreachable and the like: keep waiting for the remaining attempts, then say no


async def bmc_answers(host: str, port: int, *, attempts: int = 4, spacing: float = 0.3) -> bool:
    """Whether the BMC answers Get Channel Authentication Capabilities within `attempts` x `spacing` seconds.

    A login to a BMC that does not answer holds a pool thread and a login place for ~5 s (pyghmi's retries); at
    site scale, with a tenth of the BMCs hung, those logins alone kept the healthy BMCs from logging in. This
    costs no thread: one small packet per attempt, sent again every `spacing` s (a lossy link: at 30 % loss in
    both directions four attempts all fail one time in 15, and that login is just tried again at the next poll).
    """
    loop = asyncio.get_running_loop()
    try:
        transport, listener = await loop.create_datagram_endpoint(_Listener, remote_addr=(host, port))
    except OSError:
        return False
    try:
        for _ in range(attempts):
            transport.sendto(GET_CHANNEL_AUTH_CAPS)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(spacing):
                    return await asyncio.shield(listener.answered)
        return False
    finally:
        transport.close()
