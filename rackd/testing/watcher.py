"""An MQTT subscriber for end-to-end tests: collects messages and waits for conditions (never sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the watcher saw it."""

    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)


def on_topic(topic: str) -> Callable[[Received], bool]:
    """A predicate: the message was published on exactly this topic."""
    return lambda message: message.topic == topic


def topic_has(part: str) -> Callable[[Received], bool]:
    """A predicate: the message's topic contains `part` (e.g. "/gpu-01/")."""
    return lambda message: part in message.topic


class MqttWatcher:
    """Subscribes to `topic_filter` and keeps every message; reconnects if the broker goes away.

    With `persistent=True` it uses a durable session (clean_start off, session expiry), so a broker with
    persistence queues what is published while the watcher is reconnecting.
    """

    def __init__(
        self,
        port: int,
        topic_filter: str = "#",
        *,
        client_id: str | None = None,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """Nothing connects until the watcher is entered."""
        self.port = port
        self.username = username
        self.password = password
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.persistent = persistent
        self.messages: list[Received] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def __aenter__(self) -> MqttWatcher:
        """Start collecting; returns once subscribed."""
        self._task = asyncio.create_task(self._run(), name="mqtt-watcher")
        async with asyncio.timeout(10):
            await self.subscribed.wait()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop collecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _client(self) -> aiomqtt.Client:
        properties = None
        if self.persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho has no types here
            properties.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self.persistent,
            properties=properties,
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = (
                            message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                        )
                        async with self._changed:
                            self.messages.append(Received(str(message.topic), payload, bool(message.retain)))
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)  # reconnect pacing while the broker is down, not synchronisation

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        """Messages so far that satisfy `predicate`."""
        return [m for m in self.messages if predicate(m)]

    async def wait_for(
        self, predicate: Callable[[Received], bool], count: int = 1, within: float = 20.0
    ) -> list[Received]:
        """Wait until at least `count` messages satisfy `predicate`; TimeoutError says how many arrived."""
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(lambda: len(self.matching(predicate)) >= count)
        except TimeoutError:
            got = len(self.matching(predicate))
            raise TimeoutError(f"{got}/{count} matching messages after {within} s") from None
        return self.matching(predicate)
