"""A UDP relay in front of a real SNMP agent that alters, repeats, delays or drops the agent's replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

LOOPBACK = "127.0.0.1"
# What to send back for one reply of the agent: (delay in seconds, datagram, from the relay's other socket?)
Alter = Callable[[bytes], list[tuple[float, bytes, bool]]]


class _Back(asyncio.DatagramProtocol):
    def __init__(self, relay: ReplyRelay, client: Any) -> None:
        self.relay = relay
        self.client = client

    def datagram_received(self, data: bytes, _addr: Any) -> None:
        self.relay.reply(data, self.client)


class ReplyRelay(asyncio.DatagramProtocol):
    """Listens on a free loopback port, forwards requests to `upstream`, and passes replies through `alter`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.alter: Alter | None = None
        self.answer = True  # False: requests reach nobody (a silent agent)
        self.requests: list[bytes] = []
        self.arrived = asyncio.Event()  # set by the first request
        self.replies_sent = 0
        self.delayed_sent = asyncio.Event()  # set once a delayed reply has gone out
        self.front: asyncio.DatagramTransport | None = None
        self.side: asyncio.DatagramTransport | None = None  # another address, for replies from elsewhere
        self._backs: dict[Any, asyncio.DatagramTransport] = {}

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.front, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(LOOPBACK, 0))
        self.side, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(LOOPBACK, 0))
        return LOOPBACK, int(self.front.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests.append(data)
        self.arrived.set()
        if self.answer:
            asyncio.get_running_loop().create_task(self._forward(data, addr))

    async def _forward(self, data: bytes, client: Any) -> None:
        back = self._backs.get(client)
        if back is None:
            back, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Back(self, client), remote_addr=self.upstream
            )
            self._backs[client] = back
        back.sendto(data)

    def reply(self, data: bytes, client: Any) -> None:
        outputs = self.alter(data) if self.alter is not None else [(0.0, data, False)]
        for delay, datagram, elsewhere in outputs:
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._send_delayed, datagram, client, elsewhere)
            else:
                self._send(datagram, client, elsewhere)

    def _send(self, datagram: bytes, client: Any, elsewhere: bool) -> None:
        transport = self.side if elsewhere else self.front
        assert transport is not None
        transport.sendto(datagram, client)
        self.replies_sent += 1

    def _send_delayed(self, datagram: bytes, client: Any, elsewhere: bool) -> None:
        self._send(datagram, client, elsewhere)
        self.delayed_sent.set()

    def close(self) -> None:
        for back in self._backs.values():
            back.close()
        for transport in (self.front, self.side):
            if transport is not None:
                transport.close()
