"""A UDP relay in front of one simulated BMC: timestamps what rackd sends it, and can drop a share of it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any


class _Back(asyncio.DatagramProtocol):
    """The relay's socket towards the BMC for one client: replies go back to that client."""

    def __init__(self, front: asyncio.DatagramTransport, client: Any) -> None:
        self.front = front
        self.client = client

    def datagram_received(self, data: bytes, _addr: Any) -> None:
        self.front.sendto(data, self.client)


class UdpTap(asyncio.DatagramProtocol):
    """Listens on a loopback port; forwards to `target`; `arrivals` holds the monotonic time of each request."""

    def __init__(self, target: tuple[str, int], drop_rate: float = 0.0, record: bool = True) -> None:
        """Nothing bound until `start()`; `drop_rate` of the requests are silently dropped (a lossy link)."""
        self.target = target
        self.drop_rate = drop_rate
        self.record = record
        self.arrivals: list[float] = []
        self.front: asyncio.DatagramTransport | None = None
        self._backs: dict[Any, asyncio.DatagramTransport] = {}
        self._pending: dict[Any, list[bytes]] = {}

    async def start(self) -> int:
        """Bind a free loopback port; returns it."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.front = transport
        return int(transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.record:
            self.arrivals.append(time.monotonic())
        if self.drop_rate and random.random() < self.drop_rate:
            return
        back = self._backs.get(addr)
        if back is not None:
            back.sendto(data)
            return
        queued = self._pending.setdefault(addr, [])
        queued.append(data)
        if len(queued) == 1:
            asyncio.get_running_loop().create_task(self._connect(addr))

    async def _connect(self, addr: Any) -> None:
        assert self.front is not None
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Back(self.front, addr),  # type: ignore[arg-type]
            remote_addr=self.target,
        )
        self._backs[addr] = transport
        for data in self._pending.pop(addr, []):
            transport.sendto(data)

    def first_after(self, moment: float) -> float | None:
        """The first request that arrived at or after `moment` (monotonic), if any."""
        return next((t for t in self.arrivals if t >= moment), None)

    def close(self) -> None:
        """Close every socket."""
        for back in self._backs.values():
            back.close()
        if self.front is not None:
            self.front.close()
