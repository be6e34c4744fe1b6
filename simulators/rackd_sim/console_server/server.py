"""The console server: each console on a raw TCP, a telnet and an RFC 2217 port, with per-connection records."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import socket
from dataclasses import dataclass, field
from typing import Any

from rackd_sim.console_server.machine import Output, SimulatedConsole
from rackd_sim.console_server.telnet_server import TelnetServerProtocol, escape

PROTOCOLS = ("raw", "telnet", "rfc2217")
LOOPBACK = "127.0.0.1"


@dataclass
class ConnectionRecord:
    """One client connection as the console server saw it."""

    protocol: str
    peer: str
    opened_at: dt.datetime
    sent: bytearray = field(default_factory=bytearray)  # console output sent to this client (before escaping)
    received: bytearray = field(default_factory=bytearray)  # console input from this client
    breaks: int = 0
    baud_requests: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection(asyncio.Protocol):
    def __init__(self, console: SimulatedConsole, record: ConnectionRecord, host: ConsoleEndpoint) -> None:
        self.console = console
        self.record = record
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.telnet: TelnetServerProtocol | None = None
        self.output = Output(self._send)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.record.protocol != "raw":
            self.telnet = TelnetServerProtocol(
                rfc2217=self.record.protocol == "rfc2217",
                on_data=self._input,
                on_break=self._break,
                on_baud=self.record.baud_requests.append,
                reply=transport.write,
            )
            transport.write(self.telnet.opening())
        self.host.connections.append(self)
        self.console.outputs.append(self.output)

    def _send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.record.sent += data
        self.transport.write(escape(data) if self.telnet is not None else data)

    def _input(self, data: bytes) -> None:
        self.record.received += data
        self.console.receive(data)

    def _break(self) -> None:
        self.record.breaks += 1
        self.host.breaks += 1
        self.console.break_received()

    def data_received(self, data: bytes) -> None:
        if self.telnet is not None:
            self.telnet.feed(data)
        else:
            self._input(data)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        with contextlib.suppress(ValueError):
            self.console.outputs.remove(self.output)
        with contextlib.suppress(ValueError):
            self.host.connections.remove(self)
        self.transport = None
        self.record.closed.set()

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class ConsoleEndpoint:
    """One console with its three listening ports and the records of every connection it accepted."""

    console: SimulatedConsole
    ports: dict[str, int] = field(default_factory=dict)
    records: list[ConnectionRecord] = field(default_factory=list)
    connections: list[_Connection] = field(default_factory=list)
    breaks: int = 0
    servers: list[asyncio.Server] = field(default_factory=list)
    accepting: bool = True

    def drop_connections(self) -> int:
        """Cut every client off (a console server restart, a network blip); returns how many."""
        dropped = list(self.connections)
        for connection in dropped:
            connection.drop()
        return len(dropped)

    def records_of(self, protocol: str) -> list[ConnectionRecord]:
        """Records of one protocol's connections, oldest first."""
        return [r for r in self.records if r.protocol == protocol]


class ConsoleServerSim:
    """Serves simulated consoles; everything is driven in-process (power, faults, dropped connections)."""

    def __init__(
        self,
        names: list[str],
        *,
        host: str = LOOPBACK,
        baud: int = 115200,
        boot_speed: float = 1.0,
        password: str = "rackd",  # noqa: S107 - the simulated servers' documented login
    ) -> None:
        """Nothing listens until `start()`."""
        self.host = host
        self.endpoints = {
            name: ConsoleEndpoint(
                SimulatedConsole(name, baud=baud, boot_speed=boot_speed, password=password, seed=index)
            )
            for index, name in enumerate(names)
        }

    def __getitem__(self, name: str) -> ConsoleEndpoint:
        """One console's endpoint by name."""
        return self.endpoints[name]

    async def start(self) -> None:
        """Listen on a free loopback port per console and protocol."""
        for endpoint in self.endpoints.values():
            endpoint.console.start()
            await self._listen(endpoint)

    async def _listen(self, endpoint: ConsoleEndpoint) -> None:
        loop = asyncio.get_running_loop()
        for protocol in PROTOCOLS:
            port = endpoint.ports.get(protocol, 0)
            server = await loop.create_server(functools.partial(self._accept, endpoint, protocol), self.host, port)
            endpoint.servers.append(server)
            endpoint.ports[protocol] = server.sockets[0].getsockname()[1]

    async def go_offline(self, name: str) -> None:
        """The console server stops answering for this console: clients dropped, connects refused."""
        endpoint = self.endpoints[name]
        for server in endpoint.servers:
            server.close()
        endpoint.drop_connections()
        for server in endpoint.servers:
            await server.wait_closed()
        endpoint.servers.clear()

    async def go_online(self, name: str) -> None:
        """Listen again, on the same ports."""
        endpoint = self.endpoints[name]
        if not endpoint.servers:
            await self._listen(endpoint)

    def _accept(self, endpoint: ConsoleEndpoint, protocol: str) -> _Connection:
        record = ConnectionRecord(protocol, "", dt.datetime.now(dt.UTC))
        endpoint.records.append(record)
        return _Connection(endpoint.console, record, endpoint)

    async def close(self) -> None:
        """Stop listening, drop clients, stop the consoles."""
        for endpoint in self.endpoints.values():
            for server in endpoint.servers:
                server.close()
            endpoint.drop_connections()
            for server in endpoint.servers:
                await server.wait_closed()
            await endpoint.console.stop()

    def describe(self) -> dict[str, Any]:
        """The JSON line `rackd sim console-server` prints: every console's URLs."""
        return {
            "kind": "console-server",
            "consoles": [
                {
                    "name": name,
                    "powered": endpoint.console.powered,
                    **{
                        protocol: f"{'tcp' if protocol == 'raw' else protocol}://{self.host}:{port}"
                        for protocol, port in endpoint.ports.items()
                    },
                    "login": {"user": "root", "password": endpoint.console.password},
                }
                for name, endpoint in self.endpoints.items()
            ],
        }
