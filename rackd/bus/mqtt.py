"""The broker adapter (aiomqtt): reconnects forever, spools what must not be lost, keeps newest telemetry."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sqlite3
import ssl
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rackd.bus.codec import (
    DaemonEventPayload,
    DaemonStatusPayload,
    FeedPayload,
    PhasePayload,
    RackEventPayload,
    RackNodePayload,
    RackTelemetryPayload,
    event_payload,
    result_payload,
    state_payload,
    telemetry_payload,
)
from rackd.bus.spool import PINNED_PREFIX, Spool, SpoolEntry
from rackd.bus.topics import Topics
from rackd.config import DeviceSpec, MqttConfig
from rackd.model import CommandResult, Event, EventType, Reading, Severity
from rackd.runtime.backoff import Backoff
from rackd.runtime.clock import Clock
from rackd.runtime.rack_power import RackFigures
from rackd.runtime.state import DeviceState

log = structlog.get_logger(__name__)

MEMORY_OUTBOX_LIMIT = 10_000  # messages held in memory while the state dir refuses writes

MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]


class MqttBus:
    """Implements `rackd.bus.publisher.Publisher` on a broker connection that survives outages."""

    def __init__(
        self,
        config: MqttConfig,
        site: str,
        instance: str,
        state_dir: Path,
        clock: Clock,
        version: str,
    ) -> None:
        """Open the spool; the connection is made by `run()`."""
        self._config = config
        self._site = site
        self._instance = instance
        self._clock = clock
        self._version = version
        self.topics = Topics(config.topic_prefix, site)
        self.spool = Spool(state_dir / "spool.sqlite3", config.spool_max_messages)
        self._telemetry: dict[str, bytes] = {}  # newest per topic, not yet sent
        self._retained: dict[str, bytes] = {}  # the current retained value of every state topic
        self._retained_pending: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._handlers: list[tuple[str, MessageHandler]] = []
        self._counts: dict[str, int] = {}
        self._started_at = clock.now()
        self._overflow_dropped = 0
        self._unspooled: deque[SpoolEntry] = deque()  # accepted, not yet in the spool (in order; see _flush_unspooled)
        self._disk_degraded = False
        self.connected = asyncio.Event()
        self.first_attempt_done = asyncio.Event()  # readiness: the first connection attempt ended either way
        self.connects = 0
        self._outage_logged = False
        self._backoff = Backoff(0.5, config.reconnect_max)
        self._wake.set()  # a spool left by a previous run is sent as soon as we connect

    # ------------------------------------------------------------------ Publisher

    def publish_telemetry(
        self, device: DeviceSpec, source: str, readings: Sequence[Reading], observed_at: dt.datetime
    ) -> None:
        """Queue a telemetry message; while offline only the newest per topic is kept."""
        payload = telemetry_payload(self._site, device, source, readings, observed_at)
        self._telemetry[self.topics.telemetry(device.rack, device.id)] = payload.encode()
        self._wake.set()

    def publish_state(self, device: DeviceSpec, state: DeviceState) -> None:
        """Queue the retained state; it is also republished after every reconnect."""
        topic = self.topics.state(device.rack, device.id)
        payload = state_payload(self._site, device, state, self._clock.now()).encode()
        self._retained[topic] = payload
        self._retained_pending[topic] = payload
        self._wake.set()

    def publish_event(self, device: DeviceSpec, event: Event) -> None:
        """Spool the event durably, then let the sender deliver it in order."""
        payload = event_payload(self._site, device, event)
        self._spool_append(f"event:{event.id}", self.topics.event(device.rack, device.id), payload.encode())

    def publish_result(
        self,
        device: DeviceSpec,
        result: CommandResult,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """Spool a command result (to the request's response topic when it named one)."""
        payload = result_payload(self._site, device, result)
        topic = response_topic or self.topics.command_result(device.rack, device.id)
        key = f"result:{device.id}:{result.id}:{result.status}:{len(result.steps)}"
        self._spool_append(key, topic, payload.encode(), correlation)

    def publish_rack(self, figures: RackFigures, ts: dt.datetime) -> None:
        """Rack telemetry (newest per rack while offline, like device telemetry)."""
        payload = RackTelemetryPayload(
            ts=ts,
            site=self._site,
            rack=figures.rack,
            total_power=figures.total_power,
            budget_w=figures.budget_w,
            budget_use=figures.budget_use,
            feeds={
                name: FeedPayload(
                    power=feed.power if feed.complete else None,
                    pdus=feed.pdus,
                    phases={p: PhasePayload(**values) for p, values in feed.phases.items()},
                )
                for name, feed in figures.feeds.items()
            },
            nodes={node: RackNodePayload(**values) for node, values in figures.nodes.items()},
        )
        self._telemetry[self.topics.rack_telemetry(figures.rack)] = payload.encode()
        self._wake.set()

    def publish_rack_event(self, rack: str, event: Event) -> None:
        """A rack event, spooled like device events."""
        payload = RackEventPayload(
            ts=event.observed_at,
            site=self._site,
            rack=rack,
            id=event.id,
            type=event.type,
            severity=event.severity,
            message=event.message,
            data=dict(event.data),
        )
        self._spool_append(f"event:{event.id}", self.topics.rack_event(rack), payload.encode())

    def forget_device(self, device: DeviceSpec) -> None:
        """A device left the config: clear its retained state (an empty retained message deletes it)."""
        topic = self.topics.state(device.rack, device.id)
        self._retained.pop(topic, None)
        self._retained_pending[topic] = b""
        self._telemetry.pop(self.topics.telemetry(device.rack, device.id), None)
        self._wake.set()

    def set_counts(self, counts: Mapping[str, int]) -> None:
        """Update the figures of the retained daemon status (republished when they change)."""
        if dict(counts) != self._counts:
            self._counts = dict(counts)
            topic = self.topics.daemon_status(self._instance)
            payload = self._status_payload("online").encode()
            self._retained[topic] = payload
            self._retained_pending[topic] = payload
            self._wake.set()

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Deliver messages matching `topic_filter` to `handler` (subscribed again after every reconnect)."""
        self._handlers.append((topic_filter, handler))

    # ------------------------------------------------------------------ internals

    def _spool_append(self, key: str, topic: str, payload: bytes, correlation: bytes | None = None) -> None:
        self._unspooled.append(SpoolEntry(0, key, topic, payload, correlation))
        self._flush_unspooled()
        self._wake.set()

    def _flush_unspooled(self) -> None:
        """Move messages held in memory into the spool, in order; while the disk refuses, keep them in memory."""
        while self._unspooled:
            entry = self._unspooled[0]
            try:
                dropped = self.spool.append(entry.key, entry.topic, entry.payload, entry.correlation)
            except sqlite3.Error as exc:
                self._spool_failed(exc)
                return
            self._unspooled.popleft()
            if dropped:
                self._overflow(dropped)
        if self._disk_degraded:
            self._disk_degraded = False
            log.warning("spool_recovered", path=str(self.spool.path))

    def _spool_failed(self, exc: sqlite3.Error) -> None:
        # Disk full or read-only: degrade to a bounded in-memory queue rather than lose events or crash.
        if not self._disk_degraded:
            self._disk_degraded = True
            log.error(
                "spool_write_failed", path=str(self.spool.path), error=str(exc), held_in_memory=len(self._unspooled)
            )
        while len(self._unspooled) > MEMORY_OUTBOX_LIMIT:
            self._unspooled.popleft()
            self._overflow_dropped += 1

    def _overflow(self, dropped: int) -> None:
        first = self._overflow_dropped == 0
        self._overflow_dropped += dropped
        if not first:
            return
        # Once per full episode: a log line and an event (itself spooled, after the drop made room).
        log.warning("spool_full", max_messages=self._config.spool_max_messages, dropped=dropped)
        self._daemon_event(
            EventType.SPOOL_OVERFLOW,
            Severity.WARNING,
            f"spool full ({self._config.spool_max_messages} messages): oldest events are being dropped",
            {"max_messages": self._config.spool_max_messages},
        )

    def _daemon_event(self, kind: EventType, severity: Severity, message: str, data: dict[str, object]) -> None:
        event_id = str(uuid.uuid4())
        payload = DaemonEventPayload(
            ts=self._clock.now(),
            id=event_id,
            instance=self._instance,
            type=kind,
            severity=severity,
            message=message,
            data=data,
        )
        self.spool.append(
            f"{PINNED_PREFIX}event:{event_id}", self.topics.daemon_event(self._instance), payload.encode()
        )

    def _status_payload(self, state: str) -> DaemonStatusPayload:
        return DaemonStatusPayload(
            ts=self._clock.now(),
            state="online" if state == "online" else "offline",
            instance=self._instance,
            version=self._version,
            started_at=self._started_at,
            counts=self._counts,
        )

    def _client(self) -> aiomqtt.Client:
        config = self._config
        tls_context = None
        if config.tls:
            tls_context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
            if config.cert_file is not None:
                tls_context.load_cert_chain(str(config.cert_file), str(config.key_file) if config.key_file else None)
        will = aiomqtt.Will(
            self.topics.daemon_status(self._instance),
            self._status_payload("offline").encode(),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password.reveal() if config.password is not None else None,
            identifier=config.client_id or f"rackd-{self._site}-{self._instance}",
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=config.keepalive,
            timeout=10,
            tls_context=tls_context,
            # Commands and replies are forwarded by the broker: Nagle + delayed ACK would add ~40 ms each way.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self) -> None:
        """Connect, deliver, and reconnect with backoff forever, until `close()`."""
        while not self._stop.is_set():
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self._disconnected(exc)
            except OSError as exc:  # DNS failure, TLS file unreadable: the same treatment as a refused connection
                self._disconnected(exc)
            finally:
                self.connected.clear()
                self.first_attempt_done.set()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            stopper = asyncio.ensure_future(self._stop.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(delay))
            try:
                await asyncio.wait({stopper, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                sleeper.cancel()

    def _disconnected(self, exc: BaseException) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("mqtt_unavailable", broker=self._config.url, error=str(exc), spooled=len(self.spool))
        else:
            log.debug("mqtt_connect_failed", broker=self._config.url, error=str(exc))

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.connects += 1
            self._backoff.reset()
            self._outage_logged = False
            log.info("mqtt_connected", broker=self._config.url, spooled=len(self.spool))
            status_topic = self.topics.daemon_status(self._instance)
            status = self._status_payload("online").encode()
            self._retained[status_topic] = status
            # After a reconnect the broker may have lost retained messages (restart without persistence).
            self._retained_pending = dict(self._retained)
            self._wake.set()
            for topic_filter, _ in self._handlers:
                await client.subscribe(topic_filter, qos=1)
            self.connected.set()
            self.first_attempt_done.set()
            tasks = {asyncio.create_task(self._sender(client), name="mqtt-sender")}
            if self._handlers:
                tasks.add(asyncio.create_task(self._receiver(client), name="mqtt-receiver"))
            stopper = asyncio.create_task(self._stop.wait(), name="mqtt-stop")
            try:
                done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await _cancel_all({*tasks, stopper})
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # re-raise the MqttError that ended the session
            if stopper in done:
                await client.publish(
                    status_topic, self._status_payload("offline").encode(), qos=1, retain=True, timeout=5
                )
                log.info("mqtt_offline_published")

    async def _sender(self, client: aiomqtt.Client) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self._drain_spool(client)
            while self._retained_pending:
                topic, payload = next(iter(self._retained_pending.items()))
                await client.publish(topic, payload, qos=1, retain=True)
                if self._retained_pending.get(topic) is payload:
                    del self._retained_pending[topic]
            while self._telemetry:
                topic = next(iter(self._telemetry))
                payload = self._telemetry.pop(topic)
                try:
                    await client.publish(topic, payload, qos=0)
                except aiomqtt.MqttError:
                    self._telemetry.setdefault(topic, payload)  # keep it unless a newer one arrived meanwhile
                    raise

    async def _drain_spool(self, client: aiomqtt.Client) -> None:
        self._flush_unspooled()
        while batch := self.spool.peek(100):
            for entry in batch:
                await client.publish(entry.topic, entry.payload, qos=1, properties=self._properties(entry))
                try:
                    self.spool.remove(entry.seq)
                except sqlite3.Error as exc:
                    self._spool_failed(exc)  # sent but not forgotten: it goes again later (at-least-once)
                    return
        # What the disk refused goes straight from memory, after everything older that is on disk.
        while self._unspooled:
            entry = self._unspooled[0]
            await client.publish(entry.topic, entry.payload, qos=1, properties=self._properties(entry))
            self._unspooled.popleft()
        if self._overflow_dropped:
            dropped, self._overflow_dropped = self._overflow_dropped, 0
            log.warning("spool_drained_after_overflow", dropped=dropped)
            self._daemon_event(
                EventType.SPOOL_OVERFLOW,
                Severity.WARNING,
                f"{dropped} spooled messages were dropped while the spool was full",
                {"dropped": dropped},
            )
            self._wake.set()

    @staticmethod
    def _properties(entry: SpoolEntry) -> Properties | None:
        if entry.correlation is None:
            return None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho ships no types here
        properties.CorrelationData = entry.correlation
        return properties

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            for topic_filter, handler in self._handlers:
                if message.topic.matches(topic_filter):
                    try:
                        await handler(message)
                    except Exception:  # a bad message or handler bug must not drop the connection
                        log.exception("mqtt_handler_failed", topic=str(message.topic))

    async def close(self) -> None:
        """Publish `offline` (when connected) and stop `run()`; the spool keeps what was not delivered."""
        self._stop.set()
        self._wake.set()  # a sender waiting for work sees the stop at once

    def close_spool(self) -> None:
        """Close the spool database (after `run()` returned)."""
        self.spool.close()


async def _cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until every one has ended.

    A single cancel is not enough: aiomqtt's publish waits with `asyncio.wait_for`, which on Python 3.11 can
    swallow a cancellation when the PUBACK arrives at the same moment, leaving the task running.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved here; the caller re-raises the one that ended the session
